"""The ``mobilenet`` search space: MobileNetV2 with searched inverted-residual blocks.

ProxylessNAS (Cai et al., 2019) on the MobileNetV2 backbone (Sandler et al., 2018):

- stem: 3x3 conv to ``32*w`` channels, stride 2, BN, ReLU6; then a fixed ``MB1 3x3`` block to
  ``16*w`` channels;
- for each row ``[c, n, s]`` of ``settings``, ``n`` blocks to ``c*w`` channels (the first with
  stride ``s``). Each block chooses among the ``candidates`` ``"MB{e} {k}x{k}"`` (an inverted
  residual: 1x1 expansion by ``e`` (none when ``e == 1``), depthwise ``k x k`` with the stride,
  1x1 projection; a residual add when the block keeps its shape) and, with ``skip_connect`` and
  when the block keeps its shape, ``"skip_connect"``, which removes the block (depth search);
- head: 1x1 conv to ``1280*max(1, w)`` channels, BN, ReLU6, global average pooling, dropout,
  linear classifier.

Channels are rounded to multiples of 8 (``make_divisible``). ``w`` is ``width_mult``. The stem
keeps stride 2 at every input size, as the original NNabla NAS example: small inputs (CIFAR,
MNIST) are handled by the rows' strides (the seed's search table has stride 1 in its first two
rows, a total stride of 8: 32x32 -> 4x4).

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
from typing import Mapping, Sequence

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
    ReLU6,
)
from ..visualize import ArchGraph, ArchNode
from .model import Model

__all__ = [
    "SKIP",
    "InvertedResidual",
    "MobileNetConfig",
    "MobileNetSpace",
    "make_divisible",
    "parse_candidate",
]

logger = logging.getLogger(__name__)

SKIP = "skip_connect"
_CANDIDATE = re.compile(r"^MB(\d+) (\d+)x(\d+)$")
_MODES = ("full", "sample", "max")
_STEM_CHANNELS, _FIRST_CHANNELS, _LAST_CHANNELS = 32, 16, 1280
_STEM_STRIDE = 2

#: The seed's search table for CIFAR-10 (rows ``[channels, max blocks, stride]``).
DEFAULT_SETTINGS = [[24, 4, 1], [32, 4, 1], [64, 4, 2], [96, 4, 1], [160, 4, 2], [320, 1, 1]]
DEFAULT_CANDIDATES = ["MB3 3x3", "MB6 3x3", "MB3 5x5", "MB6 5x5", "MB3 7x7", "MB6 7x7"]


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
    mode: str = "sample"
    width_mult: float = 1.0
    drop_rate: float = 0.0
    in_channels: int | None = None
    genotype: str | None = None

    def check(self) -> None:
        """Refuses impossible values with a ConfigError naming the key."""
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
    """Conv (no bias) + BatchNormalization + ReLU6; depthwise when ``depthwise``."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int,
        depthwise: bool = False,
        rng: np.random.RandomState | None = None,
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
        self.relu = ReLU6()

    def call(self, x: nn.Variable) -> nn.Variable:
        return self.relu(self.bn(self.conv(x)))


class InvertedResidual(Module):
    """The MobileNetV2 block ``MB{expand} {kernel}x{kernel}``.

    1x1 expansion conv + BN + ReLU6 (absent when ``expand == 1``), depthwise ``kernel`` conv with
    ``stride`` + BN + ReLU6, 1x1 projection conv + BN; plus the input when stride is 1 and the
    channels are kept.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        stride: int,
        expand: int,
        kernel: int,
        rng: np.random.RandomState | None = None,
    ) -> None:
        hidden = int(round(in_channels * expand))
        self.use_residual = stride == 1 and in_channels == out_channels
        self.expand = ConvBNReLU(in_channels, hidden, 1, 1, rng=rng) if expand != 1 else Identity()
        self.depthwise = ConvBNReLU(hidden, hidden, kernel, stride, depthwise=True, rng=rng)
        self.project = Conv(hidden, out_channels, (1, 1), with_bias=False, rng=rng)
        self.bn = BatchNormalization(out_channels, 4)

    def call(self, x: nn.Variable) -> nn.Variable:
        out = self.bn(self.project(self.depthwise(self.expand(x))))
        return x + out if self.use_residual else out


def _build_candidate(
    name: str, in_channels: int, out_channels: int, stride: int, rng: np.random.RandomState
) -> Module:
    if name == SKIP:
        return Identity()
    expand, kernel = parse_candidate(name)
    return InvertedResidual(in_channels, out_channels, stride, expand, kernel, rng=rng)


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
        c_in = self._first_channels
        for row, (c, n, s) in enumerate(cfg.settings):
            c_out = make_divisible(c * w)
            for i in range(n):
                self._rows.append(row)
                stride = s if i == 0 else 1
                options = list(cfg.candidates)
                if cfg.skip_connect and stride == 1 and c_in == c_out:
                    options.append(SKIP)
                specs.append((c_in, c_out, stride, options))
                c_in = c_out
        self._specs = specs
        chosen = self._check_genotype(genotype) if genotype is not None else None
        self.is_fixed = chosen is not None

        self.in_channels = cfg.in_channels or 3
        self.stem = ConvBNReLU(self.in_channels, self._stem_channels, 3, _STEM_STRIDE, rng=rng)
        self.first = InvertedResidual(self._stem_channels, self._first_channels, 1, 1, 3, rng=rng)
        blocks = []
        self._block_names: list[str | None] = []  # fixed name, None for a choice
        for i, (b_in, b_out, stride, options) in enumerate(specs):
            if chosen is not None or len(options) == 1:
                name = options[0] if len(options) == 1 else chosen[f"blocks/{i}"]
                blocks.append(_build_candidate(name, b_in, b_out, stride, rng))
                self._block_names.append(name)
            else:
                ops = [_build_candidate(o, b_in, b_out, stride, rng) for o in options]
                blocks.append(MixedOp(ops, mode=cfg.mode, names=options))
                self._block_names.append(None)
        self.blocks = ModuleList(blocks)
        head_in = specs[-1][1]
        self.head = ConvBNReLU(head_in, self._last_channels, 1, 1, rng=rng)
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
        out = self.first(self.stem(x))
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
        h, w = _conv_size(h, _STEM_STRIDE), _conv_size(w, _STEM_STRIDE)
        stem = ArchNode(
            "stem",
            f"stem\\nconv 3x3 /{_STEM_STRIDE}",
            "stem",
            (self._stem_channels, h, w),
            kernel=3,
            group="stem",
        )
        prev = graph.add(stem, after=prev.name)
        first = ArchNode("first", "MB1 3x3", "op", (self._first_channels, h, w), 3, "stem")
        prev = graph.add(first, after=prev.name)
        names = self.block_names(architecture)
        for i, (name, (_, c_out, stride, _)) in enumerate(zip(names, self._specs)):
            group = f"row{self._rows[i]}"
            if name == SKIP:
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
