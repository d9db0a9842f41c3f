"""Algorithms and the loop that runs them: the :class:`Trainer` and the searchers, registered
by name in :data:`ALGORITHMS` (what ``-a`` names)."""

from __future__ import annotations

from ..registry import Registry
from .algorithm import Algorithm, RunContext
from .loop import Loop
from .options import DataBundle, LoopOptions, NoOptions
from .searcher.darts import DartsSearcher
from .searcher.enas import EnasSearcher
from .searcher.proxyless import ProxylessNasSearcher
from .searcher.random_search import RandomSearcher
from .trainer import Trainer

ALGORITHMS = Registry("algorithm")
ALGORITHMS.add("Trainer", Trainer)
ALGORITHMS.add("ProxylessNasSearcher", ProxylessNasSearcher)
ALGORITHMS.add("DartsSearcher", DartsSearcher)
ALGORITHMS.add("EnasSearcher", EnasSearcher)
ALGORITHMS.add("RandomSearcher", RandomSearcher)

__all__ = [
    "ALGORITHMS",
    "Algorithm",
    "DataBundle",
    "DartsSearcher",
    "EnasSearcher",
    "Loop",
    "LoopOptions",
    "NoOptions",
    "ProxylessNasSearcher",
    "RandomSearcher",
    "RunContext",
    "Trainer",
]
