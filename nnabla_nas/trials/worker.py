"""What runs on a worker: one trial, with the evaluator's resources loaded once per process."""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from typing import Any

from ..errors import Interrupted
from .evaluator import Evaluator
from .record import TrialOutcome, TrialRequest

__all__ = ["describe_error", "load_count", "run_trial", "worker_resources"]

logger = logging.getLogger(__name__)

#: This process's loaded resources, by :meth:`Evaluator.cache_key`.
_RESOURCES: dict[str, Any] = {}
#: How many times this process loaded each key (1 per process, unless a load failed).
_LOADS: dict[str, int] = {}


def worker_resources(evaluator: Evaluator) -> Any:
    """The evaluator's resources in this process: :meth:`Evaluator.load` on first use, then
    the same object (a load that raises is not kept: the next trial loads again)."""
    key = evaluator.cache_key()
    if key not in _RESOURCES:
        _LOADS[key] = _LOADS.get(key, 0) + 1
        logger.info("loading the resources of the %s evaluator in process %d",
                    evaluator.kind, os.getpid())  # fmt: skip
        _RESOURCES[key] = evaluator.load()
    return _RESOURCES[key]


def load_count(evaluator: Evaluator) -> int:
    """How many times this process loaded the evaluator's resources."""
    return _LOADS.get(evaluator.cache_key(), 0)


def _worker_address() -> str:
    if "distributed" not in sys.modules:  # not a Dask worker (and no slow import to find out)
        return "local"
    from distributed import get_worker

    try:
        return str(get_worker().address)
    except ValueError:  # not inside a Dask task
        return "local"


def describe_error(err: BaseException) -> str:
    """``Type: message (at file:line in function)`` of the innermost frame."""
    frames = traceback.extract_tb(err.__traceback__)
    where = ""
    if frames:
        f = frames[-1]
        where = f" (at {os.path.basename(f.filename)}:{f.lineno} in {f.name})"
    return f"{type(err).__name__}: {err}{where}"


def run_trial(evaluator: Evaluator, request: TrialRequest) -> TrialOutcome:
    """Evaluates one trial; an exception becomes an ``"error"`` outcome (never raised, so the
    engine does not retry a trial that fails by itself)."""
    start = time.perf_counter()
    worker, pid = _worker_address(), os.getpid()
    try:
        resources = worker_resources(evaluator)
        scores = evaluator.evaluate(request, resources)
        if not isinstance(scores, dict) or evaluator.metric not in scores:
            raise TypeError(f"the {evaluator.kind} evaluator returned {scores!r}, which has no "
                            f"{evaluator.metric!r}")  # fmt: skip
    except Interrupted:  # a signal to the driver running trials in-process: stop, not a result
        raise
    except Exception as err:
        logger.warning("trial %d failed on %s: %s", request.trial, worker,
                       "".join(traceback.format_exception(err)))  # fmt: skip
        elapsed = time.perf_counter() - start
        return TrialOutcome("error", {}, describe_error(err), elapsed, worker, pid)
    return TrialOutcome("ok", dict(scores), None, time.perf_counter() - start, worker, pid)
