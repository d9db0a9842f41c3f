"""The driver loop: proposals, submissions, retries and records, in a deterministic order.

The schedule
    Trial ``k`` is proposed when exactly the results of trials ``0 .. k - window`` have been
    told to the strategy, and results are told in trial order (a result that arrives early
    waits for the earlier ones). At most ``window`` trials are proposed but untold at any
    time, so up to ``window`` trials run at once (the default window is the number of workers). The
    sequence of ``propose``/``tell`` calls is then the same whatever the workers' speeds, so a
    given seed and window always give the same trials, and a resumed experiment replays
    ``trials.jsonl`` into a fresh strategy and gets the same proposals: recorded trials are
    checked against the replayed proposals and not run again; the others are submitted.
    The price: a worker may idle while the oldest running trial holds the window (with trials
    of similar cost, little).

Faults
    A trial whose worker dies is submitted again, up to ``retries`` more times, then recorded
    as ``killed``; a trial whose evaluator raises is recorded as ``error`` (not retried: it
    would fail again). Every proposed trial is recorded exactly once.
"""

from __future__ import annotations

import logging
import time
from typing import Any, Callable, Mapping

import numpy as np

from ..errors import ConfigError
from .executor import Executor
from .objective import HardwareEstimates, Objective
from .record import TrialOutcome, TrialRecord, TrialRequest
from .strategy import Strategy

__all__ = ["Recorder", "drive", "log_record", "trial_seed"]

logger = logging.getLogger(__name__)


def trial_seed(seed: int, trial: int) -> int:
    """The seed of trial ``trial`` of an experiment seeded ``seed`` (a 31-bit integer,
    independent streams per trial)."""
    return int(np.random.SeedSequence([int(seed), int(trial)]).generate_state(1)[0] >> 1)


class Recorder:
    """Turns a finished trial into its :class:`TrialRecord`: figures, estimates, score.

    Args:
        objective: the score under constraints.
        estimates: the hardware estimates (None: none, e.g. a table-only search).
    """

    def __init__(self, objective: Objective, estimates: HardwareEstimates | None = None) -> None:
        self.objective = objective
        self.estimates = estimates

    def __call__(
        self, request: TrialRequest, outcome: TrialOutcome | None, lost: str | None
    ) -> TrialRecord:
        est = self.estimates(request.architecture) if self.estimates is not None else {}
        common = dict(
            trial=request.trial,
            architecture=dict(request.architecture),
            genotype=dict(request.genotype),
            estimates=est,
            attempts=request.attempt,
            seed=request.seed,
            finished=time.time(),
        )
        if outcome is None:
            why = f"its worker died on each of {request.attempt} attempts (last: {lost})"
            return TrialRecord(status="killed", score=None, feasible=False, error=why, **common)
        location = dict(wall_time=outcome.wall_time, worker=outcome.worker, pid=outcome.pid)
        if outcome.status != "ok":
            return TrialRecord(status="error", score=None, feasible=False, error=outcome.error,
                               **location, **common)  # fmt: skip
        score, feasible = self.objective(outcome.scores, est)
        return TrialRecord(status="ok", score=score, feasible=feasible, scores=outcome.scores,
                           **location, **common)  # fmt: skip


def _replay_mismatch(trial: int, recorded: Any, proposed: Any) -> ConfigError:
    return ConfigError(
        f"trials.jsonl records trial {trial} as {recorded}, but the strategy now proposes "
        f"{proposed}: the strategy, its options, its seed or the window changed since the "
        "experiment started; resume with the same ones, or start in a new output folder",
        "--resume",
    )


def drive(
    strategy: Strategy,
    executor: Executor,
    budget: int,
    recorder: Callable[[TrialRequest, TrialOutcome | None, str | None], TrialRecord],
    window: int | None = None,
    finished: Mapping[int, TrialRecord] | None = None,
    on_record: Callable[[TrialRecord], None] | None = None,
    retries: int = 2,
    stop: Callable[[TrialRecord], bool] | None = None,
) -> list[TrialRecord]:
    """Runs the experiment's trials (see the module docstring).

    Args:
        strategy: a fresh strategy (nothing proposed yet).
        executor: where trials run.
        budget: the number of trials in all (recorded ones included).
        recorder: builds a record from a finished trial (:class:`Recorder`).
        window: trials proposed but not yet told at once (default: ``executor.workers``).
        finished: the recorded trials by number (a resumed experiment).
        on_record: called with every new record, in finishing order (e.g. to append it to
            ``trials.jsonl``), before the strategy is told.
        retries: how many times a trial whose worker died is submitted again.
        stop: called with every new record; True ends the search early (no more proposals;
            the running trials are still recorded), e.g. once a target score is reached.

    Returns:
        Every record, in trial order.

    Raises:
        ConfigError: a recorded trial is not what the strategy proposes (the experiment was
            started with another strategy, seed or window).
    """
    window = int(window or executor.workers)
    if window < 1 or budget < 0 or retries < 0:
        raise ValueError(f"window ({window}) must be >= 1, budget ({budget}) and retries "
                         f"({retries}) >= 0")  # fmt: skip
    if strategy.proposed:
        raise ValueError("drive needs a fresh strategy (it replays the recorded trials)")
    todo = dict(finished or {})
    results: dict[int, TrialRecord] = {}
    proposed = told = running = 0
    exhausted = False  # no more proposals: the strategy has none, or stop() said so
    while True:
        # Propose what the window allows, then tell ONE result: trial k is proposed with
        # exactly max(0, k - window + 1) results told, however the results arrived.
        while not exhausted and proposed < budget and proposed - told < window:
            architecture = strategy.propose()
            if architecture is None:
                exhausted = True
                break
            genotype = dict(strategy.space.genotype(architecture))
            if proposed in todo:
                record = todo.pop(proposed)
                if record.architecture != architecture:
                    raise _replay_mismatch(proposed, record.genotype, genotype)
                results[proposed] = record
            else:
                seed = trial_seed(strategy.seed, proposed)
                executor.submit(TrialRequest(proposed, architecture, genotype, seed))
                running += 1
            proposed += 1
        if told in results:
            strategy.tell(results[told])
            told += 1
            continue
        if running == 0:
            break
        request, outcome, lost = executor.wait()
        if outcome is None and request.attempt <= retries:
            logger.warning("trial %d: worker died; submitting it again (attempt %d of %d)",
                           request.trial, request.attempt + 1, retries + 1)  # fmt: skip
            executor.submit(TrialRequest(request.trial, request.architecture, request.genotype,
                                         request.seed, request.attempt + 1))  # fmt: skip
            continue
        running -= 1
        record = recorder(request, outcome, lost)
        if on_record is not None:
            on_record(record)
        results[record.trial] = record
        if stop is not None and stop(record):
            exhausted = True
    if todo:
        logger.warning("trials.jsonl holds %d trials beyond this run's budget or the "
                       "strategy's proposals (%s...); they are kept", len(todo),
                       sorted(todo)[:5])  # fmt: skip
        results.update(todo)
    return [results[k] for k in sorted(results)]


def log_record(record: TrialRecord) -> None:
    """One log line per finished trial."""
    if record.status == "ok":
        logger.info("trial %d: score %.4g%s (%.2fs on %s)", record.trial, record.score,
                    "" if record.feasible else " (infeasible)", record.wall_time,
                    record.worker)  # fmt: skip
    else:
        logger.warning("trial %d %s: %s", record.trial, record.status, record.error)
