"""The search split: disjoint, stratified weight and architecture parts of a training set."""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError


def split_stratified(
    labels: np.ndarray, portion: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Splits indices ``0 .. len(labels) - 1`` into two disjoint parts, class by class.

    Each class with ``n_c`` examples gives ``round(portion * n_c)`` (halves rounded up) randomly
    chosen examples to the first part and the rest to the second; a class with at least two
    examples always has at least one on each side. A class with one example goes to the first
    part when ``portion >= 0.5``.

    Args:
        labels: integer labels, shape ``(N,)``.
        portion: fraction for the first part, strictly between 0 and 1 (``train_portion``).
        seed: seed of the random choice; the same seed gives the same split.

    Returns:
        ``(first, second)``: sorted int64 index arrays, disjoint, together covering every index.

    Raises:
        ConfigError: ``portion`` outside (0, 1) (key ``train_portion``) or labels not 1-D.
    """
    if not 0.0 < float(portion) < 1.0:
        raise ConfigError(
            f"must be strictly between 0 and 1 (a fraction of the training set), got {portion}",
            key="train_portion",
        )
    labels = np.asarray(labels)
    if labels.ndim != 1:
        raise ConfigError(f"labels must be a 1-D array, got shape {labels.shape}")
    rng = np.random.RandomState(seed)
    first, second = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n = len(idx)
        k = int(np.floor(portion * n + 0.5))
        if n >= 2:
            k = min(max(k, 1), n - 1)
        first.append(idx[:k])
        second.append(idx[k:])
    if not first:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return (
        np.sort(np.concatenate(first)).astype(np.int64),
        np.sort(np.concatenate(second)).astype(np.int64),
    )
