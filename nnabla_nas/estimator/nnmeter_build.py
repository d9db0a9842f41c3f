"""Custom nn-Meter predictors from latencies measured on this device.

nn-Meter's built-in predictors describe four phones and a VPU. For the device you search for,
build a predictor of your own from measurements, with nn-Meter's own builder:

1. sample architectures of the experiment's space and hand each to nn-Meter's kernel detector
   (:func:`~nnabla_nas.estimator.nnmeter.to_nnmeter_ir`, the fusion rules
   :data:`~nnabla_nas.estimator.nnmeter.DEFAULT_FUSION_RULES`): every kernel found
   (``conv-bn-relu``, ``dwconv-bn-relu``, ``add``, ``global-avgpool``, ``fc``, ...) is a set of
   nnabla functions;
2. a kernel's latency is the sum of its functions' latencies from the
   :class:`~nnabla_nas.estimator.latency.LatencyEstimator` lookup table (each distinct function
   measured once on the current nnabla context, then reused: the table is the same file the
   latency regularizer uses);
3. nn-Meter's builder (``nn_meter.builder``'s ``build_predictor_by_data``, its feature parsers
   and its random-forest settings for the chosen ``backend``) fits one kernel predictor per
   kernel type; the folder gets ``<kernel>.pkl``, ``fusion_rules.json`` and
   :data:`~nnabla_nas.estimator.nnmeter.PREDICTOR_META` (batch size, runtime, samples, fit).

The folder is then the ``predictor`` option of an ``NnMeterEstimator``. Command
(:mod:`nnabla_nas.cli.nnmeter_build`)::

    nnabla-nas nnmeter-build -f EXP.json -o PREDICTOR_DIR [--architectures 30]

Features are taken exactly as nn-Meter's predictor computes them at prediction time and checked
against what its builder's feature parser produces from the same kernel, so a fitted predictor
is queried with the features it was trained on. (nn-Meter 2.0's ``concat`` parser and
predictor disagree on the feature count: concat kernels are left without a predictor, and
warned about at prediction.)
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np

from ..errors import ConfigError, NnasError
from ..module import Module
from ..utils.io import atomic_path, atomic_write_json
from .base import Architecture, Layer, inference_graph
from .nnmeter import (
    DEFAULT_FUSION_RULES,
    FUSION_RULES,
    PREDICTOR_META,
    import_nn_meter,
    kernel_features,
    kernel_name,
    to_nnmeter_ir,
)
from .nnmeter._runtime import _quiet

__all__ = [
    "META_FORMAT",
    "KernelSample",
    "build_predictor",
    "detect_kernels",
    "measured_samples",
    "random_architectures",
]

logger = logging.getLogger(__name__)

META_FORMAT = "nnabla_nas.nnmeter_predictor/1"
#: nn-Meter's builder sets of random-forest settings.
BACKENDS = ("tflite_cpu", "tflite_gpu", "openvino_vpu")


@dataclass(frozen=True)
class KernelSample:
    """One measured kernel.

    Attributes:
        op: nn-Meter's kernel op (``"conv-bn-relu"``, ``"conv-bn"``, ``"dwconv-bn-relu"``,
            ``"add"``, ``"gap"``, ``"fc"``, ...); its predictor is ``kernel_name(op)``.
        features: the features nn-Meter's predictor computes for it
            (:func:`~nnabla_nas.estimator.nnmeter.kernel_features`).
        latency_ms: its measured latency.
    """

    op: str
    features: tuple[float, ...]
    latency_ms: float


def detect_kernels(
    model: Module,
    input_shape: Sequence[int],
    architecture: Architecture | None = None,
    batch_size: int = 1,
    fusion_rules: Mapping[str, Any] | None = None,
) -> list[tuple[dict[str, Any], list[Layer]]]:
    """nn-Meter's kernels of one architecture, each with the nnabla functions it fuses.

    Returns:
        ``[(kernel, layers)]``: nn-Meter's kernel dict (``op``, ``name`` ``"<op>#<i>"``,
        shapes) and the :class:`~nnabla_nas.estimator.base.Layer` of each of its functions.
    """
    import_nn_meter()
    from nn_meter.kernel_detector import KernelDetector

    x, out = inference_graph(model, input_shape, batch_size, architecture)
    graph = to_nnmeter_ir(out if not isinstance(out, (tuple, list)) else list(out), x)
    rules = dict(DEFAULT_FUSION_RULES if fusion_rules is None else fusion_rules)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / FUSION_RULES
        path.write_text(json.dumps(rules))
        with _quiet():
            kd = KernelDetector(str(path))
            kd.load_graph(graph.ir)
            kernels = kd.get_kernels()
    found = []
    for kernel in kernels:
        block = kd.bbs[int(str(kernel["name"]).rsplit("#", 1)[1])]
        found.append((kernel, [graph.layers[n] for n in block if n in graph.layers]))
    return found


def random_architectures(
    model: Module, count: int, rng: np.random.RandomState
) -> list[dict[str, int]]:
    """``count`` architectures drawn uniformly (every choice independently)."""
    ops = list(model.choices().items())
    return [{p: int(rng.randint(len(m.ops))) for p, m in ops} for _ in range(count)]


def measured_samples(
    model: Module,
    input_shape: Sequence[int],
    architectures: Iterable[Architecture | None],
    layer_latency: Any,
    batch_size: int = 1,
    fusion_rules: Mapping[str, Any] | None = None,
) -> list[KernelSample]:
    """The distinct kernels of ``architectures`` with latencies from a per-layer estimator.

    Args:
        model: the space (or a fixed network).
        input_shape: one example's shape.
        architectures: ``{label: index}`` mappings (None: a fixed network's only one).
        layer_latency: a :class:`~nnabla_nas.estimator.latency.LatencyEstimator` (its
            ``prepare`` measures the unseen functions once, its ``layer_value`` gives ms), or a
            callable ``Layer -> ms``.
        batch_size: the batch of the measured inference.
        fusion_rules: nn-Meter fusion rules (default :data:`DEFAULT_FUSION_RULES`).

    Returns:
        One sample per distinct (op, features), in first-seen order. Kernels nn-Meter has no
        features for are left out (logged).
    """
    found = []
    for arch in architectures:
        found.extend(detect_kernels(model, input_shape, arch, batch_size, fusion_rules))
    if hasattr(layer_latency, "prepare"):
        layer_latency.prepare([layer for _, layers in found for layer in layers])
    value: Callable[[Layer], float] = getattr(layer_latency, "layer_value", layer_latency)
    samples: dict[tuple[str, tuple[float, ...]], KernelSample] = {}
    skipped: set[str] = set()
    for kernel, layers in found:
        feats = kernel_features(kernel)
        if feats is None:
            skipped.add(str(kernel["op"]))
            continue
        key = (str(kernel["op"]), tuple(feats))
        if key not in samples:
            ms = float(sum(value(layer) for layer in layers))
            samples[key] = KernelSample(key[0], key[1], ms)
    if skipped:
        logger.warning(
            "nn-Meter has no features for kernel type(s) %s: not modelled",
            ", ".join(sorted(skipped)),
        )
    return list(samples.values())


def _builder_config(parser: Any, features: Sequence[float]) -> dict[str, float] | None:
    """The builder's config of a kernel whose prediction features are ``features`` (None when
    the builder's parser would not reproduce them)."""
    needed = list(parser.needed_config)
    if len(features) < len(needed):
        return None
    config = {name: features[i] for i, name in enumerate(needed)}
    config = {k: (int(v) if float(v).is_integer() else v) for k, v in config.items()}
    rebuilt = parser.get_feature_by_config(dict(config))
    if len(rebuilt) != len(features) or not np.allclose(rebuilt, features, rtol=1e-6):
        return None
    return config


def _fit_report(model: Any, X: np.ndarray, y: np.ndarray) -> dict[str, float]:
    report = {"samples": int(len(y))}
    pred = np.asarray(model.predict(X.tolist()), dtype=np.float64)
    report["train_mean_rel_error"] = float(np.mean(np.abs(pred - y) / np.maximum(y, 1e-9)))
    oob = getattr(model, "oob_prediction_", None)
    if oob is not None:
        oob = np.asarray(oob, dtype=np.float64).reshape(-1)
        ok = np.isfinite(oob) & (oob != 0)
        if ok.any():
            err = np.abs(oob[ok] - y[ok]) / np.maximum(y[ok], 1e-9)
            report["oob_mean_rel_error"] = float(np.mean(err))
    return report


def build_predictor(
    samples: Sequence[KernelSample],
    folder: str | os.PathLike,
    backend: str = "tflite_cpu",
    batch_size: int = 1,
    fusion_rules: Mapping[str, Any] | None = None,
    extra_meta: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Fits nn-Meter kernel predictors on measured kernels and writes a predictor folder.

    One predictor per kernel type (``kernel_name(sample.op)``: ``conv-bn`` and ``conv-bn-relu``
    share ``conv-bn-relu``, as in nn-Meter), fitted by nn-Meter's builder
    (``build_predictor_by_data``) with its random-forest settings for ``backend``.

    Args:
        samples: the measured kernels (:func:`measured_samples`, or given latencies).
        folder: the predictor folder to write (created; files replaced atomically).
        backend: nn-Meter's builder settings: ``tflite_cpu``, ``tflite_gpu`` or
            ``openvino_vpu``.
        batch_size: the batch the latencies were measured at (recorded; the estimator checks).
        fusion_rules: the rules the kernels were detected with (default
            :data:`DEFAULT_FUSION_RULES`); written as ``fusion_rules.json``.
        extra_meta: more fields for the metadata file (runtime, source, ...).

    Returns:
        The metadata written (``kernels``: per predictor its sample count and fit errors).

    Raises:
        ConfigError: an unknown backend, no usable sample, or a latency that is not > 0.
    """
    if backend not in BACKENDS:
        raise ConfigError(f"unknown backend {backend!r}; valid: {', '.join(BACKENDS)}", "backend")
    import_nn_meter()
    from nn_meter.builder.backend_meta.utils import Latency
    from nn_meter.builder.kernel_predictor_builder import build_predictor_by_data
    from nn_meter.builder.kernel_predictor_builder.predictor_builder.extract_feature import (
        get_feature_parser,
    )

    groups: dict[str, list[tuple[dict[str, float], KernelSample]]] = {}
    unusable: set[str] = set()
    for s in samples:
        if not (math.isfinite(s.latency_ms) and s.latency_ms > 0):
            raise ConfigError(
                f"kernel {s.op} {list(s.features)}: latency must be > 0 ms, got {s.latency_ms}"
            )
        name = kernel_name(s.op)
        parser = get_feature_parser(name)
        config = _builder_config(parser, s.features) if parser is not None else None
        if config is None:
            unusable.add(name)
            continue
        groups.setdefault(name, []).append((config, s))
    if unusable:
        logger.warning(
            "nn-Meter's builder cannot model kernel type(s) %s with the features its "
            "predictor uses: left without a predictor",
            ", ".join(sorted(unusable)),
        )
    if not groups:
        raise ConfigError(
            f"no kernel sample nn-Meter's builder can fit (got {len(samples)} samples)"
        )
    folder = Path(folder)
    rebuilt = (folder / PREDICTOR_META).is_file()  # an earlier build of ours: replace it all
    folder.mkdir(parents=True, exist_ok=True)
    kernels: dict[str, Any] = {}
    for name, items in sorted(groups.items()):
        data = {
            name: {
                f"id_{i}": {
                    "model": f"{name}_{i}",
                    "config": cfg,
                    "latency": Latency(s.latency_ms, 0),
                }
                for i, (cfg, s) in enumerate(items)
            }
        }
        with _quiet(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # few samples: out-of-bag warnings
            model, _, _ = build_predictor_by_data(name, data, backend=backend, final_predictor=True)
        X = np.asarray(
            [get_feature_parser(name).get_feature_by_config(dict(c)) for c, _ in items],
            dtype=np.float64,
        )
        y = np.asarray([s.latency_ms for _, s in items], dtype=np.float64)
        fitted = len(getattr(model, "oob_prediction_", y))
        if getattr(model, "n_features_in_", X.shape[1]) != X.shape[1] or fitted != len(y):
            raise NnasError(
                f"nn-Meter's builder fitted {name} on {fitted} samples of "
                f"{getattr(model, 'n_features_in_', '?')} features, not the {len(y)} of "
                f"{X.shape[1]} given (it drops samples it cannot parse)"
            )
        kernels[name] = _fit_report(model, X, y)
        with atomic_path(folder / f"{name}.pkl") as tmp, open(tmp, "wb") as f:
            pickle.dump(model, f)
    for stale in folder.glob("*.pkl") if rebuilt else ():
        if stale.stem not in kernels:
            stale.unlink()  # a kernel of the earlier build this one did not fit
    rules = dict(DEFAULT_FUSION_RULES if fusion_rules is None else fusion_rules)
    atomic_write_json(folder / FUSION_RULES, rules)
    import nn_meter
    import sklearn

    meta = {
        "format": META_FORMAT,
        "backend": backend,
        "batch_size": int(batch_size),
        "nn_meter": getattr(nn_meter, "__version__", "unknown"),
        "scikit_learn": sklearn.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
        **dict(extra_meta or {}),
        "kernels": kernels,
        "samples": [asdict(s) | {"features": list(s.features)} for s in samples],
    }
    atomic_write_json(folder / PREDICTOR_META, meta)
    logger.info(
        "nn-Meter predictor written to %s: %s",
        folder,
        ", ".join(f"{k} ({v['samples']})" for k, v in kernels.items()),
    )
    return meta
