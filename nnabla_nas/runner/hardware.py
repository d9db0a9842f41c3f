"""The hardware figures reported every epoch: the regularizers' estimators, plus FLOPs and memory.

The evaluated architecture (a searcher's exported one; a fixed network's only one) is estimated
by every estimator; the figures are logged, written to TensorBoard under ``hardware/`` and kept in
the run's history as ``<label>_<figure>`` (``latency_ms``, ``flops_macs``,
``memory_total_bytes``, ...).
"""

from __future__ import annotations

import logging
from typing import Any, Mapping, Sequence

from .monitor import readable

__all__ = ["HardwareReport"]

logger = logging.getLogger(__name__)


class HardwareReport:
    """The estimators of a run.

    Args:
        regularizers: the hardware constraints, label -> Regularizer (their estimators report).
        input_shape: one example's shape, for the default estimators.
    """

    def __init__(self, regularizers: Mapping[str, Any], input_shape: Sequence[int]) -> None:
        from ..estimator import FlopsEstimator, MemoryEstimator

        self.regularizers = dict(regularizers)
        self.estimators = {label: reg.estimator for label, reg in self.regularizers.items()}
        for label, cls in (("flops", FlopsEstimator), ("memory", MemoryEstimator)):
            if label not in self.estimators and not any(
                type(e) is cls for e in self.estimators.values()
            ):
                self.estimators[label] = cls(tuple(input_shape))

    def estimate(
        self, model: Any, architecture: Mapping[str, int] | None, log: bool = True
    ) -> dict[str, float]:
        """Every estimator's figures of ``architecture`` (None: a fixed network); ``log``: a log
        line with them.

        A default estimator (not a regularizer) that cannot handle the network is dropped with
        a warning."""
        figures: dict[str, float] = {}
        for label, est in list(self.estimators.items()):
            try:
                values = est.details(model, architecture)
            except (ValueError, TypeError, RuntimeError) as err:
                if label in self.regularizers:
                    raise
                logger.warning("the %s estimate is not reported: %s", label, err)
                del self.estimators[label]
                continue
            figures.update({f"{label}_{k}": float(v) for k, v in values.items()})
        if figures and log:
            logger.info("hardware estimates of the evaluated architecture: %s",
                        ", ".join(f"{k} {readable(v)}" for k, v in figures.items()))  # fmt: skip
        return figures
