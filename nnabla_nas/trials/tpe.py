"""``TpeTrials``: the Tree-structured Parzen Estimator through Optuna's sampler.

Bergstra, Bardenet, Bengio & Kégl, "Algorithms for Hyper-Parameter Optimization", NeurIPS 2011
(TPE), as implemented by Optuna's :class:`optuna.samplers.TPESampler` (Akiba et al., KDD 2019).
Each decision is a categorical parameter over its candidate indices; after
``n_startup_trials`` random trials, TPE models the good and the bad trials' candidates with
Parzen estimators and proposes the architecture maximising their ratio. Optuna's ask-and-tell
interface keeps Optuna's study in memory: the experiment's state stays ``trials.jsonl`` (a
resumed experiment replays it into a fresh study, with the same seed and the same proposals).

Trials that did not finish are told as failed (TPE ignores them); a trial breaking a hard
constraint is told with its score and a positive constraint value (Optuna's constrained TPE).

Optuna is an optional dependency: ``pip install 'nnabla_nas[tpe]'``.

Not implemented: Optuna's pruners (early stopping inside a trial needs the ``train``
evaluator's epochs), persistent Optuna storages.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .record import TrialRecord
from .space import Architecture, SearchSpace
from .strategy import Strategy

__all__ = ["TpeConfig", "TpeTrials"]

logger = logging.getLogger(__name__)


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise ConfigError(
            "TpeTrials needs Optuna, which is not installed; install it with "
            "`pip install 'nnabla_nas[tpe]'` (or `pip install 'optuna>=5'`), or choose "
            "another strategy (RandomTrials, EvolutionSearcher)",
            "algorithm",
        ) from None
    return optuna


@dataclass
class TpeConfig:
    """Options of :class:`TpeTrials` (those of Optuna's ``TPESampler``).

    Attributes:
        n_startup_trials: random trials before TPE's model is used.
        n_ei_candidates: candidates TPE scores per proposal.
        multivariate: one joint Parzen estimator over every decision instead of one per
            decision (Falkner et al., 2018).
        constant_liar: let TPE count pending trials as bad ones (spreads parallel proposals).
    """

    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool = False
    constant_liar: bool = False

    def check(self) -> None:
        """Refuses negative counts."""
        if self.n_startup_trials < 0:
            raise ConfigError(f"must be >= 0, got {self.n_startup_trials}",
                              "searcher.n_startup_trials")  # fmt: skip
        if self.n_ei_candidates < 1:
            raise ConfigError(f"must be >= 1, got {self.n_ei_candidates}",
                              "searcher.n_ei_candidates")  # fmt: skip


class TpeTrials(Strategy):
    """TPE over the space's decisions, through an in-memory Optuna study.

    Raises:
        ConfigError: Optuna is not installed (the message says how to install it).
    """

    Config = TpeConfig

    def __init__(self, space: SearchSpace, seed: int = 0, config: TpeConfig | None = None) -> None:
        super().__init__(space, seed, config)
        optuna = _optuna()
        optuna.logging.set_verbosity(optuna.logging.WARNING)  # no line per trial on stderr
        cfg = self.config
        sampler = optuna.samplers.TPESampler(
            seed=self.seed,
            n_startup_trials=cfg.n_startup_trials,
            n_ei_candidates=cfg.n_ei_candidates,
            multivariate=cfg.multivariate,
            constant_liar=cfg.constant_liar,
        )
        self.study = optuna.create_study(direction="maximize", sampler=sampler)
        self._distributions = {
            label: optuna.distributions.CategoricalDistribution(list(range(len(names))))
            for label, names in space.choices.items()
        }
        self._asked: dict[int, Any] = {}

    def _propose(self) -> Architecture:
        trial = self.study.ask(self._distributions)
        self._asked[self.proposed] = trial
        return {label: int(trial.params[label]) for label in self.space.labels}

    def _tell(self, record: TrialRecord) -> None:
        optuna = _optuna()
        trial = self._asked.pop(record.trial)
        if record.status != "ok" or record.score is None:
            self.study.tell(trial, state=optuna.trial.TrialState.FAIL)
            return
        trial.set_constraint("hard_constraints", 0.0 if record.feasible else 1.0)
        self.study.tell(trial, float(record.score))
