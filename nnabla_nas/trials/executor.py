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
import time
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
    """Runs every trial as a task on a Dask cluster, never more at once than worker threads.

    Trials beyond the threads alive wait in the driver, not on a worker: a worker that dies
    (or restarts) then takes only the trial it was running with it, never one queued behind it
    (Dask places tasks on busy workers when none is idle, and loses them all with the worker).

    Args:
        client: a connected ``distributed.Client``.
        evaluator: the evaluator (pickled with each task).
        workers: the default window (default: the cluster's workers now, at least 1).
        poll: seconds between looks at the cluster's workers while trials wait for one.
    """

    def __init__(
        self, client: Any, evaluator: Evaluator, workers: int | None = None, poll: float = 0.5
    ) -> None:
        from .cluster import worker_count

        self.client = client
        self.evaluator = evaluator
        self.workers = workers if workers is not None else max(1, worker_count(client))
        self.poll = poll
        self._queue: collections.deque[TrialRequest] = collections.deque()
        self._running: dict[str, tuple[Any, TrialRequest]] = {}  # key -> (future, request)
        self._run = uuid.uuid4().hex[:8]  # task keys are unique across driver sessions
        self._starved = False

    def submit(self, request: TrialRequest) -> None:
        self._queue.append(request)
        self._dispatch()

    def _dispatch(self) -> None:
        """Hands queued trials to Dask while a worker thread is free."""
        if not self._queue:
            return
        threads = sum(self.client.nthreads().values())  # asks the scheduler: fresh
        if threads == 0 and not self._starved:
            logger.warning("no Dask worker is connected; %d trials wait", len(self._queue))
        self._starved = threads == 0
        while self._queue and len(self._running) < threads:
            request = self._queue.popleft()
            key = f"trial-{request.trial}-{request.attempt}-{self._run}"
            future = self.client.submit(run_trial, self.evaluator, request, key=key, pure=False)
            self._running[future.key] = (future, request)

    def wait(self) -> Finished:
        if not self._queue and not self._running:
            raise RuntimeError("no trial was submitted")
        last_dispatch = time.monotonic()
        while True:
            done = [f for f, _ in self._running.values() if f.done()]
            if done:  # the earliest trial first when several finished
                return self._finished(min(done, key=lambda f: self._running[f.key][1].trial))
            if self._queue and time.monotonic() - last_dispatch >= self.poll:
                self._dispatch()  # a worker may have joined (a restarted one)
                last_dispatch = time.monotonic()
            time.sleep(0.01)

    def _finished(self, future: Any) -> Finished:
        from distributed import KilledWorker

        _, request = self._running.pop(future.key)
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
