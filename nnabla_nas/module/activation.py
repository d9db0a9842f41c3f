"""Activations and dropout: ``ReLU``, ``ReLU6``, ``LeakyReLU``, ``Dropout``."""

from __future__ import annotations

import logging

import nnabla as nn
import nnabla.functions as F

from nnabla_nas.module.module import Module

logger = logging.getLogger(__name__)


class ReLU(Module):
    """``F.relu(x, inplace)``.

    Args:
        inplace: overwrite the input's buffer (saves memory; the input must not be reused).
    """

    def __init__(self, inplace: bool = False) -> None:
        self._inplace = bool(inplace)

    def call(self, x: nn.Variable) -> nn.Variable:
        return F.relu(x, inplace=self._inplace)

    def extra_repr(self) -> str:
        return "inplace=True" if self._inplace else ""


class ReLU6(Module):
    """``F.relu6(x)``: ``min(max(x, 0), 6)``."""

    def call(self, x: nn.Variable) -> nn.Variable:
        return F.relu6(x)


class LeakyReLU(Module):
    """``F.leaky_relu(x, alpha, inplace)``: ``x`` if positive, else ``alpha * x``.

    Args:
        alpha: the slope for negative inputs.
        inplace: overwrite the input's buffer, as :class:`ReLU` (the input must not be reused).
    """

    def __init__(self, alpha: float = 0.1, inplace: bool = False) -> None:
        self._alpha = float(alpha)
        self._inplace = bool(inplace)

    def call(self, x: nn.Variable) -> nn.Variable:
        return F.leaky_relu(x, alpha=self._alpha, inplace=self._inplace)

    def extra_repr(self) -> str:
        return f"alpha={self._alpha}" + (", inplace=True" if self._inplace else "")


class Dropout(Module):
    """``F.dropout(x, drop_prob)`` in training (zeros each value with probability
    ``drop_prob`` and scales the rest by ``1 / (1 - drop_prob)``); the identity otherwise.

    The mask comes from nnabla's global generator (``F.dropout``'s ``seed=-1``): seed it with
    ``nnabla.seed(...)`` for reproducible masks.

    Args:
        drop_prob: the probability of dropping a value.
    """

    def __init__(self, drop_prob: float = 0.5) -> None:
        if not 0.0 <= drop_prob < 1.0:
            raise ValueError(f"Dropout: drop_prob must be in [0, 1), got {drop_prob}")
        self._drop_prob = float(drop_prob)

    def call(self, x: nn.Variable) -> nn.Variable:
        if self.training and self._drop_prob > 0:
            return F.dropout(x, p=self._drop_prob)
        return x

    def extra_repr(self) -> str:
        return f"drop_prob={self._drop_prob}"
