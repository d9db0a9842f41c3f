"""Algorithms: the shared loop (:class:`Runner`), the :class:`Trainer` and the searchers."""

from __future__ import annotations

from ..registry import Registry
from .runner import DataBundle, Runner
from .searcher.proxyless import ProxylessNasSearcher
from .trainer import Trainer

ALGORITHMS = Registry("algorithm")
ALGORITHMS.add("Trainer", Trainer)
ALGORITHMS.add("ProxylessNasSearcher", ProxylessNasSearcher)

__all__ = ["ALGORITHMS", "DataBundle", "Runner", "Trainer"]
