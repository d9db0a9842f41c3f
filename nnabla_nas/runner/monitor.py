"""Monitoring: the log (console and ``log.txt``), TensorBoard and ``results.json``.

Only rank 0 of a data-parallel run writes: the other ranks get a writer that drops everything.
TensorBoard files are closed at every checkpoint (then all their events are on disk) and each has
a unique, ordered name; a resumed run cuts them back to their sizes at the checkpoint
(:meth:`Monitor.restore_event_files`), so TensorBoard shows no step twice.
"""

from __future__ import annotations

import itertools
import logging
import os
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from ..distributed import Communicator
from ..utils.io import atomic_write_json
from .faults import LogFile, abandon_event_writer

__all__ = ["Monitor", "setup_logging", "log_to_file"]

logger = logging.getLogger(__name__)

_WRITER_IDS = itertools.count()  # TensorBoard event files opened by this process
_FORMAT = "%(asctime)s {prefix}[%(levelname)s] %(message)s"
_DATE = "%Y-%m-%d %H:%M:%S"


def setup_logging(output: Path | None, rank: int = 0) -> None:
    """Console logging of the ``nnabla_nas`` logger, plus ``OUTPUT/log.txt``.

    A data-parallel process other than rank 0 (``rank > 0``) logs only its errors, to the
    console, prefixed with its rank: rank 0 reports the run.
    """
    root = logging.getLogger("nnabla_nas")
    root.setLevel(logging.INFO if rank == 0 else logging.ERROR)
    root.propagate = False
    for h in list(root.handlers):
        root.removeHandler(h)
        h.close()
    prefix = f"[rank {rank}] " if rank else ""
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(logging.Formatter(_FORMAT.format(prefix=prefix), _DATE))
    root.addHandler(console)
    if output is not None and rank == 0:
        log_to_file(output)


def log_to_file(output: Path) -> logging.Handler | None:
    """Adds ``OUTPUT/log.txt`` to the ``nnabla_nas`` logger (once); returns the new handler,
    or None when the file is already logged to."""
    root = logging.getLogger("nnabla_nas")
    path = os.path.abspath(Path(output) / "log.txt")
    for h in root.handlers:
        if isinstance(h, logging.FileHandler) and os.path.abspath(h.baseFilename) == path:
            return None
    handler = LogFile(path, mode="a")  # (a full disk drops lines without a traceback)
    handler.setFormatter(logging.Formatter(_FORMAT.format(prefix=""), _DATE))
    root.addHandler(handler)
    if root.level == logging.NOTSET or root.level > logging.INFO:
        root.setLevel(logging.INFO)
    return handler


class _NullWriter:
    """The TensorBoard writer of the ranks other than 0: every call does nothing."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


_NULL_WRITER = _NullWriter()


class Monitor:
    """TensorBoard and result files of one output folder.

    Args:
        output: the output folder.
        comm: the data-parallel processes (only rank 0 writes).
    """

    def __init__(self, output: Path, comm: Communicator) -> None:
        self.output = Path(output)
        self.comm = comm
        self._writer: Any = None

    @property
    def writer(self) -> Any:
        """The TensorBoard writer (opened on first use; closed by :meth:`close`)."""
        if not self.comm.is_main:
            return _NULL_WRITER
        if self._writer is None:
            from tensorboardX import SummaryWriter

            # A unique file per writer: two writers opened in the same second (e.g. a run and its
            # resume in one process) must not share one, so the counter is the process's.
            suffix = f".{os.getpid()}.{next(_WRITER_IDS):06d}"  # padded: readers sort by name
            self._writer = SummaryWriter(
                str(self.output / "tensorboard"), flush_secs=10, filename_suffix=suffix
            )
        return self._writer

    def close(self) -> None:
        """Closes the writer: it drains tensorboardX's queue (flush() does not), so the events
        are all on disk; the next event opens a new file."""
        if self._writer is not None:
            writer, self._writer = self._writer, None
            try:
                writer.close()
            except OSError:  # (a full disk: no traceback from tensorboardX's thread, exit hook)
                abandon_event_writer(writer)
                raise

    def scalars(self, tag: str, values: Mapping[str, float], step: int) -> None:
        """Writes ``values`` to TensorBoard under ``tag/``."""
        for k, v in values.items():
            self.writer.add_scalar(f"{tag}/{k}", v, step)

    def write_results(self, summary: Mapping[str, Any]) -> None:
        """Writes ``results.json`` atomically (rank 0)."""
        if self.comm.is_main:
            atomic_write_json(self.output / "results.json", dict(summary))

    # ------------------------------------------------------------------ resume
    def event_files(self) -> dict[str, int]:
        """The size of every event file (recorded in checkpoints)."""
        folder = self.output / "tensorboard"
        if not folder.is_dir():
            return {}
        return {
            p.relative_to(folder).as_posix(): p.stat().st_size
            for p in sorted(folder.rglob("events.out.tfevents.*"))
        }

    def restore_event_files(self, sizes: Mapping[str, int]) -> None:
        """Cuts the event files back to ``sizes`` (removes those written after it)."""
        # TensorBoard's own purge_step cannot be used: per-epoch tags count epochs, not
        # iterations.
        folder = self.output / "tensorboard"
        if not self.comm.is_main or not folder.is_dir():
            return
        for path in sorted(folder.rglob("events.out.tfevents.*")):
            size = sizes.get(path.relative_to(folder).as_posix())
            if size is None:
                path.unlink()
            elif path.stat().st_size > size:
                os.truncate(path, size)
