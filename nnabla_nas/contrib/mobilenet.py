"""The ``mobilenet`` search space: MobileNetV2 with searched inverted-residual blocks.

ProxylessNAS (Cai et al., 2019) on the MobileNetV2 backbone (Sandler et al., 2018):

- stem: 3x3 conv to ``32*w`` channels, stride ``stem_stride`` (2), BN, ReLU6; then (with
  ``first_block``) a fixed ``MB1 3x3`` block to ``16*w`` channels;
- for each row ``[c, n, s]`` of ``settings``, ``n`` blocks to ``c*w`` channels (the first with
  stride ``s``). Each block chooses among the ``candidates`` ``"MB{e} {k}x{k}"`` (an inverted
  residual: 1x1 expansion by ``e`` (none when ``e == 1``), depthwise ``k x k`` with the stride,
  1x1 projection; a residual add when the block keeps its shape) and, with ``skip_connect`` and
  when the block keeps its shape, ``"skip_connect"``, which removes the block (depth search);
  with ``skip_projection`` also where the shape changes, as a 1x1 conv (the block's stride) + BN;
- head: 1x1 conv to ``1280*max(1, w)`` channels, BN, ReLU6, global average pooling, dropout,
  linear classifier.

Channels are rounded to multiples of 8 (``make_divisible``). ``w`` is ``width_mult``; the
activation is ``activation`` (ReLU6, or ReLU). The stem keeps stride 2 by default at every input
size, as the original NNabla NAS example: small inputs (CIFAR, MNIST) are handled by the rows'
strides (the seed's search table has stride 1 in its first two rows, a total stride of 8: 32x32 ->
4x4).

The preset ``nas-bench-macro`` (``"preset": "nas-bench-macro"``, see :data:`PRESETS`) is the macro
space of NAS-Bench-Macro (Su et al., CVPR 2021): stem 3x3/32 stride 1, no MB1 block, rows
``[[64, 2, 2], [128, 3, 2], [256, 3, 2]]``, candidates ``MB3 3x3`` and ``MB6 5x5`` plus an
identity at every layer (a 1x1 conv + BN where it changes the shape), ReLU; its parameter count
equals the benchmark table's for all 6,561 architectures
(``tests/contrib/test_nas_bench_macro.py``).

Each block is a :class:`~nnabla_nas.module.MixedOp` labelled ``blocks/<i>`` (its module path),
except a block with a single option (e.g. ``candidates: ["MB6 3x3"]`` and ``skip_connect:
false``), which is not a choice and is built as that candidate directly: that configuration is the
MobileNetV2 reference, with no architecture parameter. Built from a genotype, every block is its
chosen candidate (``Identity`` for ``skip_connect``) at the same path ``blocks/<i>``, so the
supernet's argmax-path weights map one to one (:meth:`Model.copy_chosen_weights`).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from typing import ClassVar, Mapping, Sequence

import nnabla as nn
import numpy as np

from ..errors import ConfigError, GenotypeError
from ..genotype import Genotype
from ..module import (
    BatchNormalization,
    Conv,
    Dropout,
    DwConv,
    GlobalAvgPool,
    Identity,
    Linear,
    MixedOp,
    Module,
    ModuleList,
    ReLU,
    ReLU6,
)
from ..visualize import ArchGraph, ArchNode
from .model import Model

__all__ = [
    "SKIP",
    "InvertedResidual",
    "PRESETS",
    "SkipProjection",
    "MobileNetConfig",
    "MobileNetSpace",
    "make_divisible",
    "parse_candidate",
]

logger = logging.getLogger(__name__)

SKIP = "skip_connect"
_CANDIDATE = re.compile(r"^MB(\d+) (\d+)x(\d+)$")
_MODES = ("full", "sample", "max")
_ACTIVATIONS = {"relu6": ReLU6, "relu": ReLU}
_STEM_CHANNELS, _FIRST_CHANNELS, _LAST_CHANNELS = 32, 16, 1280
_STEM_STRIDE = 2

#: The seed's search table for CIFAR-10 (rows ``[channels, max blocks, stride]``).
DEFAULT_SETTINGS = [[24, 4, 1], [32, 4, 1], [64, 4, 2], [96, 4, 1], [160, 4, 2], [320, 1, 1]]
DEFAULT_CANDIDATES = ["MB3 3x3", "MB6 3x3", "MB3 5x5", "MB6 5x5", "MB3 7x7", "MB6 7x7"]

#: Named sets of keys (``"preset": NAME`` in the ``network`` section fills the keys it does not
#: give; see :func:`nnabla_nas.contrib.presets.expand_preset`).
PRESETS: dict[str, dict] = {
    # NAS-Bench-Macro (Su et al., "Prioritized Architecture Sampling with Monte-Carlo Tree
    # Search", CVPR 2021): 8 layers of {Identity, MB3 3x3, MB6 5x5}, 3^8 = 6,561 architectures.
    "nas-bench-macro": {
        "num_classes": 10,
        "settings": [[64, 2, 2], [128, 3, 2], [256, 3, 2]],
        "candidates": ["MB3 3x3", "MB6 5x5"],
        "skip_connect": True,
        "skip_projection": True,
        "stem_stride": 1,
        "first_block": False,
        "activation": "relu",
        "width_mult": 1.0,
        "drop_rate": 0.0,
    },
}


def make_divisible(value: float, divisor: int = 8, min_value: int | None = None) -> int:
    """Rounds a channel count to a multiple of ``divisor``, never more than 10% below ``value``."""
    min_value = divisor if min_value is None else min_value
    new = max(min_value, int(value + divisor / 2) // divisor * divisor)
    if new < 0.9 * value:
        new += divisor
    return new


def parse_candidate(name: str, key: str = "candidates") -> tuple[int, int]:
    """``"MB6 5x5"`` -> ``(expansion 6, kernel 5)``.

    Raises:
        ConfigError: ``name`` is not of the form ``"MB{e} {k}x{k}"`` with ``e >= 1`` and an odd
            ``k``.
    """
    match = _CANDIDATE.match(name) if isinstance(name, str) else None
    if match:
        expand, k1, k2 = (int(g) for g in match.groups())
        if expand >= 1 and k1 == k2 and k1 % 2 == 1:
            return expand, k1
    raise ConfigError(
        f"bad candidate {name!r}; expected 'MB{{e}} {{k}}x{{k}}' with an expansion e >= 1 and an "
        f"odd kernel k (e.g. 'MB3 3x3', 'MB6 5x5', 'MB6 7x7'); removing a block is "
        f"'skip_connect: true', not a candidate",
        key=key,
    )


@dataclass
class MobileNetConfig:
    """The ``network`` keys of the ``mobilenet`` space (besides ``search_space``).

    Attributes:
        num_classes: classifier outputs.
        settings: rows ``[channels, max blocks, stride]`` after the fixed MB1 block.
        candidates: the inverted-residual options of every block, ``"MB{e} {k}x{k}"``.
        skip_connect: also offer removing a block (only where the block keeps its shape).
        skip_projection: with ``skip_connect``, offer it on every block: where the block changes
            the shape it is a 1x1 conv (with the block's stride) + BN (NAS-Bench-Macro).
        stem_stride: the stride of the stem conv.
        first_block: the fixed ``MB1 3x3`` block after the stem.
        activation: ``relu6`` (MobileNetV2) or ``relu``.
        mode: MixedOp mode of the supernet: ``full``, ``sample`` or ``max``.
        width_mult: channel multiplier (> 0).
        drop_rate: dropout before the classifier, in [0, 1).
        in_channels: input image channels (default: the experiment's ``input_shape[0]``, else 3).
        genotype: path of an ``arch.h5`` to build the fixed network (the CLI loads it).
    """

    num_classes: int = 1000
    settings: list[list[int]] = field(default_factory=lambda: [r[:] for r in DEFAULT_SETTINGS])
    candidates: list[str] = field(default_factory=lambda: list(DEFAULT_CANDIDATES))
    skip_connect: bool = True
    skip_projection: bool = False
    stem_stride: int = _STEM_STRIDE
    first_block: bool = True
    activation: str = "relu6"
    mode: str = "sample"
    width_mult: float = 1.0
    drop_rate: float = 0.0
    in_channels: int | None = None
    genotype: str | None = None

    PRESETS: ClassVar[dict[str, dict]] = PRESETS

    def check(self) -> None:
        """Refuses impossible values with a ConfigError naming the key."""
        if self.stem_stride < 1:
            raise ConfigError(f"must be >= 1, got {self.stem_stride}", key="stem_stride")
        if self.activation not in _ACTIVATIONS:
            valid = ", ".join(_ACTIVATIONS)
            raise ConfigError(f"expected one of {valid}, got {self.activation!r}", "activation")
        if self.skip_projection and not self.skip_connect:
            raise ConfigError(
                "offers skip_connect on every block, so it needs skip_connect: true",
                key="skip_projection",
            )
        if self.num_classes < 1:
            raise ConfigError(f"must be >= 1, got {self.num_classes}", key="num_classes")
        if self.in_channels is not None and self.in_channels < 1:
            raise ConfigError(f"must be >= 1, got {self.in_channels}", key="in_channels")
        if not self.settings:
            raise ConfigError("needs at least one row [channels, max blocks, stride]", "settings")
        for i, row in enumerate(self.settings):
            if len(row) != 3 or min(row) < 1:
                raise ConfigError(
                    f"expected a row [channels, max blocks, stride] of 3 integers >= 1, got {row}",
                    key=f"settings[{i}]",
                )
        if not self.candidates:
            raise ConfigError("needs at least one candidate such as 'MB6 3x3'", "candidates")
        for i, name in enumerate(self.candidates):
            parse_candidate(name, key=f"candidates[{i}]")
        if len(set(self.candidates)) != len(self.candidates):
            raise ConfigError(f"duplicate candidates in {self.candidates}", key="candidates")
        if self.mode not in _MODES:
            raise ConfigError(f"expected one of {', '.join(_MODES)}, got {self.mode!r}", key="mode")
        if not self.width_mult > 0:
            raise ConfigError(f"must be > 0, got {self.width_mult}", key="width_mult")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ConfigError(f"must be in [0, 1), got {self.drop_rate}", key="drop_rate")


class ConvBNReLU(Module):
    """Conv (no bias) + BatchNormalization + ReLU6 (``activation``); depthwise when
    ``depthwise``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int,
        depthwise: bool = False,
        rng: np.random.RandomState | None = None,
        activation: str = "relu6",
    ) -> None:
        pad = (kernel // 2, kernel // 2)
        if depthwise:
            assert in_channels == out_channels
            self.conv = DwConv(
                in_channels,
                (kernel, kernel),
                pad=pad,
                stride=(stride, stride),
                with_bias=False,
                rng=rng,
            )
        else:
            self.conv = Conv(
                in_channels,
                out_channels,
                (kernel, kernel),
                pad=pad,
                stride=(stride, stride),
                with_bias=False,
                rng=rng,
            )
        self.bn = BatchNormalization(out_channels, 4)
        self.relu = _ACTIVATIONS[activation]()

    def call(self, x: nn.Variable) -> nn.Variable:
        return self.relu(self.bn(self.conv(x)))


class InvertedResidual(Module):
    """The MobileNetV2 block ``MB{expand} {kernel}x{kernel}``.

    1x1 expansion conv + BN + ReLU6 (absent when ``expand == 1``), depthwise ``kernel`` conv with
    ``stride`` + BN + ReLU6, 1x1 projection conv + BN; plus the input when stride is 1 and the
    channels are kept. ``activation``: ``relu6`` or ``relu``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        expand: int,
        kernel: int,
        rng: np.random.RandomState | None = None,
        activation: str = "relu6",
    ) -> None:
        hidden = int(round(in_channels * expand))
        self.use_residual = stride == 1 and in_channels == out_channels
        act = {"rng": rng, "activation": activation}
        self.expand = ConvBNReLU(in_channels, hidden, 1, 1, **act) if expand != 1 else Identity()
        self.depthwise = ConvBNReLU(hidden, hidden, kernel, stride, depthwise=True, **act)
        self.project = Conv(hidden, out_channels, (1, 1), with_bias=False, rng=rng)
        self.bn = BatchNormalization(out_channels, 4)

    def call(self, x: nn.Variable) -> nn.Variable:
        out = self.bn(self.project(self.depthwise(self.expand(x))))
        return x + out if self.use_residual else out


class SkipProjection(Module):
    """``skip_connect`` on a block that changes the shape: 1x1 conv (no bias, the block's
    stride) + BN, as NAS-Bench-Macro's Identity."""

    def __init__(
        self, in_channels: int, out_channels: int, stride: int, rng: np.random.RandomState
    ) -> None:
        self.conv = Conv(in_channels, out_channels, (1, 1), stride=(stride, stride),
                         with_bias=False, rng=rng)  # fmt: skip
        self.bn = BatchNormalization(out_channels, 4)

    def call(self, x: nn.Variable) -> nn.Variable:
        return self.bn(self.conv(x))


def _build_candidate(
    name: str,
    in_channels: int,
    out_channels: int,
    stride: int,
    rng: np.random.RandomState,
    activation: str = "relu6",
) -> Module:
    if name == SKIP:
        if stride == 1 and in_channels == out_channels:
            return Identity()
        return SkipProjection(in_channels, out_channels, stride, rng)
    expand, kernel = parse_candidate(name)
    return InvertedResidual(in_channels, out_channels, stride, expand, kernel, rng, activation)


def _conv_size(size: int, stride: int) -> int:
    # Odd kernel k with padding k // 2.
    return (size - 1) // stride + 1


class MobileNetSpace(Model):
    """The ``mobilenet`` search space (see the module docstring).

    Args:
        cfg: the space's configuration.
        genotype: a searched architecture (``label -> candidate``, or a Genotype of this space):
            builds the fixed network. None builds the supernet.
        rng: weight initialisation and MixedOp sampling; defaults to ``RandomState(0)``.

    Raises:
        ConfigError: an impossible configuration value (key named).
        GenotypeError: the genotype belongs to another space, or its labels / candidates do not
            match this configuration.
    """

    Config = MobileNetConfig
    space_name = "mobilenet"

    def __init__(
        self,
        cfg: MobileNetConfig,
        genotype: Genotype | Mapping[str, str] | None = None,
        rng: np.random.RandomState | None = None,
    ) -> None:
        rng = self.prepare(cfg, genotype, rng)
        self.cfg = cfg
        w = cfg.width_mult
        self._stem_channels = make_divisible(_STEM_CHANNELS * w)
        self._first_channels = make_divisible(_FIRST_CHANNELS * w)
        self._last_channels = make_divisible(_LAST_CHANNELS * max(1.0, w))

        # (in_channels, out_channels, stride, options) of every searchable block.
        specs = []
        self._rows: list[int] = []  # the settings row of every block
        c_in = self._first_channels if cfg.first_block else self._stem_channels
        for row, (c, n, s) in enumerate(cfg.settings):
            c_out = make_divisible(c * w)
            for i in range(n):
                self._rows.append(row)
                stride = s if i == 0 else 1
                options = list(cfg.candidates)
                keeps_shape = stride == 1 and c_in == c_out
                if cfg.skip_connect and (keeps_shape or cfg.skip_projection):
                    options.append(SKIP)
                specs.append((c_in, c_out, stride, options))
                c_in = c_out
        self._specs = specs
        chosen = self._check_genotype(genotype) if genotype is not None else None
        self.is_fixed = chosen is not None

        self.in_channels = cfg.in_channels or 3
        act = cfg.activation
        self.stem = ConvBNReLU(self.in_channels, self._stem_channels, 3, cfg.stem_stride, False,
                               rng, act)  # fmt: skip
        if cfg.first_block:
            self.first = InvertedResidual(self._stem_channels, self._first_channels, 1, 1, 3, rng,
                                          act)  # fmt: skip
        blocks = []
        self._block_names: list[str | None] = []  # fixed name, None for a choice
        for i, (b_in, b_out, stride, options) in enumerate(specs):
            if chosen is not None or len(options) == 1:
                name = options[0] if len(options) == 1 else chosen[f"blocks/{i}"]
                blocks.append(_build_candidate(name, b_in, b_out, stride, rng, act))
                self._block_names.append(name)
            else:
                ops = [_build_candidate(o, b_in, b_out, stride, rng, act) for o in options]
                blocks.append(MixedOp(ops, mode=cfg.mode, names=options))
                self._block_names.append(None)
        self.blocks = ModuleList(blocks)
        head_in = specs[-1][1]
        self.head = ConvBNReLU(head_in, self._last_channels, 1, 1, False, rng, act)
        self.pool = GlobalAvgPool()
        self.dropout = Dropout(cfg.drop_rate)
        self.classifier = Linear(self._last_channels, cfg.num_classes, rng=rng)

    def _check_genotype(self, genotype: Genotype | Mapping[str, str]) -> dict[str, str]:
        """Validates a genotype against the choices of this configuration."""
        where = self.genotype_source(genotype)
        if isinstance(genotype, Genotype):
            genotype = genotype.choices
        labels = {
            f"blocks/{i}": options
            for i, (*_, options) in enumerate(self._specs)
            if len(options) > 1
        }
        unknown = [k for k in genotype if k not in labels]
        missing = [k for k in labels if k not in genotype]
        if unknown or missing:
            raise GenotypeError(
                f"{where} does not match this mobilenet configuration: unknown labels "
                f"{unknown}, missing labels {missing}; was it searched with the same settings, "
                "candidates and skip_connect?",
                key="genotype",
            )
        for label, options in labels.items():
            if genotype[label] not in options:
                raise GenotypeError(
                    f"{where} chooses {genotype[label]!r} for {label!r}, which is not one of "
                    f"its candidates {options}",
                    key="genotype",
                )
        return {label: genotype[label] for label in labels}

    def call(self, x: nn.Variable) -> nn.Variable:
        self.check_input(x)
        out = self.stem(x)
        if self.cfg.first_block:
            out = self.first(out)
        for block in self.blocks:
            out = block(out)
        out = self.pool(self.head(out))
        return self.classifier(self.dropout(out))

    def block_names(self, architecture: Mapping[str, int]) -> list[str]:
        """The candidate of every block: fixed, or the one ``architecture`` picks."""
        return [
            name if name is not None else block.names[int(architecture[f"blocks/{i}"])]
            for i, (name, block) in enumerate(zip(self._block_names, self.blocks))
        ]

    def arch_graph(
        self,
        input_shape: Sequence[int],
        architecture: Mapping[str, int],
        probabilities: Mapping[str, np.ndarray] | None = None,
    ) -> ArchGraph:
        """An architecture as a chain with tensor shapes (``C×H×W``).

        Nodes are grouped by row of ``settings`` (drawn side by side).
        """
        _, h, w = (int(s) for s in input_shape)
        graph = ArchGraph()
        prev = graph.add(ArchNode("input", "input", "input", tuple(int(s) for s in input_shape)))
        stride = self.cfg.stem_stride
        h, w = _conv_size(h, stride), _conv_size(w, stride)
        stem = ArchNode(
            "stem",
            "stem\\nconv 3x3" + (f" /{stride}" if stride > 1 else ""),
            "stem",
            (self._stem_channels, h, w),
            kernel=3,
            group="stem",
        )
        prev = graph.add(stem, after=prev.name)
        if self.cfg.first_block:
            first = ArchNode("first", "MB1 3x3", "op", (self._first_channels, h, w), 3, "stem")
            prev = graph.add(first, after=prev.name)
        names = self.block_names(architecture)
        for i, (name, (c_in, c_out, stride, _)) in enumerate(zip(names, self._specs)):
            group = f"row{self._rows[i]}"
            if name == SKIP and (stride > 1 or c_in != c_out):  # a SkipProjection
                h, w = _conv_size(h, stride), _conv_size(w, stride)
                label = f"skip: conv 1x1 /{stride}\\n(blocks/{i})"
                node = ArchNode(f"b{i}", label, "op", (c_out, h, w), 1, group)
            elif name == SKIP:
                node = ArchNode(f"b{i}", f"skip\\n(blocks/{i})", "skip", prev.shape, group=group)
            else:
                h, w = _conv_size(h, stride), _conv_size(w, stride)
                where = f"blocks/{i}" + (f", /{stride}" if stride > 1 else "")
                kernel = parse_candidate(name)[1]
                node = ArchNode(f"b{i}", f"{name}\\n({where})", "op", (c_out, h, w), kernel, group)
            prev = graph.add(node, after=prev.name)
        head = ArchNode(
            "head", "conv 1x1\\nglobal avg pool", "head", (self._last_channels, 1, 1), group="head"
        )
        prev = graph.add(head, after=prev.name)
        classifier = ArchNode("classifier", "linear", "head", (self.cfg.num_classes,), group="head")
        prev = graph.add(classifier, after=prev.name)
        graph.add(ArchNode("output", "output", "output"), after=prev.name)
        return graph
