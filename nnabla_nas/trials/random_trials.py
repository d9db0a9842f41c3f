"""``RandomTrials``: architectures drawn uniformly at random, the baseline of every strategy.

Random search as the NAS baseline of Li & Talwalkar, "Random Search and Reproducibility for
Neural Architecture Search" (UAI 2019) and Yang et al., "NAS Evaluation is Frustratingly Hard"
(ICLR 2020): each decision's candidate is drawn uniformly and independently.

Not implemented: weight sharing between trials (the one-shot ``RandomSearcher`` does that),
early stopping of trials.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from ..errors import ConfigError
from .space import Architecture, SearchSpace
from .strategy import Strategy

__all__ = ["RandomTrials"]

logger = logging.getLogger(__name__)


#: Spaces up to this size are drawn as a random permutation (exact sampling without repeats).
PERMUTATION_LIMIT = 2**20


@dataclass
class RandomTrialsConfig:
    """Options of :class:`RandomTrials`.

    Attributes:
        unique: never propose the same architecture twice; once every architecture of the space
            was proposed, the search ends.
        max_draws: with ``unique`` in a space of more than 2**20 architectures (drawn one
            decision at a time, an architecture seen before being drawn again): draws per
            proposal before accepting a repeat.
    """

    unique: bool = True
    max_draws: int = 1000

    def check(self) -> None:
        """Refuses a ``max_draws`` below 1."""
        if self.max_draws < 1:
            raise ConfigError(f"must be >= 1, got {self.max_draws}", "searcher.max_draws")


class RandomTrials(Strategy):
    """Uniform random architectures (without repeats by default).

    Without repeats, a space of up to 2**20 architectures is visited in the order of one random
    permutation (``rng.permutation`` of the architecture indices, drawn at the first proposal);
    a larger space draws each decision with ``rng.integers`` and draws again on a repeat (rare
    there). With ``unique: false``, every proposal is drawn independently.
    """

    Config = RandomTrialsConfig

    def __init__(
        self, space: SearchSpace, seed: int = 0, config: RandomTrialsConfig | None = None
    ) -> None:
        super().__init__(space, seed, config)
        self._seen: set[str] = set()
        self._order: np.ndarray | None = None

    def _propose(self) -> Architecture | None:
        if not self.config.unique:
            return self.space.random(self.rng)
        if self.space.size <= PERMUTATION_LIMIT:
            if self._order is None:
                self._order = self.rng.permutation(self.space.size)
            if self.proposed >= self.space.size:
                logger.info("RandomTrials: all %d architectures were proposed", self.space.size)
                return None
            return self.space.architecture(int(self._order[self.proposed]))
        for _ in range(self.config.max_draws):
            architecture = self.space.random(self.rng)
            key = self.space.key(architecture)
            if key not in self._seen:
                break
        else:
            logger.warning("RandomTrials: no unseen architecture in %d draws; proposing a "
                           "repeat", self.config.max_draws)  # fmt: skip
        self._seen.add(key)
        return architecture
