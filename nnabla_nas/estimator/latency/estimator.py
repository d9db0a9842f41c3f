"""The :class:`LatencyEstimator`: per-layer measurements from a lookup table, calibrated on
whole networks, summed over an architecture's layers."""

from __future__ import annotations

import logging
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ...errors import ConfigError
from ...module import Module
from ..base import Architecture, Layer, LayerwiseEstimator
from .measure import Timer, measure_layer, measure_network, runtime_key
from .table import SHIPPED_TABLES, LatencyTable, section_name

__all__ = ["LatencyEstimator", "LatencyOptions"]

logger = logging.getLogger(__name__)


@dataclass
class LatencyOptions:
    """``regularizer.<name>.options`` of a ``LatencyEstimator``.

    Attributes:
        warmup: untimed runs before the timed ones, per layer.
        repeat: timed runs per layer.
        shipped_tables: also consult the tables shipped with the package (same runtime only).
    """

    warmup: int = 5
    repeat: int = 30
    shipped_tables: bool = True

    def check(self) -> None:
        if self.warmup < 0:
            raise ConfigError(f"must be >= 0, got {self.warmup}", key="warmup")
        if self.repeat < 1:
            raise ConfigError(f"must be >= 1, got {self.repeat}", key="repeat")


class LatencyEstimator(LayerwiseEstimator):
    """Latency in milliseconds from per-layer measurements kept in a lookup table.

    Args:
        input_shape: one example's shape.
        batch_size: examples per forward (1: single-image inference).
        lookup_table: the table file (read if it exists, completed with new measurements);
            None keeps new measurements in memory only.
        warmup: untimed runs per layer.
        repeat: timed runs per layer.
        shipped_tables: consult the package's tables for the same runtime.
        timer: the clock (seconds; default :func:`default_timer`); tests inject a stub.
        seed: seed of the random layer inputs.

    Raises:
        ConfigError: ``lookup_table`` exists but is not a latency table.
    """

    unit = "ms"
    Options = LatencyOptions
    accepts_lookup_table = True

    def __init__(
        self,
        input_shape: Sequence[int],
        batch_size: int = 1,
        lookup_table: str | Path | None = None,
        warmup: int = 5,
        repeat: int = 30,
        shipped_tables: bool = True,
        timer: Timer | None = None,
        seed: int = 0,
        table_key: str | None = None,
    ) -> None:
        super().__init__(input_shape, batch_size)
        self.table = LatencyTable(lookup_table, key=table_key)
        self.warmup = int(warmup)
        self.repeat = int(repeat)
        self.timer = timer
        self.rng = np.random.RandomState(seed)
        self.shipped = [LatencyTable(p) for p in sorted(SHIPPED_TABLES.glob("*.json"))
                        if shipped_tables]  # fmt: skip
        #: Layers measured by this estimator (not found in any table).
        self.measured = 0
        self._entries: dict[str, dict[str, Any]] | None = None
        self._runtime: tuple[str, str] | None = None
        self._scale = 1.0

    @classmethod
    def from_config(cls, cfg: Any, input_shape: Sequence[int]) -> LatencyEstimator:
        opts = cfg.options if isinstance(cfg.options, LatencyOptions) else LatencyOptions()
        return cls(input_shape, batch_size=cfg.batch_size, lookup_table=cfg.lookup_table,
                   warmup=opts.warmup, repeat=opts.repeat, shipped_tables=opts.shipped_tables,
                   table_key="lookup_table")  # fmt: skip

    @property
    def entries(self) -> dict[str, dict[str, Any]]:
        """The table's entries for the current runtime (resolved on first use)."""
        if self._entries is None:
            self._runtime = runtime_key()
            section = self.table.section(*self._runtime)
            self._entries = section["layers"]
            for shipped in self.shipped:
                other = shipped.section(*self._runtime)
                for key, entry in other["layers"].items():
                    self._entries.setdefault(key, dict(entry))
                if "calibration" in other:
                    section.setdefault("calibration", dict(other["calibration"]))
            self._scale = float(section.get("calibration", {}).get("scale", 1.0))
            logger.debug("latency table: %d layers known for %s", len(self._entries),
                         section_name(*self._runtime))  # fmt: skip
        return self._entries

    def measure(self, layer: Layer) -> float:
        """Measures ``layer`` now and records it (milliseconds)."""
        ms, kept = measure_layer(layer, self.warmup, self.repeat, self.timer, self.rng)
        self.entries[layer.key] = {"ms": round(ms, 6), "runs": kept}
        self.measured += 1
        return ms

    def prepare(self, layers: Sequence[Layer]) -> None:
        """Measures every layer not in the table yet (one progress bar), then saves."""
        entries = self.entries
        unseen = list({layer.key: layer for layer in layers if layer.key not in entries}.values())
        if not unseen:
            return
        context, device = self._runtime or runtime_key()
        logger.info("latency: measuring %d new layers on %s (%s)...", len(unseen), context, device)
        from tqdm import tqdm

        start = time.time()
        try:
            for layer in tqdm(unseen, desc="measuring layers", leave=False, disable=None):
                self.measure(layer)
        finally:
            self.table.save()
        where = self.table.path or "memory only: set lookup_table to keep them"
        logger.info("latency: %d layers measured in %.1f s (table: %s)", len(unseen),
                    time.time() - start, where)  # fmt: skip

    @property
    def scale(self) -> float:
        """The runtime's calibration factor (1 until :meth:`calibrate` ran for it)."""
        _ = self.entries
        return self._scale

    def raw_value(self, layer: Layer) -> float:
        """The measured milliseconds of ``layer`` alone (measured now if unseen)."""
        entry = self.entries.get(layer.key)
        if entry is None:
            value = self.measure(layer)
            self.table.save()
            return value
        return float(entry["ms"])

    def layer_value(self, layer: Layer) -> float:
        """The layer's latency: its measurement times the runtime's calibration factor."""
        return self.raw_value(layer) * self.scale

    def calibrate(
        self,
        model: Module,
        architectures: Sequence[Architecture],
        rounds: int = 5,
        runs: int = 20,
        source: str = "",
    ) -> dict[str, Any]:
        """Fits the runtime's calibration factor on whole networks and saves it in the table.

        Layers measured alone run faster than inside a network (their data and code stay
        cached across the repeated runs). The fit's factor ``s`` minimises ``sum (m - s * t)^2``
        over ``architectures`` of ``model``, with ``m`` the whole network's measured latency
        (:func:`measure_network`) and ``t`` its sum of layer measurements. The table keeps one
        fit per ``source`` (e.g. per space built into it) under ``calibration.fits``; the
        runtime's factor ``calibration.scale`` is the mean of the fits' factors.

        Returns:
            this fit: ``scale``, ``networks``, ``mean_relative_error_raw`` (of ``t``) and
            ``mean_relative_error`` (of ``s * t``).
        """
        seg = self.trace(model)
        raw = np.array([sum(self.raw_value(layer) for layer in seg.active_layers(a))
                        for a in architectures])  # fmt: skip
        measured = measure_network(model, self.input_shape, architectures, self.batch_size,
                                   rounds=rounds, runs=runs, timer=self.timer)  # fmt: skip
        scale = float(np.dot(measured, raw) / np.dot(raw, raw))
        fit: dict[str, Any] = {
            "scale": round(scale, 6),
            "networks": len(architectures),
            "mean_relative_error_raw": round(float(np.mean(np.abs(raw - measured) / measured)), 4),
            "mean_relative_error": round(
                float(np.mean(np.abs(scale * raw - measured) / measured)), 4
            ),
        }
        runtime = self._runtime or runtime_key()
        section = self.table.section(*runtime)
        fits = dict(section.get("calibration", {}).get("fits", {}))
        fits[source or "default"] = fit
        mean = float(np.mean([f["scale"] for f in fits.values()]))
        section["calibration"] = {"scale": round(mean, 6), "fits": fits}
        self._scale = mean
        self._sums = weakref.WeakKeyDictionary()  # the cached sums used the old factor
        self.table.save()
        return fit

    def details(self, model: Module, architecture: Any = None) -> dict[str, float]:
        return {"ms": self.predict(model, architecture)}
