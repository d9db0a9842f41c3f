"""Monitoring: the log (console and ``log.txt``), TensorBoard and ``results.json``.

- The console log goes through ``tqdm.write``: a line clears the progress bar, prints above it
  and redraws the bar (:class:`TqdmHandler`). Figures are written without scientific notation
  (:func:`readable`).
- TensorBoard: one event file per session (a run, or each resume of it), written synchronously
  (:class:`EventWriter`: no queue, no thread), flushed at every checkpoint, holding once the
  custom-scalars layout (:attr:`Monitor.layout`: charts grouping several tags, e.g. the train,
  validation and test errors, or the probabilities of a choice's candidates). A resumed
  run cuts the files back to their sizes at the checkpoint (:meth:`Monitor.restore_event_files`),
  so TensorBoard shows no step twice.
- Only rank 0 of a data-parallel run writes: the other ranks get a writer that drops everything.
"""

from __future__ import annotations

import itertools
import logging
import math
import os
import re
import sys
import time
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from ..distributed import Communicator
from ..utils.io import atomic_write_json
from .faults import LogFile, abandon_event_writer

__all__ = [
    "EventWriter",
    "Monitor",
    "Progress",
    "TqdmHandler",
    "exact_tag",
    "log_to_file",
    "readable",
    "setup_logging",
]

logger = logging.getLogger(__name__)

_WRITER_IDS = itertools.count()  # TensorBoard event files opened by this process
_FORMAT = "%(asctime)s {prefix}[%(levelname)s] %(message)s"
_DATE = "%Y-%m-%d %H:%M:%S"


def readable(value: float) -> str:
    """A figure for people: integers with thousands separators (``2,236,682``), others with 4
    significant digits (``0.1523``, ``12.35``) or one decimal from 1,000 (``1,234.5``); never
    scientific notation (``0.000012``)."""
    v = float(value)
    if not math.isfinite(v):
        return str(v)
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}"
    if abs(v) >= 1000:
        return f"{v:,.1f}"
    if abs(v) >= 1e-3:
        return f"{v:.4g}"
    digits = 3 - int(math.floor(math.log10(abs(v))))  # 4 significant digits
    return f"{v:.{digits}f}".rstrip("0")


