"""Which path of a supernet a weight step trains, for one-shot random search
(:mod:`.random_search`), and the architectures it then evaluates.

- :class:`UniformSchedule` (single-path one-shot; Guo et al., "Single Path One-Shot Neural
  Architecture Search with Uniform Sampling", ECCV 2020): every step, one candidate per
  decision, uniformly and independently, in label order.
- :class:`FairSchedule` (the strict fairness of Chu et al., "FairNAS: Rethinking Evaluation
  Fairness of Weight Sharing Neural Architecture Search", ICCV 2021): the steps of a decision
  with ``n`` candidates come in rounds of ``n``; at the start of each round a random
  permutation of its candidates is drawn, and step ``t`` of the round trains candidate
  ``perm[t]``: every candidate is trained exactly once per round. Decisions are independent (one
  permutation each); decisions with different numbers of candidates have rounds of different
  lengths.

Both draw from the searcher's RandomState (checkpointed) and keep their position in
:meth:`~PathSchedule.state_dict`, so a resumed run trains the paths of the uninterrupted one.

:func:`draw_candidates` gives the distinct architectures random search evaluates.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections import OrderedDict
from typing import Any, Mapping

import numpy as np

__all__ = ["SCHEDULES", "FairSchedule", "PathSchedule", "UniformSchedule", "draw_candidates"]

logger = logging.getLogger(__name__)


class PathSchedule:
    """Base of the schedules: ``sizes`` is ``label -> number of candidates``; ``rng`` the
    searcher's RandomState."""

    def __init__(self, sizes: Mapping[str, int], rng: np.random.RandomState) -> None:
        self.sizes = OrderedDict((k, int(n)) for k, n in sizes.items())
        self.rng = rng

    def next(self) -> OrderedDict[str, int]:  # pragma: no cover - abstract
        """The architecture (``label -> index``) of the next weight step."""
        raise NotImplementedError

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        pass


class UniformSchedule(PathSchedule):
    """One uniform draw per decision and step (see the module docstring)."""

    def next(self) -> OrderedDict[str, int]:
        return OrderedDict((k, int(self.rng.randint(n))) for k, n in self.sizes.items())


class FairSchedule(PathSchedule):
    """Every candidate of a decision once per round of ``n`` steps (see the module docstring)."""

    def __init__(self, sizes: Mapping[str, int], rng: np.random.RandomState) -> None:
        super().__init__(sizes, rng)
        #: Steps done; the round of a decision with ``n`` candidates restarts when ``n`` divides it.
        self.step = 0
        #: ``label -> the permutation of its current round``.
        self.rounds: dict[str, list[int]] = {}

    def next(self) -> OrderedDict[str, int]:
        out: OrderedDict[str, int] = OrderedDict()
        for label, n in self.sizes.items():
            t = self.step % n
            if t == 0:
                self.rounds[label] = [int(i) for i in self.rng.permutation(n)]
            out[label] = self.rounds[label][t]
        self.step += 1
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step, "rounds": {k: list(v) for k, v in self.rounds.items()}}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.step = int(state["step"])
        self.rounds = {k: [int(i) for i in v] for k, v in state["rounds"].items()}


#: ``sampling`` key -> schedule.
SCHEDULES: dict[str, type[PathSchedule]] = {"uniform": UniformSchedule, "fair": FairSchedule}


def draw_candidates(
    sizes: Mapping[str, int], count: int, rng: np.random.RandomState
) -> list[OrderedDict[str, int]]:
    """``count`` distinct architectures drawn uniformly (one draw per decision, in label order,
    duplicates drawn again); every architecture, in a random order, when the space has no more
    than ``count``."""
    labels, ns = list(sizes), [int(n) for n in sizes.values()]
    total = math.prod(ns)
    if total <= count:
        every = [OrderedDict(zip(labels, map(int, a))) for a in itertools.product(*map(range, ns))]
        return [every[i] for i in rng.permutation(total)]
    seen: set[tuple[int, ...]] = set()
    out: list[OrderedDict[str, int]] = []
    while len(out) < count:
        arch = tuple(int(rng.randint(n)) for n in ns)
        if arch not in seen:
            seen.add(arch)
            out.append(OrderedDict(zip(labels, arch)))
    return out
