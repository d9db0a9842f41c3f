"""Latency on the runtime the model runs on: :class:`LatencyEstimator` and its lookup table.

Every distinct layer (one nnabla function: type, input shapes and arguments, see
:class:`~nnabla_nas.estimator.base.Layer`) is measured once on the current nnabla context:
the function is rebuilt alone on random inputs of its shapes, run ``warmup`` times, then timed
``repeat`` times (:func:`default_timer`: CPU time of the thread on the CPU, wall time with
synchronisation on a GPU); runs outside Tukey's fences (more than 1.5 interquartile ranges
beyond the quartiles: a scheduler hiccup) are dropped and the median of the rest is kept, in
milliseconds. A layer's latency is that measurement times the runtime's calibration factor
(:meth:`LatencyEstimator.calibrate`: a layer runs faster alone, its data and code staying cached
across the repeated runs, than inside a network); an architecture's latency is the sum over its
layers; the expected latency under the architecture distribution is an nnabla expression (see
:class:`~nnabla_nas.estimator.base.LayerwiseEstimator`).

The lookup table (a JSON file, written atomically) keeps the measurements per runtime (nnabla
context and device), so a table can be reused across runs and shipped to other users of the same
device::

    {"format": "nnabla_nas.latency_table/1", "unit": "ms",
     "runtimes": {"cpu:float @ <cpu model>": {"context": "cpu:float", "device": "<cpu model>",
                  "nnabla": "1.39.0", "calibration": {"scale": 1.4, "fits": {...}},
                  "layers": {"<layer key>": {"ms": 0.012, "runs": 30}}}}}

The tables shipped in ``nnabla_nas/estimator/tables/`` (built with the command below on the
machine the project is developed on) are consulted for layers the user's table lacks, but only
for the same runtime (same context and device).

Build (or complete) a table for a space's layers, then calibrate it on 20 whole networks::

    python -m nnabla_nas.estimator.latency build -f EXP.json [-o TABLE.json] [--batch-size N]
"""

from __future__ import annotations

import json
import logging
import math
import platform
import time
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import nnabla as nn
import nnabla.function as _functions
import nnabla.functions as F
import numpy as np

from ...errors import ConfigError, NnasError
from ...module import Module
from ...utils.io import atomic_write_json
from ..base import Architecture, Layer, LayerwiseEstimator, inference_graph

__all__ = [
    "FORMAT",
    "SHIPPED_TABLES",
    "LatencyEstimator",
    "LatencyOptions",
    "LatencyTable",
    "measure_layer",
    "measure_network",
    "default_timer",
    "robust_median",
    "runtime_key",
    "section_name",
]

logger = logging.getLogger(__name__)

FORMAT = "nnabla_nas.latency_table/1"
#: The folder of the tables that ship with the package.
SHIPPED_TABLES = Path(__file__).resolve().parents[1] / "tables"

Timer = Callable[[], float]


# ---------------------------------------------------------------------------------------------
# Runtime and measurement
# ---------------------------------------------------------------------------------------------


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return " ".join(line.split(":", 1)[1].split())
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown cpu"


def runtime_key(ctx: Any = None) -> tuple[str, str]:
    """``(context, device)`` of an nnabla context (the current one by default).

    ``context`` is the context's backend (``"cpu:float"``, ``"cudnn:half"``); ``device`` is the
    CPU model for the CPU backend, ``"<backend> device <id>"`` otherwise.
    """
    ctx = ctx if ctx is not None else nn.get_current_context()
    backend = str(ctx.backend[0]) if ctx.backend else "cpu:float"
    if backend.startswith("cpu"):
        device = _cpu_model()
    else:
        device = f"{backend.split(':')[0]} device {ctx.device_id}"
    return backend, device


def default_timer(ctx: Any = None) -> Timer:
    """The clock runs are timed with: on the CPU the calling thread's CPU time
    (``time.thread_time``: NNabla's CPU kernels run in the calling thread, so other processes
    on the machine do not inflate the figures: they are those of an idle core); elsewhere wall
    time (``time.perf_counter``, the device synchronised after each run)."""
    ctx = ctx if ctx is not None else nn.get_current_context()
    backend = str(ctx.backend[0]) if ctx.backend else "cpu"
    return time.thread_time if backend.startswith("cpu") else time.perf_counter


