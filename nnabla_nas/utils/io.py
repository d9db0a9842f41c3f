"""Atomic file writing: a crash never leaves a half-written file behind.

A failed write raises the OSError with the path of the file it was to write (never that of a
temporary file, never none), so that the message can name it. HDF5 files are built in memory
and written as bytes (:func:`atomic_h5`): the HDF5 library may crash the process when the disk
fills up under it.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator

from ..errors import ConfigError

__all__ = [
    "append_line",
    "atomic_h5",
    "atomic_path",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "check_writable_folder",
    "current_umask",
]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[str]:
    """Yields a temporary path next to ``path``; renames it over ``path`` on success.

    The temporary file keeps ``path``'s suffix (some writers, such as nnabla's, pick the format
    from it). On an exception the temporary file is removed and ``path`` is left untouched.

    The file ends with the mode an ordinary ``open(path, "w")`` gives: that of the file it
    replaces, else ``0o666`` less the process umask (``mkstemp`` creates its files ``0o600``,
    which colleagues or a server running under another user could not read).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent
        )
        os.close(fd)
    except OSError as err:
        err.filename = str(path)
        raise
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException as err:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        # A failed write() names no file, a failed rename the temporary one: both are the
        # write of ``path``.
        if isinstance(err, OSError) and (not err.filename or str(err.filename) == tmp):
            err.filename = str(path)
        raise


def _mode_for(path: Path) -> int:
    """The permission bits a file written at ``path`` gets (see :func:`atomic_path`)."""
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except FileNotFoundError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process umask, read without changing it where Linux tells it (``/proc``)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # elsewhere: read by setting it, and restore it at once
    os.umask(mask)
    return mask


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_text(text)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Writes ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        Path(tmp).write_bytes(data)


@contextlib.contextmanager
def atomic_h5(path: str | os.PathLike) -> Iterator[Any]:
    """Yields a new HDF5 file (an ``h5py.File`` open for writing) that is written to ``path``
    atomically when the block ends without an exception.

    The file is built in memory and written to disk as plain bytes: a full disk is then an
    ordinary OSError naming ``path`` (the HDF5 library, when a write fails under it, may leave
    its state corrupt and crash the process).
    """
    import h5py

    buffer = io.BytesIO()
    with h5py.File(buffer, "w") as f:
        yield f
    atomic_write_bytes(path, buffer.getvalue())


def check_writable_folder(path: str | os.PathLike, key: str, what: str) -> None:
    """Refuses a file that could not be written later: its folder must exist (or be
    creatable) and take a new file. A probe file is created and removed at once.

    Raises:
        ConfigError: at ``key``, naming the file, when its folder cannot be written.
    """
    folder = Path(path).expanduser().absolute().parent
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    try:
        if not existing.is_dir():
            raise NotADirectoryError(f"{existing} is not a folder")
        with tempfile.TemporaryFile(dir=existing, prefix=".write-test."):
            pass
    except OSError as err:
        reason = err.strerror or str(err)
        raise ConfigError(
            f"{what} {path} cannot be written ({reason} in {existing}): choose a writable place "
            "for it",
            key=key,
        ) from None


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Writes ``obj`` as indented JSON to ``path`` atomically."""
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def append_line(path: str | os.PathLike, line: str) -> None:
    """Appends ``line`` and a newline to ``path`` as ONE write, then syncs it to disk.

    The file is opened with ``O_APPEND``: concurrent appenders never interleave, and a crash
    leaves at most a torn last line (no trailing newline), which readers of such logs skip (see
    :func:`nnabla_nas.trials.journal.read_journal`). ``line`` must not contain a newline.
    """
    if "\n" in line:
        raise ValueError("append_line writes one line: the text contains a newline")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (line + "\n").encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        written = os.write(fd, data)
        while written < len(data):  # a regular file takes it whole; retry a short write
            written += os.write(fd, data[written:])
        os.fsync(fd)
    finally:
        os.close(fd)
