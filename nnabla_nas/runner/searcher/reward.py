"""The hardware factor of a sampled architecture's reward (ENAS, random search): the
``regularizer`` section of the experiment file turned into one number per architecture.

``reward = accuracy * factor(architecture)``, with ``factor`` the product over the regularizers
whose ``weight`` is not 0 (a weight of 0 only reports the estimate) of, by ``form``:

- ``"ratio"`` (AutoGluon's ENAS, ``seeds/000``: ``metric * (avg_latency / latency) ** w``):
  ``(reference / value) ** weight``. The reference is the section's ``ref_latency`` when given,
  else the *average of the space*: the estimator's expected value under the uniform
  distribution over every choice (:meth:`~nnabla_nas.estimator.base.Estimator.expected`), which
  for additive estimators (latency table, FLOPs, parameters) is exactly the mean over all the
  space's architectures, as AutoGluon's ``avg_latency`` (the sum of every unit's mean
  candidate latency); for the peak-memory estimator and nn-Meter it is what their
  ``expected`` approximates (see their docs). Architectures cheaper than the reference get a
  factor above 1: the factor trades accuracy against cost everywhere, with no budget.
- ``"bound"`` (ProxylessNAS's REINFORCE reward, the same as ``ProxylessNasSearcher``):
  ``min(1, bound / value) ** weight``: 1 within the budget ``bound``, smaller above it.

A value that is not positive gives a factor of 1 (nothing to compare). With data-parallel
processes, the references are computed on rank 0 and broadcast, so every rank rewards with the
same numbers (a measured latency differs between processes).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Mapping

import nnabla as nn
import numpy as np

from ...estimator.regularizer import reward_factor
from ...module import choice_groups

__all__ = ["FORMS", "HardwareReward", "uniform_distribution"]

logger = logging.getLogger(__name__)

#: The forms of the factor (see the module docstring).
FORMS = ("ratio", "bound")


def uniform_distribution(model: Any) -> OrderedDict[str, nn.Variable]:
    """``label -> uniform probabilities`` of every decision of ``model`` (the estimators'
    distribution argument)."""
    out: OrderedDict[str, nn.Variable] = OrderedDict()
    for label, ops in choice_groups(model).items():
        n = len(ops[0].ops)
        out[label] = nn.Variable.from_numpy_array(np.full((n,), 1.0 / n, np.float32))
    return out


class HardwareReward:
    """The hardware factor of architectures of ``model`` (see the module docstring).

    Args:
        regularizers: ``label -> Regularizer`` (the run's ``ctx.regularizers``).
        model: the supernet.
        form: ``"ratio"`` or ``"bound"``.
        comm: the data-parallel processes (None: one).
    """

    def __init__(
        self, regularizers: Mapping[str, Any], model: Any, form: str = "ratio", comm: Any = None
    ) -> None:
        if form not in FORMS:
            raise ValueError(f"unknown hardware reward form {form!r}; valid: {FORMS}")
        self.model = model
        self.form = form
        #: The regularizers that change the reward (``weight != 0``).
        self.active = OrderedDict((k, r) for k, r in regularizers.items() if r.weight != 0.0)
        #: ``label -> reference`` of the ratio form (empty for the bound form).
        self.references: dict[str, float] = {}
        if form == "ratio" and self.active:
            refs = None
            if comm is None or comm.is_main:
                refs = {label: self._reference(reg) for label, reg in self.active.items()}
            if comm is not None and comm.size > 1:
                refs = comm.broadcast(refs)
            self.references = dict(refs)
            for label, ref in self.references.items():
                reg = self.active[label]
                where = "given (ref_latency)" if reg.ref_latency is not None else "space average"
                logger.info("reward reference of %s: %.6g %s (%s)", label, ref,
                            reg.estimator.unit, where)  # fmt: skip

    def _reference(self, reg: Any) -> float:
        if reg.ref_latency is not None:
            return float(reg.ref_latency)
        value = reg.estimator.expected(self.model, uniform_distribution(self.model))
        value.forward(clear_no_need_grad=True)
        return float(value.d)

    def values(self, architecture: Mapping[str, int]) -> dict[str, float]:
        """``label -> estimate`` of ``architecture`` for the active regularizers."""
        return {label: reg.value(self.model, architecture) for label, reg in self.active.items()}

    def factor_of(self, values: Mapping[str, float]) -> float:
        """The factor of estimates ``values`` (``label -> value``, as :meth:`values`)."""
        factor = 1.0
        for label, reg in self.active.items():
            value = float(values[label])
            if self.form == "bound":
                factor *= reward_factor(value, reg.bound, reg.weight)
            elif value > 0:
                factor *= (self.references[label] / value) ** reg.weight
        return factor

    def factor(self, architecture: Mapping[str, int]) -> float:
        """The factor of ``architecture`` (1.0 without active regularizers)."""
        return self.factor_of(self.values(architecture)) if self.active else 1.0
