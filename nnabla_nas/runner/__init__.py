"""Algorithms: the shared loop (:class:`Runner`), the :class:`Trainer` and the searchers."""

from __future__ import annotations

from ..registry import Registry
from .runner import DataBundle, Runner
from .searcher.darts import DartsSearcher
from .searcher.proxyless import ProxylessNasSearcher
from .trainer import Trainer

ALGORITHMS = Registry("algorithm")
ALGORITHMS.add("Trainer", Trainer)
ALGORITHMS.add("ProxylessNasSearcher", ProxylessNasSearcher)
ALGORITHMS.add("DartsSearcher", DartsSearcher)

__all__ = ["ALGORITHMS", "DataBundle", "Runner", "Trainer"]
