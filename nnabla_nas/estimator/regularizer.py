"""A hardware constraint of a search: an estimator plus how its value enters the objective.

Gradient mode (ProxylessNAS's binary gates; the loss of seed 001, NNI's ProxylessNAS trainer),
with ``E`` the estimator's expected value under the architecture distribution that the searcher
hands in (:meth:`~nnabla_nas.estimator.base.Estimator.expected`, differentiable in the
searcher's logits):

- ``add#linear``: ``loss + lambda * (E - ref) / ref``;
- ``mul#log``: ``alpha * loss * (ln E / ln ref) ** beta`` (the ratio is floored at 1e-6 so that a
  value that fell below 1 unit cannot give the power a negative base). The configuration refuses
  ``ref <= 1``; ProxylessNAS warns when ``E`` falls to 1 unit or below during a search (the
  floor then zeroes the hardware gradient): use a smaller unit.

REINFORCE mode: the reward is multiplied by ``min(1, bound / value) ** weight`` where ``value``
is the estimate of the sampled architecture (the seed-era ``weight`` and ``bound``).

Several regularizers compose in the order of the experiment file: each one maps the loss so far
to a new loss, and the reward factors multiply.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import nnabla as nn
import nnabla.functions as F

from ..module import Module
from .base import Architecture, Distribution, Estimator

__all__ = ["Regularizer", "apply_regularizers", "build_regularizer", "reward_factor"]

logger = logging.getLogger(__name__)

_LOG_RATIO_FLOOR = 1e-6


def reward_factor(value: float, bound: float, weight: float) -> float:
    """``min(1, bound / value) ** weight``: 1 within the bound, smaller above it (1 when
    ``value`` is not positive or ``weight`` is 0). The REINFORCE reward factor, and the combined
    score of multi-trial search (:mod:`nnabla_nas.trials.objective`)."""
    if value <= 0 or weight == 0.0:
        return 1.0
    return min(1.0, bound / value) ** weight


class Regularizer:
    """An estimator used as a hardware constraint.

    Args:
        label: the section name in the experiment file (``"latency"``).
        estimator: the estimator.
        bound: the budget (estimator's unit).
        weight: REINFORCE's exponent (and the default ``lam``).
        loss_type: ``"add#linear"`` or ``"mul#log"``.
        ref: the reference value of the gradient loss (default ``bound``); also ENAS's
            reward reference (:attr:`ref_latency`).
        lam: ``lambda`` of ``add#linear`` (default ``weight``).
        alpha: ``alpha`` of ``mul#log``.
        beta: ``beta`` of ``mul#log``.
    """

    def __init__(
        self,
        label: str,
        estimator: Estimator,
        bound: float,
        weight: float = 0.0,
        loss_type: str = "add#linear",
        ref: float | None = None,
        lam: float | None = None,
        alpha: float = 0.2,
        beta: float = 0.3,
    ) -> None:
        if loss_type not in ("add#linear", "mul#log"):
            raise ValueError(f"unknown loss type {loss_type!r}")
        self.label = label
        self.estimator = estimator
        self.bound = float(bound)
        self.weight = float(weight)
        self.loss_type = loss_type
        self.ref = float(ref if ref is not None else bound)
        #: ``ref`` as given (the section's ``ref_latency``), None when it defaults to ``bound``.
        self.ref_latency = None if ref is None else float(ref)
        self.lam = float(lam if lam is not None else weight)
        self.alpha = float(alpha)
        self.beta = float(beta)

    @property
    def in_gradient(self) -> bool:
        """Whether the gradient-mode loss depends on the estimate (``lambda != 0`` or mul#log)."""
        return self.loss_type == "mul#log" or self.lam != 0.0

    def value(self, model: Module, architecture: Architecture | None = None) -> float:
        """The estimate of one architecture."""
        return float(self.estimator.predict(model, architecture))

    def reward_factor(self, value: float) -> float:
        """``min(1, bound / value) ** weight`` (1 when ``value`` is not positive)."""
        return reward_factor(value, self.bound, self.weight)

    def loss(self, loss: nn.Variable, expected: nn.Variable) -> nn.Variable:
        """The regularised loss from ``loss`` and the expected value ``expected`` (scalars)."""
        if self.loss_type == "add#linear":
            return loss + F.mul_scalar(F.add_scalar(expected, -self.ref), self.lam / self.ref)
        ratio = F.mul_scalar(F.log(expected), 1.0 / math.log(self.ref))
        ratio = F.maximum_scalar(ratio, _LOG_RATIO_FLOOR)
        return F.mul_scalar(loss * F.pow_scalar(ratio, self.beta), self.alpha)

    def __repr__(self) -> str:
        return (f"Regularizer({self.label!r}, {self.estimator.name}, bound={self.bound}, "
                f"weight={self.weight}, loss={self.loss_type}, ref={self.ref})")  # fmt: skip


def apply_regularizers(
    loss: nn.Variable,
    model: Module,
    regularizers: Sequence[Regularizer],
    distribution: Distribution,
) -> tuple[nn.Variable, dict[str, nn.Variable]]:
    """Composes the gradient-mode terms of ``regularizers`` (in order) onto ``loss``, with the
    expected values under ``distribution`` (``{label: probabilities}``).

    Returns:
        ``(regularised loss, {label: expected-value expression})`` (regularizers whose
        gradient term is off are skipped).
    """
    expected: dict[str, nn.Variable] = {}
    for reg in regularizers:
        if not reg.in_gradient:
            continue
        e = reg.estimator.expected(model, distribution)
        expected[reg.label] = e
        loss = reg.loss(loss, e)
    return loss, expected


def build_regularizer(label: str, cfg: Any, input_shape: Sequence[int]) -> Regularizer:
    """The regularizer of one ``regularizer`` section (a parsed ``RegularizerConfig``)."""
    from . import ESTIMATORS

    estimator = ESTIMATORS.get(cfg.name).from_config(cfg, input_shape)
    params = cfg.grad_reg_loss_params  # AddLinearParams (lam) or MulLogParams (alpha, beta)
    return Regularizer(
        label,
        estimator,
        bound=cfg.bound,
        weight=cfg.weight,
        loss_type=cfg.grad_reg_loss_type,
        ref=cfg.ref_latency,
        lam=getattr(params, "lam", None),
        alpha=getattr(params, "alpha", 0.2),
        beta=getattr(params, "beta", 0.3),
    )
