"""The DARTS search cell (``model_search.py`` of the DARTS reference code, ``Cell``/``MixedOp``).

Every intermediate node ``i`` (numbered from 2) sums one :class:`~nnabla_nas.module.MixedOp` per
earlier node ``j`` (the edge ``edge_<i>_<j>``) over the candidates of
:data:`~.ops.PRIMITIVES`; the cell's output concatenates its last ``multiplier`` nodes. Batch
normalisations have no affine parameters, and pooling candidates are followed by one, as in
DARTS.
"""

from __future__ import annotations

import logging

import nnabla as nn
import nnabla.functions as F
import numpy as np

from ...module import MixedOp, Module
from .genotype import edge_label
from .ops import PRIMITIVES, cell_inputs, make_op

__all__ = ["SearchCell"]

logger = logging.getLogger(__name__)


class SearchCell(Module):
    """A cell of the search network.

    Args:
        num_nodes: intermediate nodes.
        multiplier: the last ``multiplier`` nodes form the output (``multiplier * channels``
            channels).
        prev_prev, prev: channels of the inputs ``c_{k-2}`` and ``c_{k-1}``.
        channels: ``C``, the channels of every node.
        reduction: the edges leaving the inputs have stride 2.
        reduction_prev: ``c_{k-2}`` is preprocessed by a :class:`FactorizedReduce`.
        mode: the MixedOps' mode (``full``, ``sample`` or ``max``).
        shared: the cell type (``"normal"`` or ``"reduce"``) when every cell of that type makes
            one decision per edge (labels ``<type>/edge_<i>_<j>``); None gives every edge its
            own decision (its module path).
        rng: weight initialisation.
    """

    def __init__(
        self,
        num_nodes: int,
        multiplier: int,
        prev_prev: int,
        prev: int,
        channels: int,
        reduction: bool,
        reduction_prev: bool,
        mode: str,
        shared: str | None,
        rng: np.random.RandomState,
    ) -> None:
        self.reduction = reduction
        self.pre0, self.pre1 = cell_inputs(prev_prev, prev, channels, reduction_prev, False, rng)
        self._num_nodes = num_nodes
        self._multiplier = multiplier
        for node in range(2, 2 + num_nodes):
            for j in range(node):
                stride = 2 if reduction and j < 2 else 1
                ops = [make_op(n, channels, stride, False, True, rng) for n in PRIMITIVES]
                name = edge_label(node, j)
                label = f"{shared}/{name}" if shared else None
                setattr(self, name, MixedOp(ops, mode, names=PRIMITIVES, label=label))
        self.out_channels = multiplier * channels

    def edges(self) -> list[tuple[int, int, MixedOp]]:
        """``(node, input, MixedOp)`` of every edge, in order."""
        return [
            (node, j, getattr(self, edge_label(node, j)))
            for node in range(2, 2 + self._num_nodes)
            for j in range(node)
        ]

    def call(self, s0: nn.Variable, s1: nn.Variable) -> nn.Variable:
        states = [self.pre0(s0), self.pre1(s1)]
        for node in range(2, 2 + self._num_nodes):
            out = None
            for j in range(node):
                h = getattr(self, edge_label(node, j))(states[j])
                out = h if out is None else out + h
            states.append(out)
        outs = states[-self._multiplier :]
        return F.concatenate(*outs, axis=1) if len(outs) > 1 else outs[0]
