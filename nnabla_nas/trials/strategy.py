"""The protocol of a multi-trial strategy: propose architectures by label, be told results.

A strategy is a pure function of its seed and of the sequence of ``propose``/``tell`` calls it
receives: it draws every random number from its own ``self.rng`` (seeded by ``seed``), never
from a global generator, and never reads a clock. The experiment driver
(:mod:`nnabla_nas.trials.driver`) makes that sequence deterministic too (trial ``k`` is proposed
once trials ``0 .. k - window`` have been told, and results are told in trial order), so a
resumed experiment replays its history from ``trials.jsonl`` into a fresh strategy and gets the
same proposals.

Implementing a strategy: subclass :class:`Strategy`, give it a ``Config`` dataclass (its keys,
checked by ``check()``), implement :meth:`Strategy._propose` (and :meth:`Strategy._tell` if it
learns), and register it in :data:`nnabla_nas.trials.STRATEGIES`.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ..errors import ConfigError
from .record import TrialRecord
from .space import Architecture, SearchSpace

__all__ = ["NoConfig", "Strategy", "fitness"]

logger = logging.getLogger(__name__)


@dataclass
class NoConfig:
    """A strategy without options."""

    def check(self) -> None:
        """Nothing to check."""


def fitness(record: TrialRecord) -> float:
    """What a strategy maximises: the record's score, ``-inf`` when the trial failed or breaks
    a hard constraint."""
    if record.status != "ok" or record.score is None or not record.feasible:
        return -math.inf
    return float(record.score)


class Strategy(abc.ABC):
    """Base of the multi-trial strategies.

    Args:
        space: the decisions to search.
        seed: the seed of every random draw the strategy makes.
        config: the strategy's options (an instance of its ``Config``; default options when
            None).

    Raises:
        ConfigError: an option is out of range (the message names the key).
    """

    #: The strategy's options.
    Config: ClassVar[type] = NoConfig

    def __init__(self, space: SearchSpace, seed: int = 0, config: Any = None) -> None:
        if not isinstance(space, SearchSpace):
            raise TypeError(f"space must be a SearchSpace, got {type(space).__name__}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"must be an integer >= 0, got {seed!r}", "seed")
        self.space = space
        self.seed = int(seed)
        self.config = config if config is not None else self.Config()
        if not isinstance(self.config, self.Config):
            raise TypeError(f"{type(self).__name__} takes a {self.Config.__name__}, "
                            f"got {type(self.config).__name__}")  # fmt: skip
        self.config.check()
        self.rng = np.random.default_rng(self.seed)
        #: How many architectures were proposed / results told so far.
        self.proposed = 0
        self.told = 0

    @property
    def name(self) -> str:
        """The strategy's class name (its registry name)."""
        return type(self).__name__

    @property
    def pending(self) -> int:
        """Proposals whose result has not been told yet."""
        return self.proposed - self.told

    def propose(self) -> Architecture | None:
        """The next architecture to evaluate (trial number :attr:`proposed`), or None when the
        strategy has nothing left to propose (e.g. every architecture was proposed)."""
        architecture = self._propose()
        if architecture is None:
            return None
        architecture = self.space.check(architecture, key=f"{self.name} proposal")
        self.proposed += 1
        return architecture

    def tell(self, record: TrialRecord) -> None:
        """The result of an earlier proposal (told in trial order by the driver)."""
        if not 0 <= record.trial < self.proposed:
            raise ValueError(f"trial {record.trial} was not proposed (proposed: {self.proposed})")
        self._tell(record)
        self.told += 1

    @abc.abstractmethod
    def _propose(self) -> Architecture | None:
        """The next architecture, or None (see :meth:`propose`)."""

    def _tell(self, record: TrialRecord) -> None:  # noqa: B027 - optional hook
        """Learns from a result (nothing by default)."""

    def describe(self) -> dict[str, Any]:
        """``{"name", "seed", "config"}``: what must match for a resumed experiment."""
        return {"name": self.name, "seed": self.seed, "config": dataclasses.asdict(self.config)}
