"""Hardware estimators (latency, memory, FLOPs, nn-Meter): one interface, one registry."""

from __future__ import annotations

from ..registry import Registry

ESTIMATORS = Registry("estimator")