class TqdmHandler(logging.StreamHandler):
    """A console handler that writes through ``tqdm.write``: a progress bar on the terminal is
    cleared, the line printed above it, and the bar redrawn (lines never cut through it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            from tqdm import tqdm

            tqdm.write(self.format(record), file=self.stream)
            self.flush()
        except RecursionError:  # as logging.StreamHandler does
            raise
        except Exception:
            self.handleError(record)


class Progress:
    """``loader`` with a progress bar while it is iterated (e.g. an evaluation): any other
    attribute is the loader's.

    Args:
        loader: an iterable, with ``len()`` when the bar is to show a total.
        desc: the bar's text.
        enabled: False draws nothing (e.g. a data-parallel rank other than 0); None draws only
            on a terminal (tqdm's rule).
    """

    def __init__(self, loader: Any, desc: str, enabled: bool | None = None) -> None:
        self.loader = loader
        self.desc = desc
        self.enabled = enabled

    def __len__(self) -> int:
        return len(self.loader)

    def __getattr__(self, name: str) -> Any:
        if name == "loader":  # not set yet (copy, pickle)
            raise AttributeError(name)
        return getattr(self.loader, name)

    def __iter__(self) -> Any:
        from tqdm import tqdm

        total = len(self.loader) if hasattr(self.loader, "__len__") else None
        with tqdm(total=total, desc=self.desc, leave=False, dynamic_ncols=True,
                  disable=None if self.enabled is None else not self.enabled) as bar:  # fmt: skip
            for item in self.loader:
                yield item
                bar.update(1)


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
    console = TqdmHandler(sys.stdout)
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


def exact_tag(tag: str) -> str:
    """The custom-scalars regex that matches ``tag`` alone (tags hold letters, digits and
    ``_ - . /``: only ``.`` needs escaping)."""
    return "^" + re.sub(r"\.", r"\\.", tag) + "$"


class EventWriter:
    """A TensorBoard event file written synchronously (tensorboardX's record format and
    summaries, without its queue and thread): after :meth:`flush` every event added is in the
    file, so its size can be recorded in a checkpoint.

    Args:
        folder: the ``tensorboard/`` folder.
        suffix: the end of the file name (unique per file).
        flush_secs: the events are also flushed when this long has passed since the last
            flush (a TensorBoard watching the run sees them).
    """

    def __init__(self, folder: Path, suffix: str, flush_secs: float = 10.0) -> None:
        from tensorboardX.event_file_writer import EventsWriter

        Path(folder).mkdir(parents=True, exist_ok=True)
        self._file = EventsWriter(str(Path(folder) / "events"), suffix)
        self.flush_secs = flush_secs
        self._flushed = time.monotonic()

    def _add(self, summary: Any, step: int) -> None:
        from tensorboardX.proto.event_pb2 import Event

        self._file.write_event(Event(summary=summary, step=int(step), wall_time=time.time()))
        if time.monotonic() - self._flushed > self.flush_secs:
            self.flush()

    def add_scalar(self, tag: str, value: float, step: int) -> None:
        """A scalar."""
        from tensorboardX.summary import scalar

        self._add(scalar(tag, float(value)), step)

    def add_image(self, tag: str, image: np.ndarray, step: int, dataformats: str = "HWC") -> None:
        """An image (uint8, or float in [0, 1])."""
        from tensorboardX.summary import image as image_summary

        self._add(image_summary(tag, image, dataformats=dataformats), step)

    def add_png(self, tag: str, path: Path, step: int) -> None:
        """The PNG file ``path`` as it is (no re-encoding)."""
        from PIL import Image
        from tensorboardX.proto.summary_pb2 import Summary

        data = Path(path).read_bytes()
        with Image.open(path) as img:
            width, height = img.size
            channels = len(img.getbands())
        encoded = Summary.Image(height=height, width=width, colorspace=channels,
                                encoded_image_string=data)  # fmt: skip
        self._add(Summary(value=[Summary.Value(tag=tag, image=encoded)]), step)

    def add_custom_scalars(self, layout: Mapping[str, Mapping[str, Sequence[str]]]) -> None:
        """The custom-scalars layout: category -> chart title -> tag regexes (multi-line)."""
        from tensorboardX.summary import custom_scalars

        charts = {c: {t: ["Multiline", list(tags)] for t, tags in v.items()}
                  for c, v in layout.items()}  # fmt: skip
        self._add(custom_scalars(charts), 0)

    def flush(self) -> None:
        """Every event added so far is written to the file."""
        self._file.flush()
        self._flushed = time.monotonic()

    def close(self) -> None:
        """Flushes and closes the file."""
        self._file.close()


class _NullWriter:
    """The TensorBoard writer of the ranks other than 0: every call does nothing."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


_NULL_WRITER = _NullWriter()


def _run_layout() -> OrderedDict[str, OrderedDict[str, list[str]]]:
    """The charts of every run: errors and losses of the epochs, side by side."""
    charts: OrderedDict[str, list[str]] = OrderedDict()
    for metric in ("error", "loss"):
        charts[f"{metric} (train, valid, test)"] = [
            exact_tag(f"epoch/{split}_{metric}") for split in ("train", "valid", "test")
        ]
    return OrderedDict([("run", charts)])


class Monitor:
    """TensorBoard and result files of one output folder.

    Args:
        output: the output folder.
        comm: the data-parallel processes (only rank 0 writes).

    Attributes:
        layout: the custom-scalars layout (category -> chart title -> tag regexes), written
            once in every event file by :meth:`write_layout`.
    """

    def __init__(self, output: Path, comm: Communicator) -> None:
        self.output = Path(output)
        self.comm = comm
        self.layout = _run_layout()
        self._writer: EventWriter | None = None
        self._layout_written = False

    @property
    def writer(self) -> Any:
        """The TensorBoard writer (opened on first use; closed by :meth:`close`)."""
        if not self.comm.is_main:
            return _NULL_WRITER
        if self._writer is None:
            # A unique file per writer: two writers opened in the same second (e.g. a run and its
            # resume in one process) must not share one, so the counter is the process's.
            suffix = f".{os.getpid()}.{next(_WRITER_IDS):06d}"  # padded: readers sort by name
            self._writer = EventWriter(self.output / "tensorboard", suffix)
            self._layout_written = False
        return self._writer

    def write_layout(self) -> None:
        """Writes :attr:`layout` once per event file (TensorBoard reads one layout per file:
        called at the end of the first epoch, when every category is known)."""
        if self.comm.is_main and not self._layout_written:
            self.writer.add_custom_scalars(self.layout)
            self._layout_written = True

    def flush(self) -> None:
        """Writes every event so far to disk (before a checkpoint records the files' sizes)."""
        if self._writer is not None:
            self._writer.flush()

    def close(self) -> None:
        """Closes the writer (at the end of a session); the next event opens a new file."""
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
        """The size of every event file (recorded in checkpoints), after a :meth:`flush`."""
        self.flush()
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
