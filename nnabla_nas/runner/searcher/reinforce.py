"""REINFORCE pieces shared by the searchers that train a policy on rewards (Williams, 1992).

:class:`MovingAverageBaseline` is the variance-reducing baseline ``b`` of the policy gradient
``(R - b) * grad log p(architecture)``.
"""

from __future__ import annotations

import logging
from typing import Any, Mapping

__all__ = ["MovingAverageBaseline"]

logger = logging.getLogger(__name__)


class MovingAverageBaseline:
    """``b <- decay * b + (1 - decay) * R`` at every reward, starting at the first reward (so
    the first advantage is 0 rather than the whole reward).

    Args:
        decay: the weight of the old baseline, in [0, 1).
    """

    def __init__(self, decay: float) -> None:
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"baseline decay must be in [0, 1), got {decay}")
        self.decay = float(decay)
        self.value: float | None = None

    def update(self, reward: float) -> float:
        """Folds ``reward`` in; returns the new baseline (to subtract from ``reward``)."""
        reward = float(reward)
        if self.value is None:
            self.value = reward
        else:
            self.value = self.decay * self.value + (1.0 - self.decay) * reward
        return self.value

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint keeps."""
        return {"value": self.value}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restores :meth:`state_dict`."""
        self.value = None if state["value"] is None else float(state["value"])
