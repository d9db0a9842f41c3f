"""Structural operations: ``Identity``, ``Zero``, ``Merging``, ``Lambda``."""

from __future__ import annotations

import logging
from typing import Any, Callable, Sequence

import nnabla as nn
import nnabla.functions as F

from nnabla_nas.errors import ConfigError
from nnabla_nas.module.module import Module

logger = logging.getLogger(__name__)


class Identity(Module):
    """Returns its input unchanged (the same ``nn.Variable``)."""

    def call(self, x: nn.Variable) -> nn.Variable:
        return x


class Zero(Module):
    """Zeros of the shape a stride would give: ``x[..., ::s_h, ::s_w] * 0``.

    The output is an ``F.constant(0, shape)`` of that shape (``ceil(size / stride)`` on each of
    the last ``len(stride)`` axes, which matches a padded ``kernel``-``stride`` convolution), so
    it neither computes anything from ``x`` nor has a gradient (``need_grad=False``).

    Args:
        stride: the stride on the last axes (an int ``s`` means ``(s, s)``).
    """

    def __init__(self, stride: int | Sequence[int] = (1, 1)) -> None:
        self._stride = (int(stride),) * 2 if isinstance(stride, int) else tuple(stride)

    def call(self, x: nn.Variable) -> nn.Variable:
        n = len(self._stride)
        spatial = tuple(-(-size // s) for size, s in zip(x.shape[-n:], self._stride))
        return F.constant(0.0, x.shape[:-n] + spatial)

    def extra_repr(self) -> str:
        return f"stride={self._stride}"


class Merging(Module):
    """Merges several inputs: ``concat`` (``F.concatenate`` on ``axis``) or ``add`` (sum).

    Called as ``merging(a, b, ...)`` or ``merging([a, b, ...])``.

    Args:
        mode: ``"concat"`` or ``"add"``.
        axis: the concatenation axis.
    """

    MODES = ("concat", "add")

    def __init__(self, mode: str, axis: int = 1) -> None:
        if mode not in self.MODES:
            raise ConfigError(f"unknown Merging mode {mode!r}; valid: {list(self.MODES)}", "mode")
        self._mode = mode
        self._axis = int(axis)

    def call(self, *inputs: Any) -> nn.Variable:
        if len(inputs) == 1 and isinstance(inputs[0], (list, tuple)):
            inputs = tuple(inputs[0])
        if not inputs:
            raise ValueError("Merging needs at least one input")
        if self._mode == "concat":
            return F.concatenate(*inputs, axis=self._axis)
        out = inputs[0]
        for x in inputs[1:]:
            out = F.add2(out, x)
        return out

    def extra_repr(self) -> str:
        return f"mode={self._mode!r}" + (f", axis={self._axis}" if self._mode == "concat" else "")


class Lambda(Module):
    """Wraps a function: ``Lambda(f)(*inputs) == f(*inputs)``.

    Args:
        func: any callable on ``nn.Variable`` (a Module passed here is registered as ``_func``).
    """

    def __init__(self, func: Callable[..., Any]) -> None:
        if not callable(func):
            raise TypeError(f"Lambda needs a callable, got {type(func).__name__}")
        self._func = func

    def call(self, *inputs: Any) -> Any:
        return self._func(*inputs)

    def extra_repr(self) -> str:
        return getattr(self._func, "__name__", type(self._func).__name__)
