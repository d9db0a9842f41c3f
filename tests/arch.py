"""Architectures of supernets for tests: random logits owned as a searcher owns them."""

from __future__ import annotations

from typing import Any

import numpy as np

from nnabla_nas.genotype import Genotype
from nnabla_nas.runner.searcher.logits import ArchLogits


def random_logits(model: Any, seed: int = 0, scale: float = 1.0) -> ArchLogits:
    """The model's decisions with logits drawn from ``N(0, scale)``."""
    logits = ArchLogits(model)
    rng = np.random.RandomState(seed)
    for p in logits.params.values():
        p.d = rng.normal(0, scale, p.shape)
    return logits


def logits_of(model: Any, values: dict[str, list[float]]) -> ArchLogits:
    """The model's decisions with the given logits, ``label -> values``."""
    logits = ArchLogits(model)
    for label, v in values.items():
        p = logits.params[label]
        p.d = np.asarray(v, dtype=np.float32).reshape(p.shape)
    return logits


def genotype_of(model: Any, logits: ArchLogits, extra: dict | None = None) -> Genotype:
    """The argmax genotype of ``logits``, with them, as a searcher exports it."""
    return model.to_genotype(logits.argmax(), logits.arrays(), extra)
