"""Path sampling, written once for every searcher that samples from a distribution per choice.

Every draw comes from the searcher's ``numpy.random.RandomState`` (checkpointed), one decision at
a time in label order, so runs are reproducible and a resumed run draws what the uninterrupted
one would have.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Mapping

import numpy as np

__all__ = ["GateDraw", "sample_architecture", "sample_pair"]

#: One draw of ProxylessNAS' binary gates: the pair ``(i, j)`` and the active index (``i`` or
#: ``j``).
GateDraw = tuple[int, int, int]


def sample_architecture(
    probabilities: Mapping[str, np.ndarray], rng: np.random.RandomState
) -> OrderedDict[str, int]:
    """One candidate per decision, drawn independently from its probabilities:
    ``label -> candidate index``."""
    return OrderedDict((label, int(rng.choice(len(p), p=p))) for label, p in probabilities.items())


def sample_pair(probs: np.ndarray, rng: np.random.RandomState) -> GateDraw:
    """Draws two distinct paths ``(i, j)`` without replacement from ``probs`` (``i`` from
    ``probs``, then ``j`` from ``probs`` without ``i``), then the active one of the two from
    their renormalised probabilities."""
    n = len(probs)
    i = int(rng.choice(n, p=probs))
    rest = np.array(probs, dtype=np.float64)
    rest[i] = 0.0
    if not rest.sum() > 0:  # every other probability underflowed: any other path
        rest = np.ones(n)
        rest[i] = 0.0
    j = int(rng.choice(n, p=rest / rest.sum()))
    q_i = probs[i] / (probs[i] + probs[j])
    active = i if rng.random_sample() < q_i else j
    return i, j, active
