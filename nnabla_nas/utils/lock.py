"""The advisory lock of an output folder: one run (or resume) at a time in ``OUTPUT/.lock``.

:func:`lock_folder` takes an exclusive ``fcntl.flock`` on ``FOLDER/.lock`` and writes the
holder's pid and host into it; a second process asking for it is refused with a
:class:`~nnabla_nas.errors.ConfigError` naming the holder. The lock belongs to the open file:
it ends with the process, however the process ends (even by SIGKILL), so a stale ``.lock`` file
never blocks a resume. Within one process the lock is re-entrant (the command line holds it and
the loop takes it again).

While it is held, :meth:`FolderLock.check` tells whether the folder is still the one that was
locked: deleting (or moving) the output folder during a run is then reported instead of the run
silently re-creating it.
"""

from __future__ import annotations

import errno
import os
import socket
from pathlib import Path
from typing import Any

from ..errors import ConfigError, OutputError

__all__ = ["LOCK_FILE", "FolderLock", "check_unlocked", "held_lock", "lock_folder"]

#: The lock file's name in the folder.
LOCK_FILE = ".lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no advisory locks, nothing is refused
    fcntl = None  # type: ignore[assignment]

#: The locks this process holds, by the folder's real path.
_HELD: dict[str, FolderLock] = {}


def _key(folder: str | os.PathLike) -> str:
    return os.path.realpath(folder)


def _holder(path: Path) -> str:
    """Who holds the lock, as its file says (``pid 123 on host x``)."""
    try:
        text = path.read_text().split()
    except OSError:
        text = []
    if len(text) >= 2 and text[0].isdigit():
        return f"pid {text[0]} on host {text[1]}"
    return "another process"


def _refusal(folder: Path, path: Path) -> ConfigError:
    return ConfigError(
        f"{folder} is in use by another run or resume ({_holder(path)} holds {path}); wait "
        "for it to end (or stop it), or choose another -o",
        key="-o",
    )


class FolderLock:
    """An exclusive advisory lock on ``folder/.lock`` (made by :func:`lock_folder`).

    Attributes:
        folder: the locked folder.
        path: its lock file.
    """

    def __init__(self, folder: Path, fd: int) -> None:
        self.folder = folder
        self.path = folder / LOCK_FILE
        self._fd = fd
        self._count = 1
        st = os.stat(folder)
        self._identity = (st.st_dev, st.st_ino)

    def check(self) -> None:
        """Raises OutputError when the folder was deleted, moved or replaced since it was
        locked (the outputs written so far are gone from it)."""
        try:
            st = os.stat(self.folder)
            same = (st.st_dev, st.st_ino) == self._identity and os.fstat(self._fd).st_nlink > 0
        except OSError:
            same = False
        if not same:
            raise OutputError(
                f"the output folder {self.folder} was deleted or moved while the run was going "
                "(its files, the checkpoints included, are no longer where the run writes): "
                "the run stops; start it again"
            )

    def release(self) -> None:
        """Releases one hold; the last one unlocks the folder."""
        self._count -= 1
        if self._count > 0:
            return
        if _HELD.get(_key(self.folder)) is self:
            del _HELD[_key(self.folder)]
        try:
            os.close(self._fd)  # (closing the file releases the flock)
        except OSError:
            pass

    def __enter__(self) -> FolderLock:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()


def held_lock(folder: str | os.PathLike) -> FolderLock | None:
    """The lock this process holds on ``folder``, if any."""
    return _HELD.get(_key(folder))


def check_unlocked(folder: str | os.PathLike) -> None:
    """Refuses a folder whose lock another process holds, writing nothing (a folder without a
    lock file is free).

    Raises:
        ConfigError: at ``-o``, naming the holder.
    """
    folder = Path(folder)
    path = folder / LOCK_FILE
    if fcntl is None or held_lock(folder) is not None or not path.is_file():
        return
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as err:
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise _refusal(folder, path) from None
    finally:
        os.close(fd)


def lock_folder(folder: str | os.PathLike, wait: bool = False) -> FolderLock:
    """Locks the existing ``folder`` for this process (re-entrant; release every hold with
    :meth:`FolderLock.release` or a ``with`` block). ``wait``: blocks until another process
    releases it (a multi-trial worker taking over a trial's folder) instead of refusing.

    Raises:
        ConfigError: at ``-o`` when another process holds the lock (naming it).
        OSError: the lock file cannot be created.
    """
    folder = Path(folder)
    held = held_lock(folder)
    if held is not None:
        held._count += 1
        return held
    path = folder / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()} {socket.gethostname()}\n".encode())
    except OSError as err:
        os.close(fd)
        if err.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            raise _refusal(folder, path) from None
        raise
    lock = _HELD[_key(folder)] = FolderLock(folder, fd)
    return lock