def _synchronizer(ctx: Any) -> Callable[[], None]:
    """Waits for the device's queued work (CUDA contexts); a no-op on the CPU."""
    backend = str(ctx.backend[0]) if ctx.backend else "cpu"
    if backend.startswith(("cuda", "cudnn")):
        try:
            from nnabla_ext.cuda import synchronize  # type: ignore[import-not-found]
        except ImportError:  # pragma: no cover - CUDA extension missing
            return lambda: None
        device_id = str(ctx.device_id)
        return lambda: synchronize(device_id=device_id)
    return lambda: None


def measure_network(
    model: Module,
    input_shape: Sequence[int],
    architectures: Sequence[Architecture | None],
    batch_size: int = 1,
    rounds: int = 5,
    runs: int = 20,
    timer: Timer | None = None,
    seed: int = 0,
) -> np.ndarray:
    """Measured latency (ms) of whole architectures of ``model`` on the current context.

    Each architecture's inference graph runs ``forward(clear_buffer=True)``; the networks are
    timed in ``rounds`` interleaved rounds of ``runs`` runs each (so a change of machine load
    affects them alike) and the robust median of each one's runs is kept.
    """
    rng = np.random.RandomState(seed)
    ctx = nn.get_current_context()
    sync = _synchronizer(ctx)
    timer = timer if timer is not None else default_timer(ctx)
    graphs = []
    for arch in architectures:
        x, y = inference_graph(model, input_shape, batch_size, arch)
        x.d = rng.uniform(-1, 1, x.shape)
        root = y[0] if isinstance(y, (tuple, list)) else y
        for _ in range(3):
            root.forward(clear_buffer=True)
        graphs.append(root)
    sync()
    samples: list[list[float]] = [[] for _ in graphs]
    for _ in range(rounds):
        for i, root in enumerate(graphs):
            for _ in range(runs):
                start = timer()
                root.forward(clear_buffer=True)
                sync()
                samples[i].append(timer() - start)
    return np.array([robust_median(s)[0] * 1e3 for s in samples])


def robust_median(samples: Sequence[float]) -> tuple[float, int]:
    """The median of ``samples`` after dropping those beyond Tukey's fences.

    Returns:
        ``(median, number of samples kept)``.
    """
    a = np.sort(np.asarray(samples, dtype=np.float64))
    if a.size == 0:
        raise ValueError("no samples")
    q1, q3 = np.percentile(a, [25, 75])
    spread = 1.5 * (q3 - q1)
    kept = a[(a >= q1 - spread) & (a <= q3 + spread)]
    return float(np.median(kept)), int(kept.size)


def measure_layer(
    layer: Layer,
    warmup: int = 5,
    repeat: int = 30,
    timer: Timer | None = None,
    rng: np.random.RandomState | None = None,
    ctx: Any = None,
) -> tuple[float, int]:
    """Measures one layer alone on ``ctx`` (the current context by default).

    Returns:
        ``(median milliseconds, runs kept)`` (see :func:`robust_median`).

    Raises:
        NnasError: the layer's function cannot be rebuilt from its type and arguments.
    """
    ctx = ctx if ctx is not None else nn.get_current_context()
    rng = rng if rng is not None else np.random.RandomState(0)
    timer = timer if timer is not None else default_timer(ctx)
    try:
        func = getattr(_functions, layer.type)(ctx, **layer.arguments)
    except (AttributeError, TypeError, RuntimeError) as err:
        raise NnasError(f"cannot rebuild layer {layer.key} to measure it: {err}") from None
    # Positive values: valid for every function (variances, logarithms, square roots).
    inputs = [nn.Variable.from_numpy_array(rng.uniform(0.5, 1.5, s).astype(np.float32))
              for s in layer.inputs]  # fmt: skip
    sync = _synchronizer(ctx)
    try:
        with nn.context_scope(ctx):
            out = func(*inputs)
            outs = list(out) if isinstance(out, (tuple, list)) else [out]
            root = outs[0] if len(outs) == 1 else F.sink(*outs)
        for _ in range(max(1, warmup)):
            root.forward()
        sync()
    except RuntimeError as err:
        raise NnasError(f"cannot run layer {layer.key} alone to measure it: {err}") from None
    samples = []
    for _ in range(repeat):
        start = timer()
        root.forward()
        sync()
        samples.append(timer() - start)
    ms, kept = robust_median(samples)
    return ms * 1e3, kept


# ---------------------------------------------------------------------------------------------
# The lookup table
# ---------------------------------------------------------------------------------------------


def section_name(context: str, device: str) -> str:
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


# ---------------------------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------------------------


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
