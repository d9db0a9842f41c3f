"""The ``searcher`` keys of ENAS: the controller's constants (:class:`EnasControllerConfig`,
for :mod:`.enas_controller`) and the searcher's schedule and selection (:class:`EnasConfig`,
for :mod:`.enas`), each checked once here."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ...errors import ConfigError
from .reward import FORMS

__all__ = ["EnasConfig", "EnasControllerConfig"]

logger = logging.getLogger(__name__)


@dataclass
class EnasControllerConfig:
    """The controller's constants (``searcher`` keys of ENAS).

    Attributes:
        lstm_size: hidden units of each LSTM layer.
        lstm_layers: stacked LSTM layers.
        temperature: ``T`` dividing the logits (None: none).
        tanh_constant: ``c`` in ``c * tanh(u / T)`` (None: no tanh).
        op_tanh_reduce: operation logits use ``c / op_tanh_reduce`` (the reference's micro
            search: 2.5).
        entropy_weight: weight of the entropy bonus in the loss (>= 0).
        skip_target: ``rho``, the prior probability of a skip connection, in (0, 1).
        skip_weight: weight of the skip penalty ``KL(p || rho)`` in the loss (>= 0).
        baseline_decay: weight of the old baseline in the moving average, in [0, 1).
        init_range: parameters start uniform in ``[-init_range, init_range]`` (> 0).
    """

    lstm_size: int = 100
    lstm_layers: int = 1
    temperature: float | None = 5.0
    tanh_constant: float | None = 2.5
    op_tanh_reduce: float = 1.0
    entropy_weight: float = 1e-4
    skip_target: float = 0.4
    skip_weight: float = 0.8
    baseline_decay: float = 0.99
    init_range: float = 0.1

    def check(self) -> None:
        """Refuses impossible values with a ConfigError naming the key."""
        for key in ("lstm_size", "lstm_layers"):
            if getattr(self, key) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, key)}", key=key)
        for key in ("temperature", "tanh_constant"):
            value = getattr(self, key)
            if value is not None and not value > 0:
                raise ConfigError(f"must be > 0 or null (off), got {value}", key=key)
        for key in ("op_tanh_reduce", "init_range"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"must be > 0, got {getattr(self, key)}", key=key)
        for key in ("entropy_weight", "skip_weight"):
            if getattr(self, key) < 0:
                raise ConfigError(f"must be >= 0, got {getattr(self, key)}", key=key)
        if not 0.0 < self.skip_target < 1.0:
            raise ConfigError(f"must be in (0, 1), got {self.skip_target}", key="skip_target")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise ConfigError(f"must be in [0, 1), got {self.baseline_decay}", "baseline_decay")


@dataclass
class EnasConfig(EnasControllerConfig):
    """The ``searcher`` section for ``EnasSearcher``: the controller's constants (above) and:

    Attributes:
        controller_every: weight steps between two controller phases (0: one epoch, the
            paper's "a whole pass through the training data").
        controller_steps: controller updates per phase (the paper: 2000).
        num_samples: architectures sampled per controller update, their REINFORCE gradients
            averaged (the paper: 1; the reference code's ``num_aggregate``: 20); split across
            data-parallel processes.
        num_final_samples: architectures sampled from the trained controller at the end of the
            search, of which the best on the architecture split is the result (duplicates
            evaluated once).
        marginal_samples: architectures drawn at every export to estimate each candidate's
            marginal probability under the controller (0: no probabilities exported).
        bn_recalibration_batches: weight-split batches the batch-norm statistics are
            recalibrated on before an architecture is evaluated in inference mode (the final
            candidates, and the network the loop evaluates every epoch; 0: the supernet's
            statistics as they are).
        hardware_reward: how the ``regularizer`` section enters the reward: ``"ratio"``
            (AutoGluon's ``(reference / value) ** weight``) or ``"bound"`` (ProxylessNAS's
            ``min(1, bound / value) ** weight``).
    """

    controller_every: int = 0
    controller_steps: int = 2000
    num_samples: int = 1
    num_final_samples: int = 10
    marginal_samples: int = 100
    bn_recalibration_batches: int = 10
    hardware_reward: str = "ratio"

    def check(self) -> None:
        """Refuses impossible values with a ConfigError naming the key."""
        super().check()
        for key in ("controller_steps", "num_samples", "num_final_samples"):
            if getattr(self, key) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, key)}", key=key)
        for key in ("controller_every", "marginal_samples", "bn_recalibration_batches"):
            if getattr(self, key) < 0:
                raise ConfigError(f"must be >= 0, got {getattr(self, key)}", key=key)
        if self.hardware_reward not in FORMS:
            raise ConfigError(
                f"unknown form {self.hardware_reward!r}; valid: {', '.join(FORMS)}",
                key="hardware_reward",
            )

    def controller(self) -> EnasControllerConfig:
        """The controller's constants alone."""
        names = EnasControllerConfig.__dataclass_fields__
        return EnasControllerConfig(**{k: getattr(self, k) for k in names})
