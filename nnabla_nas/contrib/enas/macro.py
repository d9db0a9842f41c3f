"""The ``enas_macro`` space: the ENAS macro search space (Pham et al., ICML 2018, section 2.3).

Network: a stem (3x3 conv to ``out_filters`` channels, BN), ``num_layers`` layers, global
average pooling, dropout and a linear classifier. Layer ``k`` (1-based) takes the output of layer
``k - 1`` (the stem for layer 1) and decides:

- ``layer<k>/op``: one of the six operations of :data:`~.ops.MACRO_OPS`;
- ``layer<k>/skip<j>`` for every earlier output ``j`` in ``0 .. k-2`` (``0`` is the stem, ``j``
  layer ``j``): whether that output is also connected to layer ``k`` (``absent``/``present``).

The space has ``6^L * 2^(L(L-1)/2)`` architectures (about ``1.6e29`` for ``L = 12``, the paper's
count). After layers ``p`` and ``2p`` (``p = L // 3``; the 4th and 8th of 12) every output so far
is halved by its own factorized reduction, so skip connections always meet equal sizes.

Supernet (the reference code's search network): every layer has ``C = out_filters`` channels;
layer ``k >= 2`` outputs ``BN(op(x) + sum of its present skips)``, every decision a
:class:`~nnabla_nas.module.MixedOp` (a skip: ``Zero`` or ``Identity`` on the earlier output).

Fixed network (retraining from a genotype, as the reference code's fixed architecture): the
channels double at each reduction; layer ``k >= 2`` concatenates its present skips and the
operation's output, then ReLU - 1x1 conv back to the stage's channels - BN. Only the reductions
of outputs used later are built. The paper retrains with ``out_filters`` 96 (set it in the
retraining file). No auxiliary head (the paper uses none in the macro space).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import nnabla as nn
import nnabla.functions as F
import numpy as np

from ...errors import ConfigError
from ...genotype import Genotype
from ...module import (
    BatchNormalization,
    Conv,
    Dropout,
    GlobalAvgPool,
    Identity,
    Linear,
    MixedOp,
    Module,
    ModuleDict,
    ModuleList,
    ReLU,
    Sequential,
    Zero,
)
from ...visualize import ArchEdge, ArchGraph, ArchNode, kernel_of
from ..darts.ops import FactorizedReduce
from ..decisions import Decision
from .base import EnasModel, reduction_after
from .ops import MACRO_OPS, SKIP_NAMES, macro_op

__all__ = ["EnasMacroConfig", "EnasMacroSpace", "macro_decisions", "source_node"]

logger = logging.getLogger(__name__)

_MODES = ("full", "sample", "max")


@dataclass
class EnasMacroConfig:
    """The ``network`` keys of the ``enas_macro`` space (besides ``search_space``).

    Attributes:
        num_layers: ``L``, the searched layers (>= 3; the paper: 12).
        out_filters: ``C``, the channels of the first stage (even; the paper searches with 36
            and retrains with 96).
        num_classes: classifier outputs.
        in_channels: input image channels (default: the experiment's ``input_shape[0]``, else 3).
        mode: the supernet MixedOps' mode: ``full``, ``sample`` or ``max``.
        drop_rate: dropout before the classifier, in [0, 1) (the paper's keep probability 0.9).
        genotype: path of an ``arch.h5`` to build the fixed network (the CLI loads it).
    """

    num_layers: int = 12
    out_filters: int = 36
    num_classes: int = 10
    in_channels: int | None = None
    mode: str = "sample"
    drop_rate: float = 0.1
    genotype: str | None = None

    def check(self) -> None:
        """Refuses impossible values with a ConfigError naming the key."""
        if self.num_layers < 3:
            raise ConfigError(
                f"must be >= 3 (reductions after layers num_layers // 3 and 2 * (num_layers // "
                f"3)), got {self.num_layers}",
                key="num_layers",
            )
        if self.out_filters < 2 or self.out_filters % 2:
            raise ConfigError(
                f"must be an even number >= 2 (a factorized reduction splits the channels in "
                f"two), got {self.out_filters}",
                key="out_filters",
            )
        if self.num_classes < 1:
            raise ConfigError(f"must be >= 1, got {self.num_classes}", key="num_classes")
        if self.in_channels is not None and self.in_channels < 1:
            raise ConfigError(f"must be >= 1, got {self.in_channels}", key="in_channels")
        if self.mode not in _MODES:
            raise ConfigError(f"expected one of {', '.join(_MODES)}, got {self.mode!r}", "mode")
        if not 0.0 <= self.drop_rate < 1.0:
            raise ConfigError(f"must be in [0, 1), got {self.drop_rate}", key="drop_rate")


def source_node(j: int) -> str:
    """The node name of output ``j``: ``"stem"`` for 0, else ``"layer<j>"``."""
    return "stem" if j == 0 else f"layer{j}"


def macro_decisions(num_layers: int) -> list[Decision]:
    """The decisions of a macro supernet of ``num_layers`` layers, in choice order."""
    out = []
    for k in range(1, num_layers + 1):
        node = f"layer{k}"
        out.append(Decision(f"{node}/op", "op", MACRO_OPS, node))
        for j in range(k - 1):
            out.append(Decision(f"{node}/skip{j}", "skip", SKIP_NAMES, node, (source_node(j),)))
    return out


class _SearchLayer(Module):
    """Layer ``k`` of the supernet: the operation choice and one skip choice per earlier
    output."""

    def __init__(self, k: int, channels: int, mode: str, rng: np.random.RandomState) -> None:
        ops = [macro_op(name, channels, rng) for name in MACRO_OPS]
        self.op = MixedOp(ops, mode=mode, names=MACRO_OPS, label=f"layer{k}/op")
        self.skips = ModuleList(
            MixedOp([Zero(), Identity()], mode=mode, names=SKIP_NAMES, label=f"layer{k}/skip{j}")
            for j in range(k - 1)
        )
        if k >= 2:
            self.bn = BatchNormalization(channels, 4)

    def call(self, outs: Sequence[nn.Variable]) -> nn.Variable:
        out = self.op(outs[-1])
        if "bn" not in self.modules:
            return out
        for j, skip in enumerate(self.skips):
            out = out + skip(outs[j])
        return self.bn(out)


class _FixedLayer(Module):
    """Layer ``k`` of the fixed network: its operation, then (``k >= 2``) the concatenation of
    the present skips and the operation's output, ReLU - 1x1 conv - BN."""

    def __init__(
        self, k: int, op: str, skips: Sequence[int], channels: int, rng: np.random.RandomState
    ) -> None:
        self.op = macro_op(op, channels, rng)
        self.skip_sources = list(skips)
        if k >= 2:
            width = channels * (1 + len(self.skip_sources))
            self.combine = Sequential(
                ReLU(),
                Conv(width, channels, 1, with_bias=False, rng=rng),
                BatchNormalization(channels, 4),
            )

    def call(self, outs: Sequence[nn.Variable]) -> nn.Variable:
        out = self.op(outs[-1])
        if "combine" not in self.modules:
            return out
        parts = [outs[j] for j in self.skip_sources] + [out]
        return self.combine(F.concatenate(*parts, axis=1) if len(parts) > 1 else out)


class EnasMacroSpace(EnasModel):
    """The ``enas_macro`` space (see the module docstring).

    Args:
        cfg: the space's configuration.
        genotype: None (the supernet), or ``label -> candidate`` / a Genotype of this space: the
            fixed network.
        rng: weight initialisation (default ``RandomState(0)``).

    Raises:
        ConfigError: an impossible configuration value (key named).
        GenotypeError: the genotype belongs to another space or does not fit the configuration.
    """

    Config = EnasMacroConfig
    space_name: ClassVar[str] = "enas_macro"

    def __init__(
        self,
        cfg: EnasMacroConfig,
        genotype: Genotype | Mapping[str, str] | None = None,
        rng: np.random.RandomState | None = None,
    ) -> None:
        rng = self.prepare(cfg, genotype, rng)
        self.cfg = cfg
        self.chosen = self.parse_genotype(genotype)
        self.in_channels = cfg.in_channels or 3
        c = cfg.out_filters
        self.stem = Sequential(
            Conv(self.in_channels, c, 3, pad=1, with_bias=False, rng=rng),
            BatchNormalization(c, 4),
        )
        self._reduce_after = reduction_after(cfg.num_layers)
        layers, reductions = [], ModuleDict()
        for k in range(1, cfg.num_layers + 1):
            if self.chosen is None:
                layers.append(_SearchLayer(k, c, cfg.mode, rng))
            else:
                op, skips = self.layer_choice(k)
                layers.append(_FixedLayer(k, op, skips, c, rng))
            if k in self._reduce_after:
                new = c if self.chosen is None else 2 * c
                reductions[f"after{k}"] = ModuleDict(
                    (f"from{j}", FactorizedReduce(c, new, True, rng, relu=False))
                    for j in self._needed(k)
                )
                c = new
        self.layers = ModuleList(layers)
        self.reductions = reductions
        self.pool = GlobalAvgPool()
        self.dropout = Dropout(cfg.drop_rate)
        self.classifier = Linear(c, cfg.num_classes, rng=rng)

    @classmethod
    def decision_specs(cls, cfg: EnasMacroConfig) -> list[Decision]:
        """The supernet's decisions (see :func:`macro_decisions`)."""
        return macro_decisions(cfg.num_layers)

    def layer_choice(self, k: int, genotype: Mapping[str, str] | None = None) -> tuple[str, list]:
        """Layer ``k``'s operation and the outputs it takes skips from, in ``genotype`` (default:
        the drawn one, :meth:`EnasModel.drawn_genotype`)."""
        g = self.drawn_genotype() if genotype is None else genotype
        skips = [j for j in range(k - 1) if g[f"layer{k}/skip{j}"] == SKIP_NAMES[1]]
        return g[f"layer{k}/op"], skips

    def _needed(self, k: int) -> list[int]:
        """The outputs ``0..k`` that a reduction after layer ``k`` must halve: all of them in the
        supernet; those a later layer uses in the fixed network."""
        if self.chosen is None:
            return list(range(k + 1))
        used = {k}  # the next layer's input
        for m in range(k + 1, self.cfg.num_layers + 1):
            used.update(j for j in self.layer_choice(m)[1] if j <= k)
        return sorted(used)

    def call(self, x: nn.Variable) -> nn.Variable:
        self.check_input(x)
        outs: dict[int, nn.Variable] = {0: self.stem(x)}
        for k, layer in enumerate(self.layers, start=1):
            outs[k] = layer([outs.get(j) for j in range(k)])
            if f"after{k}" in self.reductions:
                reduce = self.reductions[f"after{k}"]
                outs = {
                    j: reduce[f"from{j}"](outs[j]) for j in range(k + 1) if f"from{j}" in reduce
                }
        out = self.pool(outs[len(self.layers)])
        return self.classifier(self.dropout(out))

    # ------------------------------------------------------------------ drawing
    def arch_graph(
        self, input_shape: Sequence[int], architecture: Any = None, probabilities: Any = None
    ) -> ArchGraph:
        """The drawn architecture (:meth:`EnasModel.drawn_genotype` of ``genotype``): stem,
        layers with their operation and output shape, the chain, and one dashed edge per present
        skip connection."""
        _, h, w = (int(s) for s in input_shape)
        g = self.drawn_genotype(architecture)
        fixed = self.chosen is not None
        graph = ArchGraph()
        graph.add(ArchNode("input", "input", "input", tuple(int(s) for s in input_shape)))
        c = self.cfg.out_filters
        graph.add(ArchNode("l0", "stem\\nconv 3x3", "stem", (c, h, w), 3), "input")
        for k in range(1, self.cfg.num_layers + 1):
            op, skips = self.layer_choice(k, g)
            label = f"layer{k}\\n{op}"
            graph.add(ArchNode(f"l{k}", label, "op", (c, h, w), kernel_of(op)), f"l{k - 1}")
            graph.edges.extend(ArchEdge(f"l{j}", f"l{k}", skip=True) for j in skips)
            if k in self._reduce_after:
                c, h, w = (2 * c if fixed else c), -(-h // 2), -(-w // 2)
        last = f"l{self.cfg.num_layers}"
        head = ArchNode("head", "global avg pool\\nlinear", "head", (self.cfg.num_classes,))
        graph.add(head, last)
        graph.add(ArchNode("output", "output", "output"), "head")
        return graph

    def summary(self, architecture: Any = None) -> str:
        """One line per layer: its operation and skip sources (drawn genotype)."""
        g = self.drawn_genotype(architecture)
        kind = "fixed network" if self.chosen is not None else "supernet"
        lines = [f"{type(self).__name__}: {kind}, {self.cfg.num_layers} layers"]
        for k in range(1, self.cfg.num_layers + 1):
            op, skips = self.layer_choice(k, g)
            names = ", ".join(source_node(j) for j in skips) or "-"
            lines.append(f"layer{k}: {op:<14} skips from: {names}")
        return "\n".join(lines)
