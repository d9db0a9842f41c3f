"""The trial record: one evaluated (or failed) architecture, as written to ``trials.jsonl``."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, Literal, Mapping

__all__ = ["STATUSES", "TrialOutcome", "TrialRecord", "TrialRequest"]

#: ``ok``: evaluated; ``error``: the evaluator raised (``error`` holds the message);
#: ``killed``: its worker died on every attempt (``attempts`` of them).
STATUSES = ("ok", "error", "killed")
Status = Literal["ok", "error", "killed"]


@dataclass(frozen=True)
class TrialRequest:
    """What a worker is sent: one trial to evaluate.

    Attributes:
        trial: the trial number (its position in the strategy's proposals, from 0).
        architecture: ``{label: candidate index}``.
        genotype: ``{label: candidate name}`` of the same architecture.
        seed: the trial's own seed (derived from the experiment seed and ``trial``).
        attempt: 1 for the first submission, 2 for the first retry after a worker died, ...
    """

    trial: int
    architecture: dict[str, int]
    genotype: dict[str, str]
    seed: int
    attempt: int = 1


@dataclass(frozen=True)
class TrialOutcome:
    """What a worker returns for a :class:`TrialRequest`.

    Attributes:
        status: ``"ok"`` or ``"error"`` (a worker that dies returns nothing).
        scores: the evaluator's figures (``{"mean_acc": 93.1, ...}``).
        error: the exception's type and message for ``"error"``.
        wall_time: seconds the evaluation took on the worker.
        worker: the worker's address (``tcp://host:port``, or ``"local"`` in-process).
        pid: the worker's process id.
    """

    status: Status
    scores: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    wall_time: float = 0.0
    worker: str | None = None
    pid: int | None = None


@dataclass(frozen=True)
class TrialRecord:
    """One line of ``trials.jsonl``.

    Attributes:
        trial: the trial number (proposal order, from 0).
        architecture: ``{label: candidate index}``.
        genotype: ``{label: candidate name}``.
        status: one of :data:`STATUSES`.
        score: the objective (the evaluator's metric, combined with the hardware constraints):
            None when the trial did not finish (``error``/``killed``) or breaks a hard
            constraint.
        feasible: whether every hard constraint holds (False for a trial without score).
        scores: the evaluator's figures.
        estimates: the hardware estimates (``{"params": ..., "macs": ...}``).
        error: what went wrong (``error``/``killed``), else None.
        attempts: how many times the trial was submitted (more than 1 after worker deaths).
        seed: the trial's seed.
        wall_time: seconds on the worker (0 for ``killed``).
        worker: the worker's address of the last attempt, when known.
        pid: the worker's process id, when known.
        finished: when the driver recorded it (Unix time).
    """

    trial: int
    architecture: dict[str, int]
    genotype: dict[str, str]
    status: Status
    score: float | None
    feasible: bool
    scores: dict[str, Any] = field(default_factory=dict)
    estimates: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    attempts: int = 1
    seed: int = 0
    wall_time: float = 0.0
    worker: str | None = None
    pid: int | None = None
    finished: float = 0.0

    @property
    def ok(self) -> bool:
        """Evaluated and feasible: a candidate for the best architecture."""
        return self.status == "ok" and self.feasible and self.score is not None

    def value(self, key: str) -> float | None:
        """A figure by name: the estimates first, then the scores (None when absent or not a
        finite number)."""
        for source in (self.estimates, self.scores):
            if key in source:
                v = source[key]
                if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                    return float(v)
                return None
        return None

    def to_dict(self) -> dict[str, Any]:
        """The JSON object of the record."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TrialRecord:
        """The record of a JSON object written by :meth:`to_dict`.

        Raises:
            ValueError: a field is missing, unknown or of the wrong kind.
        """
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ValueError(f"unknown fields {unknown}")
        record = cls(**dict(data))
        if record.status not in STATUSES:
            raise ValueError(f"status {record.status!r} is not one of {STATUSES}")
        if not isinstance(record.trial, int) or not isinstance(record.architecture, dict):
            raise ValueError("trial must be an integer and architecture an object")
        return record
