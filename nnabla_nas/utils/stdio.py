"""Standard streams read through pipes by another process (an MPI launcher, a test runner).

Before ``MPI_Abort`` a process must make sure that what it printed has been *read* by the
launcher, not only written into the pipe: MPICH's Hydra launcher, when the last words and the
abort request are both pending at once (a loaded machine, where the launcher was not scheduled
in between), may handle the abort first and end the job before forwarding the words, which are
then lost (``stderr`` empty after the abort; reproduced by stopping the launcher while a rank
fails, see ``tests/distributed/test_data_parallel.py``). Waiting until the pipe is drained orders
the two: the launcher has taken the message before the abort request exists.
"""

from __future__ import annotations

import array
import fcntl
import os
import stat
import sys
import termios
import time
from typing import IO, Iterable

__all__ = ["unread_bytes", "wait_until_read"]


def unread_bytes(stream: IO) -> int | None:
    """The bytes written to ``stream``'s pipe that its reader has not read yet (after flushing
    Python's buffer); None when ``stream`` is not a pipe (a file, a terminal: nothing is in
    flight)."""
    try:
        stream.flush()
        fd = stream.fileno()
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return None
        count = array.array("i", [0])
        fcntl.ioctl(fd, termios.FIONREAD, count)  # either end of a Linux pipe answers
    except (AttributeError, OSError, ValueError):  # closed, replaced, or no file descriptor
        return None
    return int(count[0])


def wait_until_read(
    streams: Iterable[IO] | None = None, timeout: float = 5.0, interval: float = 0.005
) -> bool:
    """Flushes ``streams`` (default stdout and stderr) and waits until the readers of their
    pipes have read everything, at most ``timeout`` seconds (a reader that is gone or stuck
    must not keep a failing process alive). Returns True when nothing is left unread."""
    streams = [sys.stdout, sys.stderr] if streams is None else list(streams)
    deadline = time.monotonic() + timeout
    while True:
        if not any(unread_bytes(s) for s in streams):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)
