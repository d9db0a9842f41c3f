"""The DARTS search cell (``model_search.py`` of the DARTS reference code, ``Cell``/``MixedOp``).

Every intermediate node ``i`` (numbered from 2) sums one :class:`~nnabla_nas.module.MixedOp` per
earlier node ``j`` (the edge ``edge_<i>_<j>``) over the candidates of
:data:`~.ops.PRIMITIVES`; the cell's output concatenates its last ``multiplier`` nodes. Batch
normalisations have no affine parameters, and pooling candidates are followed by one, as in
DARTS.
"""

from __future__ import annotations

import logging
from typing import Mapping

import nnabla as nn
import nnabla.functions as F
import numpy as np

from ...module import MixedOp, Module, Parameter
from .genotype import edge_label
from .ops import PRIMITIVES, cell_inputs, make_op

__all__ = ["SearchCell", "init_alpha"]

logger = logging.getLogger(__name__)

#: DARTS initialises the logits with ``1e-3 * randn``.
ALPHA_SCALE = 1e-3


def init_alpha(rng: np.random.RandomState, n: int = len(PRIMITIVES)) -> Parameter:
    """A MixedOp's architecture parameter ``(n, 1, 1, 1, 1)`` drawn as DARTS: ``1e-3 * randn``."""
    return Parameter((n, 1, 1, 1, 1), initializer=ALPHA_SCALE * rng.randn(n, 1, 1, 1, 1))


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
        alphas: ``edge label -> Parameter`` shared with other cells of the same type; None gives
            every edge its own parameter (path ``edge_<i>_<j>/alpha``).
        rng: weight and logit initialisation, and the MixedOps' sampling.
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
        alphas: Mapping[str, Parameter] | None,
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
                label = edge_label(node, j)
                alpha = alphas[label] if alphas is not None else init_alpha(rng)
                setattr(self, label, MixedOp(ops, mode, alpha, rng, names=PRIMITIVES))
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
