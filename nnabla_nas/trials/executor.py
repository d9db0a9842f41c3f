"""Executors: where submitted trials run, and how a finished (or lost) one comes back.

:class:`DaskExecutor` submits each trial as a Dask task (:func:`~nnabla_nas.trials.worker.
run_trial`) and returns them as they complete; a task whose worker died comes back as lost
(``KilledWorker``), for the driver to retry. :class:`InlineExecutor` runs each trial in the
driver's process at submission (no Dask: debugging, the table benchmark).
"""

from __future__ import annotations

import abc
import collections
import logging
import uuid
from typing import Any

from .evaluator import Evaluator
from .record import TrialOutcome, TrialRequest
from .worker import describe_error, run_trial

__all__ = ["DaskExecutor", "Executor", "Finished", "InlineExecutor"]

logger = logging.getLogger(__name__)

#: ``(request, outcome, lost)``: ``outcome`` None and ``lost`` the reason when the worker died.
Finished = tuple[TrialRequest, "TrialOutcome | None", "str | None"]


class Executor(abc.ABC):
    """Runs trials; :meth:`wait` returns them one at a time as they finish."""

    #: How many trials run at once (the driver's default window).
    workers: int = 1

    @abc.abstractmethod
    def submit(self, request: TrialRequest) -> None:
        """Starts one trial."""

    @abc.abstractmethod
    def wait(self) -> Finished:
        """Blocks until a submitted trial finishes; returns it."""


class InlineExecutor(Executor):
    """Runs every trial at submission, in this process."""

    def __init__(self, evaluator: Evaluator) -> None:
        self.evaluator = evaluator
        self._done: collections.deque[Finished] = collections.deque()

    def submit(self, request: TrialRequest) -> None:
        self._done.append((request, run_trial(self.evaluator, request), None))

    def wait(self) -> Finished:
        if not self._done:
            raise RuntimeError("no trial was submitted")
        return self._done.popleft()


class DaskExecutor(Executor):
    """Runs every trial as a task on a Dask cluster.

    Args:
        client: a connected ``distributed.Client``.
        evaluator: the evaluator (pickled with each task).
        workers: trials that run at once (default: the cluster's workers now, at least 1).
    """

    def __init__(self, client: Any, evaluator: Evaluator, workers: int | None = None) -> None:
        from distributed import as_completed

        from .cluster import worker_count

        self.client = client
        self.evaluator = evaluator
        self.workers = workers if workers is not None else max(1, worker_count(client))
        self._futures: dict[str, TrialRequest] = {}
        self._completed = as_completed(loop=client.loop)
        self._run = uuid.uuid4().hex[:8]  # task keys are unique across driver sessions

    def submit(self, request: TrialRequest) -> None:
        key = f"trial-{request.trial}-{request.attempt}-{self._run}"
        future = self.client.submit(run_trial, self.evaluator, request, key=key, pure=False)
        self._futures[future.key] = request
        self._completed.add(future)

    def wait(self) -> Finished:
        from distributed import KilledWorker

        future = next(self._completed)
        request = self._futures.pop(future.key)
        try:
            outcome = future.result()
        except KilledWorker as err:
            logger.warning("trial %d (attempt %d): its worker died (%s)", request.trial,
                           request.attempt, err)  # fmt: skip
            return request, None, f"{type(err).__name__}: {err}"
        except Exception as err:  # the task could not run at all (e.g. unpicklable)
            return request, TrialOutcome("error", error=describe_error(err)), None
        finally:
            future.release()
        return request, outcome, None
