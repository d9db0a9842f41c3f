"""The constants of the ENAS controller (:mod:`.enas_controller`): the future ``searcher`` keys
of ENAS, each checked once here."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ...errors import ConfigError

__all__ = ["EnasControllerConfig"]

logger = logging.getLogger(__name__)


@dataclass
class EnasControllerConfig:
    """The controller's constants (the future ``searcher`` keys of ENAS).

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
