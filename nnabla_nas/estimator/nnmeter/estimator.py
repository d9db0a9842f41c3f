"""The estimator: latency (ms) of an architecture predicted by an nn-Meter predictor."""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from typing import Any, ClassVar, Mapping, Sequence

import nnabla as nn
import nnabla.functions as F
import numpy as np

from ...errors import ConfigError
from ...module import MixedOp, Module, choice_groups
from ..base import Architecture, Distribution, Estimator, inference_graph, probabilities_of
from ._runtime import BUILTIN_PREDICTORS, _quiet
from .ir import NnMeterGraph, kernel_features, kernel_name, to_nnmeter_ir
from .predictors import load_predictor

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# The estimator
# ---------------------------------------------------------------------------------------------


@dataclass
class NnMeterOptions:
    """The ``options`` of an ``NnMeterEstimator`` regularizer.

    Attributes:
        predictor: a built-in predictor name (``cortexA76cpu_tflite21``,
            ``adreno640gpu_tflite21``, ``adreno630gpu_tflite21``, ``myriadvpu_openvino2019r2``)
            or the path of a predictor folder (built by ``nnmeter_build``).
        data_folder: nn-Meter's data folder for built-in predictors (default: nn-Meter's
            setting, ``~/.nn_meter/data``); the files go in ``<data_folder>/predictor/<name>/``.
    """

    predictor: str = "cortexA76cpu_tflite21"
    data_folder: str | None = None

    def check(self) -> None:
        if not isinstance(self.predictor, str) or not self.predictor.strip():
            raise ConfigError(
                f"expected a predictor name ({', '.join(BUILTIN_PREDICTORS)}) or the path of a "
                f"predictor folder, got {self.predictor!r}",
                key="predictor",
            )


def _labels(model: Module) -> dict[str, MixedOp]:
    return {label: ops[0] for label, ops in choice_groups(model).items()}


def _values(var: nn.Variable) -> np.ndarray:
    """The values of an expression (computed when it has a parent)."""
    if var.parent is not None:
        var.forward()
    return np.asarray(var.d).reshape(-1)


