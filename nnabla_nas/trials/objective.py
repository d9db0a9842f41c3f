"""What a trial is worth: hardware estimates per trial, and the score under constraints.

Hardware estimates (:class:`HardwareEstimates`) are computed in the driver for every trial,
from the space's model and the estimators of :mod:`nnabla_nas.estimator`
(``predict(model, architecture)`` with the trial's explicit architecture): by default the
learnable parameters (``params``) and multiply-accumulates (``macs``), plus one entry per
``regularizer`` section (e.g. ``latency`` in ms). A table-only search has no model: its
figures come from the table (NAS-Bench-Macro's ``params`` and ``flops``).

The objective (:class:`Objective`) turns a trial's figures into its score, the way the
``regularizer`` section constrains the one-shot searchers' REINFORCE reward:

- the score is the evaluator's ``metric`` times ``min(1, bound / value) ** weight`` for every
  constraint (MnasNet's soft constraint; ``weight`` 0: the value is only reported);
- a ``hard`` constraint also makes a trial with ``value > bound`` infeasible: strategies see it
  as the worst score and it is never the experiment's best.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from typing import Any, Iterable, Mapping, Sequence

from ..errors import ConfigError, NnasError

__all__ = ["Constraint", "HardwareEstimates", "Objective"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Constraint:
    """A constraint on one figure of a trial (an estimate or an evaluator's figure).

    Attributes:
        key: the figure (``"latency"``, ``"macs"``, ``"params"``, a table's ``"flops"``).
        bound: the budget, in the figure's unit.
        weight: the exponent of the soft factor ``min(1, bound / value) ** weight``.
        hard: a trial above ``bound`` is infeasible.
    """

    key: str
    bound: float
    weight: float = 0.0
    hard: bool = False

    def __post_init__(self) -> None:
        if not self.bound > 0:
            raise ConfigError(f"must be > 0, got {self.bound}", f"regularizer.{self.key}.bound")
        if self.weight < 0:
            raise ConfigError(f"must be >= 0, got {self.weight}",
                              f"regularizer.{self.key}.weight")  # fmt: skip

    @classmethod
    def from_regularizer(cls, label: str, cfg: Any, hard: bool = False) -> Constraint:
        """The constraint of one ``regularizer`` section (a ``RegularizerConfig``): its
        ``bound`` and ``weight``, on the estimate named ``label``."""
        return cls(label, float(cfg.bound), float(cfg.weight), hard)


class Objective:
    """The score of a trial: ``metric`` under constraints (see the module docstring).

    Args:
        metric: the evaluator's figure to maximise (positive, e.g. an accuracy).
        constraints: the constraints, applied in order.
    """

    def __init__(self, metric: str, constraints: Sequence[Constraint] = ()) -> None:
        self.metric = metric
        self.constraints = tuple(constraints)

    def check(self, available: Iterable[str]) -> None:
        """Refuses a metric or constraint on a figure no trial will have.

        Args:
            available: the evaluator's numeric figures and the estimates' names.
        """
        names = sorted(set(available))
        if self.metric not in names:
            raise ConfigError(f"the evaluator reports no {self.metric!r}; valid: {names}",
                              "metric")  # fmt: skip
        for c in self.constraints:
            if c.key not in names:
                raise ConfigError(f"no trial figure or estimate is named {c.key!r}; valid: "
                                  f"{names}", f"regularizer.{c.key}")  # fmt: skip

    def __call__(
        self, scores: Mapping[str, Any], estimates: Mapping[str, float]
    ) -> tuple[float, bool]:
        """``(score, feasible)`` of a trial's figures (estimates first, then scores)."""
        # Imported here: workers import this package and need no nnabla for a table.
        from ..estimator.regularizer import reward_factor

        def value(key: str) -> float:
            for source in (estimates, scores):
                if key in source:
                    return float(source[key])
            raise NnasError(f"the trial has no figure {key!r} (figures: {sorted(scores)}, "
                            f"estimates: {sorted(estimates)})")  # fmt: skip

        score, feasible = value(self.metric), True
        for c in self.constraints:
            v = value(c.key)
            score *= reward_factor(v, c.bound, c.weight)
            feasible &= not (c.hard and v > c.bound)
        return score, feasible

    def describe(self) -> dict[str, Any]:
        """The metric and constraints (JSON), for ``experiment.json``."""
        return {"metric": self.metric, "constraints": [asdict(c) for c in self.constraints]}


class HardwareEstimates:
    """The hardware figures of every trial, from the space's model.

    Args:
        model: the supernet the architectures are drawn from.
        estimators: ``name -> Estimator`` (each gives ``predict(model, architecture)``).
    """

    def __init__(self, model: Any, estimators: Mapping[str, Any]) -> None:
        self.model = model
        self.estimators = dict(estimators)

    @classmethod
    def default(
        cls,
        model: Any,
        input_shape: Sequence[int],
        extra: Mapping[str, Any] | None = None,
        batch_size: int = 1,
    ) -> HardwareEstimates:
        """``params`` and ``macs`` (``ParamsEstimator``, ``FlopsEstimator``) plus ``extra``
        (e.g. ``{"latency": LatencyEstimator(...)}`` from a regularizer section)."""
        from ..estimator import FlopsEstimator, ParamsEstimator

        estimators = {
            "params": ParamsEstimator(input_shape, batch_size),
            "macs": FlopsEstimator(input_shape, batch_size),
        }
        estimators.update(extra or {})
        return cls(model, estimators)

    def names(self) -> list[str]:
        """The estimates' names."""
        return list(self.estimators)

    def __call__(self, architecture: Mapping[str, int]) -> dict[str, float]:
        """``{name: value}`` of one architecture."""
        return {n: float(e.predict(self.model, architecture)) for n, e in self.estimators.items()}

    def describe(self) -> dict[str, str]:
        """``{name: estimator class}``."""
        return {n: type(e).__name__ for n, e in self.estimators.items()}
