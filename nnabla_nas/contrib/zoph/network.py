"""The cell of the ``zoph`` space and its path dropout.

A cell (:class:`ZophCell`) brings its two inputs (the outputs of the two previous cells) to its
width ``C`` (ReLU - 1x1 conv - BN each), halves the larger one when they differ in size (2x2 max
pooling, after a reducing cell), and halves both when the cell is ``reducing``. Then come its
choice blocks: block ``j`` takes the cell's two inputs and the outputs of the blocks before it
(``2 + j`` incoming paths), concatenates them, brings them to ``C`` (ReLU - 1x1 conv - BN) and
runs its candidate(s): the choice ``blocks/<j>`` (a :class:`~nnabla_nas.module.MixedOp`), or its
chosen candidate in a fixed network. The cell's output merges its inputs and all its blocks by
``merging_mode``: ``concat`` (``(2 + depth) * C`` channels) or ``add`` (``C`` channels).

Path dropout (Bender et al., 2018, section 3.2): in training mode every incoming path of a block
is zeroed independently with probability ``r ** (1 / k)``, ``k`` the block's number of incoming
paths, so that all of a block's inputs are dropped with probability ``r`` whatever ``k``; kept
paths are divided by the keep probability. :class:`PathDropout` holds one probability per ``k``
and sets it from the rate ``r`` of the moment (:meth:`PathDropout.set_rate`).
"""

from __future__ import annotations

import logging
from typing import Sequence

import nnabla as nn
import numpy as np

from ...module import MaxPool, Merging, Module, ModuleList
from ..darts.network import DropPath
from ..darts.ops import ReLUConvBN

__all__ = ["PathDropout", "ZophCell"]

logger = logging.getLogger(__name__)


class PathDropout:
    """The drop probabilities ``r ** (1 / k)`` of blocks with ``k`` incoming paths.

    One :class:`~nnabla_nas.contrib.darts.network.DropPath` per ``k`` (shared by every block
    with ``k`` paths); its probability is an ``nn.Variable`` read at every forward, so changing
    the rate needs no new graph. The masks come from nnabla's global generator (no seed of their
    own), which the loop reseeds every step.
    """

    def __init__(self) -> None:
        self._drops: dict[int, DropPath] = {}
        self.rate = 0.0

    def for_paths(self, k: int) -> DropPath:
        """The drop-path module of blocks with ``k`` incoming paths."""
        if k not in self._drops:
            prob = nn.Variable((1, 1, 1, 1))
            prob.d = self.probability(k)
            self._drops[k] = DropPath(prob)
        return self._drops[k]

    def probability(self, k: int) -> float:
        """``rate ** (1 / k)`` (0 when the rate is 0)."""
        return float(self.rate ** (1.0 / k)) if self.rate > 0 else 0.0

    def set_rate(self, rate: float) -> None:
        """Sets ``r`` in [0, 1) and every block's probability."""
        if not 0.0 <= rate < 1.0:
            raise ValueError(f"the path dropout rate must be in [0, 1), got {rate}")
        self.rate = float(rate)
        for k, drop in self._drops.items():
            drop.prob.d = self.probability(k)


class ZophCell(Module):
    """One cell (see the module docstring).

    Args:
        prev_prev, prev: the channels of the cell's two inputs.
        channels: ``C``.
        blocks: the candidate module (or MixedOp) of every block, in order, each ``C`` to ``C``.
        reducing: halve the resolution.
        merging_mode: ``concat`` or ``add`` (the cell's output).
        dropout: the path dropout (None: none).
        rng: weight initialisation.
    """

    def __init__(
        self,
        prev_prev: int,
        prev: int,
        channels: int,
        blocks: Sequence[Module],
        reducing: bool,
        merging_mode: str,
        dropout: PathDropout | None,
        rng: np.random.RandomState,
    ) -> None:
        self.pre0 = ReLUConvBN(prev_prev, channels, 1, rng=rng)
        self.pre1 = ReLUConvBN(prev, channels, 1, rng=rng)
        self.pool = MaxPool(2, stride=2)  # size adaptation and reduction (no parameters)
        self.reducing = reducing
        depth = len(blocks)
        self.inputs = ModuleList(
            [ReLUConvBN((2 + j) * channels, channels, 1, rng=rng) for j in range(depth)]
        )
        self.blocks = ModuleList(blocks)
        if dropout is not None:  # registered, so that the training flag reaches them
            self.drops = ModuleList([dropout.for_paths(2 + j) for j in range(depth)])
        self.concat = Merging("concat")
        self.merge = Merging(merging_mode)
        self.out_channels = channels * (2 + depth) if merging_mode == "concat" else channels

    def call(self, s0: nn.Variable, s1: nn.Variable) -> nn.Variable:
        h0, h1 = self.pre0(s0), self.pre1(s1)
        if h0.shape[2:] != h1.shape[2:]:  # the previous cell reduced
            h0 = self.pool(h0)
        if h0.shape[2:] != h1.shape[2:]:
            raise ValueError(f"cell inputs of sizes {s0.shape[2:]} and {s1.shape[2:]}")
        if self.reducing:
            h0, h1 = self.pool(h0), self.pool(h1)
        nodes = [h0, h1]
        drops = self.modules.get("drops")
        for j, (project, block) in enumerate(zip(self.inputs, self.blocks)):
            paths = nodes if drops is None else [drops[j](x) for x in nodes]
            nodes.append(block(project(self.concat(*paths))))
        return self.merge(*nodes)