class NnMeterEstimator(Estimator):
    """Latency (ms) of an architecture predicted by an nn-Meter predictor.

    Args:
        input_shape: one example's shape ``(C, H, W)``.
        batch_size: the batch of the predicted inference. Built-in predictors were measured at
            batch 1; a custom predictor at the batch recorded in its folder: both must match.
        predictor: see :class:`NnMeterOptions`.
        data_folder: see :class:`NnMeterOptions`.

    Raises:
        ConfigError: nn-Meter is missing, the predictor is unknown or its files are missing
            (the message names the folder and files), or the batch size does not match it.
    """

    unit: ClassVar[str] = "ms"
    Options: ClassVar[type] = NnMeterOptions

    def __init__(
        self,
        input_shape: Sequence[int],
        batch_size: int = 1,
        predictor: str = "cortexA76cpu_tflite21",
        data_folder: str | None = None,
    ) -> None:
        super().__init__(input_shape, batch_size)
        self.loaded = load_predictor(predictor, data_folder)
        trained = int(self.loaded.meta.get("batch_size", 1))
        if trained != self.batch_size:
            raise ConfigError(
                f"nn-Meter predictor {self.loaded.name!r} was built for batch size {trained}, "
                f"the estimator's batch_size is {self.batch_size}; nn-Meter's kernel features "
                "ignore the batch, so predict at the predictor's batch size (or build a "
                "predictor at this one)",
                key="batch_size",
            )
        self._cache: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._checked_ops: dict[str, bool] = {}
        self.unpredicted: dict[str, int] = {}

    # -- one architecture ---------------------------------------------------------------------

    def _full(self, model: Module, architecture: Architecture | None) -> tuple[int, ...]:
        arch = dict(architecture or {})
        missing = [label for label in _labels(model) if label not in arch]
        if missing:
            raise ValueError(f"no candidate given for choices {missing[:5]}")
        return tuple(int(arch[label]) for label in _labels(model))

    def graph(self, model: Module, architecture: Architecture | None = None) -> NnMeterGraph:
        """nn-Meter's IR of one architecture of ``model``."""
        x, out = inference_graph(model, self.input_shape, self.batch_size, architecture)
        return to_nnmeter_ir(out if isinstance(out, nn.Variable) else list(out), x)

    def kernels(self, graph: NnMeterGraph | Mapping[str, Any]) -> list[dict[str, Any]]:
        """The kernels nn-Meter's kernel detector finds in an IR (with this predictor's fusion
        rules): dicts with ``op``, ``name`` (``"<op>#<i>"``), shapes and features' fields."""
        ir = graph.ir if isinstance(graph, NnMeterGraph) else graph
        kd = self.loaded.predictor.kd
        with _quiet():
            kd.load_graph(ir)
            return kd.get_kernels()

    def predict_ir(self, graph: NnMeterGraph | Mapping[str, Any]) -> float:
        """nn-Meter's latency (ms) of an IR; kernels without a predictor are warned about."""
        ir = graph.ir if isinstance(graph, NnMeterGraph) else graph
        with _quiet():
            value = float(self.loaded.predictor.predict(dict(ir), model_type="nnmeter-ir"))
            found = self.loaded.predictor.kd.get_kernels()
        self._warn_unpredicted(found)
        return value

    def predict(self, model: Module, architecture: Architecture | None = None) -> float:
        """nn-Meter's latency (ms) of one architecture of ``model``.

        Values are cached per (model, architecture): nn-Meter's prediction depends only on the
        shapes, not on the weights.
        """
        cache = self._cache.setdefault(model, {})
        key = self._full(model, architecture)
        if key not in cache:
            cache[key] = self.predict_ir(self.graph(model, architecture))
        return cache[key]

    def _covered(self, kernel: Mapping[str, Any]) -> bool:
        op = str(kernel["op"])
        if op not in self._checked_ops:
            self._checked_ops[op] = (
                kernel_name(op) in self.loaded.kernel_predictors
                and kernel_features(kernel) is not None
            )
        return self._checked_ops[op]

    def _warn_unpredicted(self, kernels: Sequence[Mapping[str, Any]]) -> None:
        missing = [k for k in kernels if not self._covered(k)]
        new = sorted({str(k["op"]) for k in missing} - set(self.unpredicted))
        for k in missing:
            self.unpredicted[str(k["op"])] = self.unpredicted.get(str(k["op"]), 0) + 1
        if new:
            names = ", ".join(str(k["name"]) for k in missing if str(k["op"]) in new)
            logger.warning(
                "nn-Meter predictor %s has no model for kernel type(s) %s: nn-Meter counts "
                "them as 0 ms (kernels %s); build a custom predictor that covers them",
                self.loaded.name,
                ", ".join(new),
                names,
            )

    # -- expectation and report ---------------------------------------------------------------

    def expected(self, model: Module, distribution: Distribution) -> nn.Variable:
        """First-order expected latency around the most probable architecture ``a*``.

        ``L(a*) + sum_c sum_i p_c,i * (L(a* with choice c = i) - L(a*))``, a scalar
        differentiable with respect to the probabilities. nn-Meter's latency is a sum over
        kernels, and the kernels of one block change only with that block's choice, so this is
        the exact expectation when no kernel spans two choices (true with the default fusion
        rules for the mobilenet space). Costs ``1 + sum_c (n_c - 1)`` predictions, cached.
        """
        ops = _labels(model)
        probs_of = {label: probabilities_of(distribution, label, len(op.ops))
                    for label, op in ops.items()}  # fmt: skip
        best = {label: int(np.argmax(_values(p))) for label, p in probs_of.items()}
        base = self.predict(model, best)
        total: nn.Variable | None = None
        for label, op in ops.items():
            n = len(op.ops)
            deltas = [self.predict(model, {**best, label: i}) - base for i in range(n)]
            if not any(deltas):
                continue
            probs = probs_of[label]
            const = nn.Variable.from_numpy_array(np.asarray(deltas, dtype=np.float32))
            term = F.sum(probs * const)
            total = term if total is None else total + term
        if total is None:
            return nn.Variable.from_numpy_array(np.array(base, dtype=np.float32))
        return F.add_scalar(total, base)
