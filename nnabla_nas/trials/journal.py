"""``trials.jsonl``: the experiment's state, one finished trial per line, in finishing order.

Each record is appended as one write and synced (:func:`nnabla_nas.utils.io.append_line`), so
a driver killed at any moment leaves every earlier record whole and at most a torn last line.
Reading skips such a line (and :meth:`Journal.repair` cuts it off before new records are
appended); any other unreadable line is an error naming the file and the line.
"""

from __future__ import annotations

import json
import logging
import math
import os
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ..utils.io import append_line
from .record import TrialRecord

__all__ = ["Journal"]

logger = logging.getLogger(__name__)


def _finite(value: Any) -> Any:
    """JSON has no NaN/Infinity: non-finite floats are written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


class Journal:
    """The trial log of an output folder.

    Args:
        path: the ``trials.jsonl`` file.
    """

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path)

    def exists(self) -> bool:
        """Whether the file exists and holds at least one byte."""
        return self.path.is_file() and self.path.stat().st_size > 0

    def _lines(self) -> tuple[list[tuple[int, str]], int]:
        """``([(line number, text)], length of the whole lines in bytes)``."""
        if not self.path.is_file():
            return [], 0
        data = self.path.read_bytes()
        end = data.rfind(b"\n") + 1  # bytes after the last newline: a torn record
        if end < len(data):
            logger.warning("%s: ignoring a torn last line (%d bytes: the driver stopped while "
                           "writing it)", self.path, len(data) - end)  # fmt: skip
        text = data[:end].decode("utf-8", errors="replace")
        return [(i + 1, line) for i, line in enumerate(text.splitlines()) if line.strip()], end

    def read(self) -> list[TrialRecord]:
        """The records, in file order (a trial recorded twice keeps its first record).

        Raises:
            ConfigError: a whole line is not a trial record (the message names the line).
        """
        records: list[TrialRecord] = []
        seen: set[int] = set()
        lines, _ = self._lines()
        for number, line in lines:
            try:
                record = TrialRecord.from_dict(json.loads(line))
            except (ValueError, TypeError) as err:
                raise ConfigError(
                    f"line {number} is not a trial record ({err}); remove the line or start "
                    "the experiment in a new output folder",
                    str(self.path),
                ) from None
            if record.trial in seen:
                logger.warning("%s: trial %d is recorded twice; keeping the first record",
                               self.path, record.trial)  # fmt: skip
                continue
            seen.add(record.trial)
            records.append(record)
        return records

    def repair(self) -> None:
        """Cuts off a torn last line, so that the next record starts on a line of its own."""
        if not self.path.is_file():
            return
        _, end = self._lines()
        if end < self.path.stat().st_size:
            os.truncate(self.path, end)

    def append(self, record: TrialRecord) -> None:
        """Appends one record (one line, synced to disk)."""
        append_line(self.path, json.dumps(_finite(record.to_dict()), separators=(",", ":")))
