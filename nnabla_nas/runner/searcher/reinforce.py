"""REINFORCE, written once: the moving-average baseline and the log-probability gradient of
architectures sampled from independent softmax distributions (Williams 1992; as ProxylessNAS and
ENAS use it).

For samples ``a_s`` with rewards ``R_s`` and baseline ``b``, the loss is
``-mean_s (R_s - b) log p(a_s)``; with ``p = softmax(logits)`` per decision,
``d log p_k / d logits = onehot_k - p``.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Mapping, Sequence

import numpy as np

__all__ = ["MovingAverageBaseline", "log_prob_gradient"]


class MovingAverageBaseline:
    """``b <- decay * b + (1 - decay) * mean reward``, starting at the first mean reward.

    Args:
        decay: the weight of the old baseline, in [0, 1).
    """

    def __init__(self, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"baseline decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        #: The baseline (None before the first update).
        self.value: float | None = None

    def update(self, mean_reward: float) -> float:
        """Moves the baseline towards ``mean_reward``; returns the new value."""
        if self.value is None:
            self.value = float(mean_reward)
        else:
            self.value = self.decay * self.value + (1.0 - self.decay) * float(mean_reward)
        return self.value

    def state_dict(self) -> dict[str, Any]:
        return {"baseline": self.value}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.value = None if state["baseline"] is None else float(state["baseline"])


def log_prob_gradient(
    probabilities: Mapping[str, np.ndarray],
    samples: Sequence[Mapping[str, int]],
    rewards: Sequence[float],
    baseline: float,
) -> OrderedDict[str, np.ndarray]:
    """``d/dlogits of -mean_s (R_s - b) log p(a_s)`` for every decision.

    Args:
        probabilities: ``label -> softmax(logits)`` (numpy, shape ``(n,)``).
        samples: the sampled architectures, ``label -> index``.
        rewards: their rewards.
        baseline: ``b``.

    Returns:
        ``label -> gradient`` (float64, shape ``(n,)``).
    """
    grads: OrderedDict[str, np.ndarray] = OrderedDict()
    for label, p in probabilities.items():
        grad = np.zeros_like(p)
        for sample, reward in zip(samples, rewards):
            score = -p.copy()  # d log p_k / d logits = onehot_k - p
            score[sample[label]] += 1.0
            grad -= (reward - baseline) * score
        grads[label] = grad / len(samples)
    return grads
