"""Measuring latency on the current nnabla context: single layers, whole networks, the clock.

A layer (one nnabla function, :class:`~nnabla_nas.estimator.base.Layer`) is rebuilt alone on
random inputs of its shapes, run ``warmup`` times, then timed ``repeat`` times
(:func:`default_timer`); runs outside Tukey's fences are dropped and the median of the rest is
kept (:func:`robust_median`), in milliseconds.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import nnabla as nn
import nnabla.function as _functions
import nnabla.functions as F
import numpy as np

from ...errors import NnasError
from ...module import Module
from ..base import Architecture, Layer, inference_graph

__all__ = [
    "Timer",
    "default_timer",
    "measure_layer",
    "measure_network",
    "robust_median",
    "runtime_key",
]

Timer = Callable[[], float]


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
