"""The fixed (retraining) pieces of the DARTS networks: a cell built from a genotype, drop-path and
the auxiliary head (``model.py`` of the DARTS reference code, ``NetworkCIFAR``).

A :class:`FixedCell` runs the edges of a :class:`~.genotype.CellSpec` with trainable (affine)
batch normalisations; the pooling candidates have no BN (as DARTS' retraining network). Each
edge is a module at ``edge_<node>_<input>``, the label of the same edge in the search network.
"""

from __future__ import annotations

import logging
from typing import Sequence

import nnabla as nn
import nnabla.functions as F
import numpy as np

from ...module import BatchNormalization, Conv, Identity, Linear, Module, ReLU, Zero
from .genotype import CellSpec, edge_label
from .ops import cell_inputs, make_op

__all__ = ["AuxiliaryHead", "DropPath", "FixedCell"]

logger = logging.getLogger(__name__)


class DropPath(Module):
    """Drop-path (Larsson et al., FractalNet; DARTS' ``drop_path``) in training mode.

    Each sample's input is zeroed with probability ``p`` and otherwise divided by ``1 - p``; the
    identity in inference mode. The mask is drawn by ``F.rand`` at every forward (one value per
    sample, a new draw for each edge the module is applied to), so a graph built once keeps
    drawing new masks. ``p`` is read from the ``prob`` variable at every forward: changing
    ``prob.d`` (e.g. a schedule) needs no new graph.

    Args:
        prob: an ``nn.Variable`` of shape ``(1, 1, 1, 1)`` holding ``p`` in ``[0, 1)``.

    The masks come from nnabla's global generator (``F.rand`` without a seed), which the runner
    reseeds from ``(seed, iteration)`` before every step: masks are reproducible and a resumed
    run draws the same ones. (A per-function seed would keep its generator inside the graph,
    where no checkpoint can save it.)
    """

    def __init__(self, prob: nn.Variable) -> None:
        self.prob = prob  # a plain nn.Variable: not a parameter

    def call(self, x: nn.Variable) -> nn.Variable:
        if not self.training:
            return x
        u = F.rand(0.0, 1.0, shape=(x.shape[0],) + (1,) * (x.ndim - 1))
        keep = F.greater_equal(u, self.prob)  # 1 with probability 1 - p
        return x * keep / (1.0 - self.prob)


def node_sum(cell: Module, wired: Sequence[tuple[str, int, bool]],
             states: Sequence[nn.Variable]) -> nn.Variable | None:  # fmt: skip
    """The output of one node of a fixed cell: the sum of its edges ``(attribute, input,
    droppable)``, each the cell's module ``attribute`` on ``states[input]``, with the cell's
    ``drop_path`` (if it has one) on the droppable ones; None for a node without edges."""
    drop = cell.modules.get("drop_path")
    out = None
    for name, j, droppable in wired:
        h = getattr(cell, name)(states[j])
        if droppable and drop is not None:
            h = drop(h)
        out = h if out is None else out + h
    return out


class FixedCell(Module):
    """A cell of the retraining network.

    Args:
        spec: the edges of every intermediate node and the concatenated nodes.
        prev_prev, prev: channels of the two cell inputs (``c_{k-2}``, ``c_{k-1}``).
        channels: ``C``, the channels of every node.
        reduction: a reduction cell (the edges leaving nodes 0 and 1 have stride 2).
        reduction_prev: the previous cell was a reduction cell (``c_{k-2}`` is twice as large:
            it is preprocessed by a :class:`FactorizedReduce`).
        drop_path: applied to every edge's output except identities (None: no drop-path).
        rng: weight initialisation.
    """

    def __init__(
        self,
        spec: CellSpec,
        prev_prev: int,
        prev: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
        drop_path: DropPath | None = None,
        rng: np.random.RandomState | None = None,
    ) -> None:
        self.reduction = reduction
        self.spec = spec
        self.pre0, self.pre1 = cell_inputs(prev_prev, prev, channels, reduction_prev, True, rng)
        self.zero = Zero(2 if reduction else 1)  # a node without edges
        if drop_path is not None:
            self.drop_path = drop_path
        self._nodes: list[list[tuple[str, int, bool]]] = []  # (attribute, input, droppable)
        for i, edges in enumerate(spec.nodes):
            node = i + 2
            wired = []
            for op, j in edges:
                name = base = edge_label(node, j)
                k = 1
                while name in self.modules:  # the same input twice (hand-written genotypes)
                    name, k = f"{base}_{k}", k + 1
                module = make_op(op, channels, 2 if reduction and j < 2 else 1, True, False, rng)
                setattr(self, name, module)
                wired.append((name, j, not isinstance(module, (Identity, Zero))))
            self._nodes.append(wired)
        self._concat = list(spec.concat)
        self.out_channels = channels * len(self._concat)

    def call(self, s0: nn.Variable, s1: nn.Variable) -> nn.Variable:
        states = [self.pre0(s0), self.pre1(s1)]
        for wired in self._nodes:
            out = node_sum(self, wired, states)
            states.append(out if out is not None else self.zero(states[1]))
        outs = [states[j] for j in self._concat]
        return F.concatenate(*outs, axis=1) if len(outs) > 1 else outs[0]


class AuxiliaryHead(Module):
    """DARTS' auxiliary classifier (``AuxiliaryHeadCIFAR``), on the output of the cell at 2/3
    depth.

    ReLU - average pooling 5x5 stride 3 (padding excluded) - conv 1x1 to 128 - BN - ReLU - conv
    2x2 to 768 - BN - ReLU - linear. On the 8x8 maps of a 32x32 input this is DARTS' head
    exactly. So that any input size works, the pooling window is clipped to the map, maps
    smaller than 2x2 are zero-padded (bottom, right) to 2x2 before the 2x2 convolution, and its
    output is averaged over space before the classifier (a no-op on the 1x1 output of 8x8 maps).
    """

    def __init__(
        self, channels: int, num_classes: int, rng: np.random.RandomState | None = None
    ) -> None:
        self.relu = ReLU()
        self.conv1 = Conv(channels, 128, 1, with_bias=False, rng=rng)
        self.bn1 = BatchNormalization(128, 4)
        self.conv2 = Conv(128, 768, 2, with_bias=False, rng=rng)
        self.bn2 = BatchNormalization(768, 4)
        self.classifier = Linear(768, num_classes, rng=rng)

    def call(self, x: nn.Variable) -> nn.Variable:
        h, w = x.shape[2:]
        x = F.average_pooling(
            self.relu(x), (min(5, h), min(5, w)), (3, 3), ignore_border=True, including_pad=False
        )
        x = F.relu(self.bn1(self.conv1(x)))
        h, w = x.shape[2:]
        if h < 2 or w < 2:
            x = F.pad(x, (0, max(0, 2 - h), 0, max(0, 2 - w)))
        x = F.relu(self.bn2(self.conv2(x)))
        return self.classifier(F.global_average_pooling(x))
