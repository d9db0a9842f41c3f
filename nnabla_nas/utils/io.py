"""Atomic file writing: a crash never leaves a half-written file behind."""

from __future__ import annotations

import contextlib
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Any, Iterator


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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent
    )
    os.close(fd)
    try:
        yield tmp
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, _mode_for(path))
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
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
