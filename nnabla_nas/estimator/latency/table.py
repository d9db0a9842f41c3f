"""The latency lookup table: a JSON file of per-layer measurements, one section per runtime.

::

    {"format": "nnabla_nas.latency_table/1", "unit": "ms",
     "runtimes": {"cpu:float @ <cpu model>": {"context": "cpu:float", "device": "<cpu model>",
                  "nnabla": "1.39.0", "calibration": {"scale": 1.4, "fits": {...}},
                  "layers": {"<layer key>": {"ms": 0.012, "runs": 30}}}}}

Written atomically and merged with what the file holds (so processes may share one table).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import nnabla as nn

from ...errors import ConfigError
from ...utils.io import atomic_write_json

__all__ = ["FORMAT", "SHIPPED_TABLES", "LatencyTable", "section_name"]

FORMAT = "nnabla_nas.latency_table/1"
#: The folder of the tables that ship with the package.
SHIPPED_TABLES = Path(__file__).resolve().parents[1] / "tables"


def section_name(context: str, device: str) -> str:
    """The table section of one runtime: ``"<context> @ <device>"``."""
    return f"{context} @ {device}"


class LatencyTable:
    """A latency lookup table file: ``{layer key: milliseconds}`` per runtime.

    Args:
        path: the JSON file (created on the first :meth:`save`); None keeps the table in memory.
        key: the experiment-file key naming the file (for error messages).

    Raises:
        ConfigError: the file exists but is not a readable latency table (names the file).
    """

    def __init__(self, path: str | Path | None = None, key: str | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self.key = key
        self.data: dict[str, Any] = {"format": FORMAT, "unit": "ms", "runtimes": {}}
        if self.path is not None and self.path.exists():
            self.data = self.read(self.path, key)

    @staticmethod
    def read(path: Path, key: str | None = None) -> dict[str, Any]:
        """Reads and validates a table file."""
        fix = "delete it to measure again, or point lookup_table at another file"
        try:
            data = json.loads(Path(path).read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
            raise ConfigError(f"latency table {path} is not readable JSON ({err}); {fix}",
                              key=key) from None  # fmt: skip
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ConfigError(
                f'{path} is not a latency table (expected "format": "{FORMAT}"); {fix}',
                key=key,
            )
        runtimes = data.get("runtimes")
        if not isinstance(runtimes, dict):
            raise ConfigError(f'latency table {path} has no "runtimes" object; {fix}', key=key)
        for name, section in runtimes.items():
            layers = section.get("layers") if isinstance(section, dict) else None
            if not isinstance(layers, dict) or not all(
                isinstance(e, dict) and isinstance(e.get("ms"), (int, float))
                and math.isfinite(e["ms"]) and e["ms"] >= 0 for e in layers.values()
            ):  # fmt: skip
                raise ConfigError(
                    f'latency table {path}: runtime {name!r} has a malformed "layers" object '
                    f'(each entry must be {{"ms": a number >= 0, ...}}); {fix}',
                    key=key,
                )
            cal = section.get("calibration")
            if cal is not None and not (
                isinstance(cal, dict) and isinstance(cal.get("scale"), (int, float))
                and math.isfinite(cal["scale"]) and cal["scale"] > 0
            ):  # fmt: skip
                raise ConfigError(
                    f'latency table {path}: runtime {name!r} has a malformed "calibration" '
                    f'(expected {{"scale": a number > 0, ...}}); {fix}',
                    key=key,
                )
        return data

    def section(self, context: str, device: str) -> dict[str, Any]:
        """The section of one runtime (created empty when absent; a live dict): ``context``,
        ``device``, ``nnabla``, ``layers`` and, once calibrated, ``calibration``."""
        name = section_name(context, device)
        return self.data["runtimes"].setdefault(
            name, {"context": context, "device": device, "nnabla": nn.__version__, "layers": {}}
        )

    def layers(self, context: str, device: str) -> dict[str, dict[str, Any]]:
        """The entries of one runtime, ``{layer key: {"ms": ..., "runs": ...}}`` (a live dict)."""
        return self.section(context, device)["layers"]

    def save(self) -> None:
        """Writes the table atomically, merged with what the file holds now (entries measured
        by another process meanwhile are kept; ours win on the same key)."""
        if self.path is None:
            return
        if self.path.exists():
            current = self.read(self.path, self.key)
            for name, section in current["runtimes"].items():
                ours = self.data["runtimes"].setdefault(name, {**section, "layers": {}})
                for k, v in section.items():
                    if k != "layers":
                        ours.setdefault(k, v)
                for key, entry in section["layers"].items():
                    ours["layers"].setdefault(key, entry)
        atomic_write_json(self.path, self.data)
