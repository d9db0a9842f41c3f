"""``EvolutionSearcher``: regularized (ageing) evolution.

Real, Aggarwal, Huang & Le, "Regularized Evolution for Image Classifier Architecture Search",
AAAI 2019 (Algorithm 1):

1. the population (a queue) is first filled with ``population_size`` random architectures;
2. then, for every new trial: ``sample_size`` individuals are drawn at random from the
   population (with replacement; the population is not changed), the best of that sample is
   the parent, and the child is the parent with one mutation;
3. the evaluated child joins the population on the young end and the OLDEST individual dies
   (age-based removal, not the worst: the regularization of the title);
4. the result is the best architecture of the whole history.

A mutation picks one decision uniformly among those with two or more candidates and replaces
its candidate by another one drawn uniformly (the paper's op mutation for a space of
independent choices): the child differs from its parent in exactly one decision.

Trials in flight (several workers; the paper ran hundreds) are handled so: a proposal is random
while ``population + pending proposals < population_size`` (the population is filled by the
first ``population_size`` results), later ones are children of the current population; trials
that did not finish (error, dead worker) do not join the population; a trial breaking a hard
constraint joins with fitness ``-inf`` (it is never a parent while a feasible individual is
sampled, and ages out).

Not implemented: the hidden-state mutation of the NASNet cell space (the spaces here expose
independent choices), the identity mutation, and a mutation rate other than one choice.
"""

from __future__ import annotations

import collections
import logging
from dataclasses import dataclass

from ..errors import ConfigError
from .record import TrialRecord
from .space import Architecture, SearchSpace
from .strategy import Strategy, fitness

__all__ = ["EvolutionConfig", "EvolutionSearcher", "Individual"]

logger = logging.getLogger(__name__)


@dataclass
class EvolutionConfig:
    """Options of :class:`EvolutionSearcher` (the paper's P and S).

    Attributes:
        population_size: P, the individuals alive at once (the paper: 100 on CIFAR-10).
        sample_size: S, the individuals of a tournament (the paper: 25 on CIFAR-10; a small
            S explores more, a large S exploits more).
    """

    population_size: int = 100
    sample_size: int = 25

    def check(self) -> None:
        """Refuses a population below 2 or a sample outside ``1..population_size``."""
        if self.population_size < 2:
            raise ConfigError(f"must be >= 2, got {self.population_size}",
                              "searcher.population_size")  # fmt: skip
        if not 1 <= self.sample_size <= self.population_size:
            raise ConfigError(
                f"must be in 1..population_size ({self.population_size}), got {self.sample_size}",
                "searcher.sample_size",
            )


@dataclass(frozen=True)
class Individual:
    """A member of the population: an evaluated architecture and its fitness."""

    trial: int
    architecture: Architecture
    fitness: float


class EvolutionSearcher(Strategy):
    """Regularized evolution (see the module docstring).

    Attributes:
        population: the living individuals, oldest first (a deque of :class:`Individual`).
    """

    Config = EvolutionConfig

    def __init__(
        self, space: SearchSpace, seed: int = 0, config: EvolutionConfig | None = None
    ) -> None:
        super().__init__(space, seed, config)
        self.population: collections.deque[Individual] = collections.deque()
        self._mutable = [label for label in space.labels if space.num_candidates(label) > 1]

    def _propose(self) -> Architecture:
        cfg = self.config
        if not self.population or len(self.population) + self.pending < cfg.population_size:
            return self.space.random(self.rng)
        picks = self.rng.integers(len(self.population), size=cfg.sample_size)
        sample = [self.population[int(i)] for i in picks]
        parent = max(sample, key=lambda ind: ind.fitness)  # the first of equals
        return self.mutate(parent.architecture)

    def mutate(self, architecture: Architecture) -> Architecture:
        """``architecture`` with one decision set to another of its candidates (a copy).

        A space where no decision has two candidates has one architecture: it is returned.
        """
        child = dict(architecture)
        if not self._mutable:
            return child
        label = self._mutable[int(self.rng.integers(len(self._mutable)))]
        other = int(self.rng.integers(self.space.num_candidates(label) - 1))
        child[label] = other + (other >= child[label])  # uniform over the other candidates
        return child

    def _tell(self, record: TrialRecord) -> None:
        if record.status != "ok":
            return
        self.population.append(Individual(record.trial, dict(record.architecture),
                                          fitness(record)))  # fmt: skip
        if len(self.population) > self.config.population_size:
            self.population.popleft()  # ageing: the oldest dies, whatever its fitness
