"""One file write at a time off the critical path: the checkpoint's files are written by a
thread while the next step's forward and backward passes run.

The loop hands a :class:`BackgroundWriter` a job that only writes (everything it writes was
copied before); :meth:`~BackgroundWriter.wait` joins it and raises what it raised. The loop
waits before any parameter changes again (the optimizers' first update after a checkpoint),
before its next file write and before it ends, so that the files appear in the same order as
if they were written in place, and a run killed after an update always has that checkpoint.

Only where a core is free for it (:func:`spare_core`): with as many processes as cores the
thread would take CPU time and the interpreter lock from the rank that every other rank waits
for (measured: the two-process ProxylessNAS run on two cores 1.53x faster than one process
instead of 1.81x), so there the jobs run in place.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Callable

__all__ = ["BackgroundWriter", "spare_core"]

logger = logging.getLogger(__name__)


def spare_core(processes: int) -> bool:
    """Whether this machine has more cores available to this process than ``processes`` (the
    data-parallel processes of the run, assumed on this machine)."""
    return processes < len(os.sched_getaffinity(0))


class BackgroundWriter:
    """Runs one job at a time in a thread; its exception is raised by the next :meth:`wait`.

    Args:
        enabled: False: every job runs in place, in :meth:`submit` (its error raised there).
    """

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def pending(self) -> bool:
        """A job is running, or has ended with an error not raised yet."""
        return self._thread is not None or self._error is not None

    def submit(self, job: Callable[[], None]) -> None:
        """Waits for the previous job (raising its error), then starts ``job``."""
        self.wait()
        if not self.enabled:
            job()
            return

        def run() -> None:
            try:
                job()
            except BaseException as err:  # raised in the loop's thread by wait()
                self._error = err

        self._thread = threading.Thread(target=run, name="nnabla_nas-writer", daemon=True)
        self._thread.start()

    def settle(self) -> None:
        """Waits for the running job; an error it raised stays for the next :meth:`wait`."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None

    def wait(self) -> None:
        """Waits for the running job and raises the exception it ended with, once."""
        self.settle()
        err, self._error = self._error, None
        if err is not None:
            raise err

    def close(self) -> None:
        """Waits for the running job; its error is logged, not raised (the run already ends
        with another one)."""
        try:
            self.wait()
        except BaseException as err:  # noqa: BLE001 (reported, the first error propagates)
            logger.error("a background write failed too: %s", err)
