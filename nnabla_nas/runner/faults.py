"""Faults of a run: signals, non-finite values, a full or unwritable disk.

- A NaN/Inf loss or parameter raises :class:`~nnabla_nas.errors.NonFiniteError` (the message
  names the iteration and the last good checkpoint) before anything more is written.
- An OSError while writing becomes :class:`~nnabla_nas.errors.OutputError` naming the file (the
  files written before are intact: every write is atomic).
- SIGINT/SIGTERM set a flag (:meth:`Faults.stop_on_signals`): the loop finishes its step, writes
  a checkpoint and raises :class:`~nnabla_nas.errors.Interrupted`; a second signal acts at once.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import re
import shutil
import signal
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np

from ..errors import Interrupted, NonFiniteError, OutputError
from ..utils.lock import held_lock
from .state import describe

__all__ = ["Faults", "LogFile", "abandon_event_writer", "quiet_event_threads"]

logger = logging.getLogger(__name__)

_HINTS = {
    errno.ENOSPC: "the disk is full: free some space",
    errno.EDQUOT: "the disk quota is exceeded: free some space",
    errno.EROFS: "{folder} is on a read-only file system",
    errno.EACCES: "{folder} is not writable: fix its permissions",
    errno.EPERM: "{folder} is not writable: fix its permissions",
}


class LogFile(logging.FileHandler):
    """The handler of ``log.txt``: a line that cannot be written (a full disk) is dropped
    without the traceback :mod:`logging` prints on stderr; the run's own error reports the
    failed write, naming the file."""

    def handleError(self, record: logging.LogRecord) -> None:  # noqa: N802 (logging's name)
        if isinstance(sys.exc_info()[1], OSError):
            return
        super().handleError(record)


def _quiet_event_thread(args: Any) -> None:
    """``threading.excepthook``: tensorboardX's writer thread failing on a full disk is not
    printed (the run reports the failed write itself, naming the file)."""
    if isinstance(args.exc_value, OSError) and type(args.thread).__module__.startswith(
        "tensorboardX"
    ):
        logger.debug("TensorBoard's writer thread stopped: %s", args.exc_value)
        return
    _PREVIOUS_HOOK[0](args)


_PREVIOUS_HOOK: list[Any] = []


def quiet_event_threads() -> None:
    """Installs :func:`_quiet_event_thread` (once per process)."""
    if threading.excepthook is not _quiet_event_thread:
        _PREVIOUS_HOOK[:] = [threading.excepthook]
        threading.excepthook = _quiet_event_thread


def abandon_event_writer(writer: Any) -> None:
    """Ends a tensorboardX ``SummaryWriter`` whose ``close()`` failed (a full disk): its thread
    is stopped, its files are closed, and its exit hook does nothing more, so that none of them
    prints a traceback after the run's own message. The events it still held are lost (a
    resume cuts the files back to the checkpoint anyway)."""
    quiet_event_threads()
    for file_writer in list((getattr(writer, "all_writers", None) or {}).values()):
        events = getattr(file_writer, "event_writer", None)
        if events is None or getattr(events, "_closed", True):
            continue
        events._closed = True  # close(), flush() and add_event() are no-ops from now on
        worker = getattr(events, "_worker", None)
        if worker is not None and worker.is_alive():
            with contextlib.suppress(Exception):
                events._event_queue.put(worker._shutdown_signal)
            worker.join(timeout=10)
        with contextlib.suppress(Exception):
            events._ev_writer.close()
    with contextlib.suppress(Exception):
        writer.file_writer = writer.all_writers = None


class Faults:
    """Fault messages and the stop flag of one run.

    Args:
        output: the output folder.
        position: ``position() -> (epoch, step, iteration)`` of the run now.
    """

    def __init__(self, output: Path, position: Callable[[], tuple[int, int, int]]) -> None:
        self.output = Path(output)
        self._position = position
        self.stop_signal: int | None = None
        #: The last checkpoint written or loaded: ``(position, folder)``.
        self.saved: tuple[tuple[int, int, int], Path] | None = None
        #: Waits for a checkpoint being written in the background (set by the loop), so that
        #: :attr:`saved` is final when a message names it.
        self.settle_writes: Callable[[], None] = lambda: None
        quiet_event_threads()

    def last_checkpoint_text(self) -> str:
        """Where the last good checkpoint is, for messages."""
        self.settle_writes()
        if self.saved is None:
            return "no checkpoint was written yet"
        return f"the last good checkpoint is {self.saved[1]} ({describe(self.saved[0])})"

    def non_finite(self, what: str, done: bool = False) -> NonFiniteError:
        """The error for a NaN or Inf found in the next step (``done``: found after the step
        the iteration counts, e.g. during evaluation or a checkpoint)."""
        epoch, step, iteration = self._position()
        if not done:
            where = f"iteration {iteration + 1} (epoch {epoch + 1}, step {step + 1})"
        elif step == 0:
            where = f"iteration {iteration} (end of epoch {epoch})"
        else:
            where = f"iteration {iteration} (epoch {epoch + 1}, step {step})"
        return NonFiniteError(
            f"{what} at {where}: the run stops without writing anything more; "
            f"{self.last_checkpoint_text()}; the output files hold the values of the last "
            "completed epoch. Lower the learning rate or set a grad_clip and start again."
        )

    def output_error(self, err: OSError) -> OutputError:
        """An OSError of a write as an OutputError naming the file and the fix."""
        reason = err.strerror or str(err)
        # A temporary file of an atomic write stands for the file it was to replace.
        target = str(err.filename or "a file")
        target = re.sub(r"/\.([^/]+)\.[^./]+\.tmp(\.[^./]*)?$", r"/\1", target)
        inside = target == "a file" or Path(os.path.abspath(target)).is_relative_to(
            os.path.abspath(self.output)
        )
        folder = "the output folder" if inside else f"the folder of {target}"
        hint = _HINTS.get(err.errno, "fix the cause").format(folder=folder)
        iteration = self._position()[2]
        return OutputError(
            f"writing {target} failed at iteration {iteration} ({reason}); the files "
            f"written before are intact and {self.last_checkpoint_text()}; {hint}, then resume",
            output=str(self.output),
        )

    def check_free_space(self, num_values: int) -> None:
        """Refuses to start when the disk cannot hold this run's checkpoints and weights.

        Args:
            num_values: the values of every parameter saved (float32 each).
        """
        # A checkpoint holds the parameters and up to two solver states per weight; two coexist
        # while a new one is written. Better refused now than after hours.
        size = int(num_values) * 4
        need = 2 * 3 * size + 2 * size + (1 << 20)
        free = shutil.disk_usage(self.output).free
        if free < need:
            raise OutputError(
                f"the disk of {self.output} has {free / 1e6:.1f} MB free; this run's checkpoints "
                f"and weights need about {need / 1e6:.1f} MB: free some space or choose another -o",
                output=None,
            )

    def check_output(self) -> None:
        """Raises OutputError when the output folder was deleted or moved since the run locked
        it (see :mod:`nnabla_nas.utils.lock`; nothing to check without the lock: a rank other
        than 0)."""
        lock = held_lock(self.output)
        if lock is not None:
            lock.check()

    def check_finite(self, arrays: dict[str, np.ndarray]) -> None:
        """Raises NonFiniteError for the first array holding NaN or Inf (checked after a step)."""
        for key, value in arrays.items():
            if not np.all(np.isfinite(value)):
                raise self.non_finite(f"parameter {key} holds NaN or Inf", done=True)

    def interrupted(self) -> Interrupted:
        """The error that ends a run stopped by :attr:`stop_signal` (after its checkpoint)."""
        signum = self.stop_signal
        self.settle_writes()
        assert signum is not None and self.saved is not None
        return Interrupted(
            f"stopped by {signal.Signals(signum).name} ({describe(self.saved[0])}); "
            f"checkpoint written to {self.saved[1]}",
            signum,
            output=str(self.output),
        )

    @contextlib.contextmanager
    def stop_on_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM set :attr:`stop_signal`: the loop finishes its step, writes a
        checkpoint and raises Interrupted. A second signal acts at once (the previous handler
        is back)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous: dict[int, Any] = {}

        def handler(signum: int, frame: Any) -> None:
            signal.signal(signum, previous[signum])
            if self.stop_signal is None:
                self.stop_signal = signum
                logger.warning(
                    "%s received: finishing the current step and writing a checkpoint "
                    "(send it again to stop at once)",
                    signal.Signals(signum).name,
                )

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handler)
        try:
            yield
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)
