"""Hardware estimators (latency, memory, FLOPs, nn-Meter): one interface, one registry.

The interface is :class:`~nnabla_nas.estimator.base.Estimator` (``predict(model,
architecture=None) -> float``, ``expected(model) -> nn.Variable``, ``details(model) -> dict``);
:class:`~nnabla_nas.estimator.regularizer.Regularizer` turns one into a hardware constraint of a
search. Adding an estimator is one module plus one line here.
"""

from __future__ import annotations

from ..registry import Registry
from .base import Estimator, Layer, LayerwiseEstimator, inference_graph, trace
from .flops import FlopsEstimator, ParamsEstimator
from .latency import LatencyEstimator
from .memory import MemoryEstimator
from .nnmeter import NnMeterEstimator

__all__ = [
    "ESTIMATORS",
    "Estimator",
    "FlopsEstimator",
    "LatencyEstimator",
    "Layer",
    "LayerwiseEstimator",
    "MemoryEstimator",
    "ParamsEstimator",
    "inference_graph",
    "trace",
]

#: Estimator registry: name -> Estimator class.
ESTIMATORS = Registry("estimator")
ESTIMATORS.add("LatencyEstimator", LatencyEstimator, "latency")
ESTIMATORS.add("MemoryEstimator", MemoryEstimator, "memory")
ESTIMATORS.add("FlopsEstimator", FlopsEstimator, "flops")
ESTIMATORS.add("ParamsEstimator", ParamsEstimator, "params")
ESTIMATORS.add("NnMeterEstimator", NnMeterEstimator, "nnmeter")
