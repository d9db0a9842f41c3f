"""Pooling layers: ``MaxPool``, ``AvgPool``, ``GlobalAvgPool``."""

from __future__ import annotations

import logging

import nnabla as nn
import nnabla.functions as F

from nnabla_nas.module._utils import IntOrTuple, as_tuple
from nnabla_nas.module.module import Module

logger = logging.getLogger(__name__)


class _Pool(Module):
    def __init__(
        self, kernel: IntOrTuple, stride: IntOrTuple | None = None, pad: IntOrTuple | None = None
    ) -> None:
        self._kernel = (int(kernel),) * 2 if isinstance(kernel, int) else tuple(kernel)
        self._stride = (
            as_tuple(stride, len(self._kernel), 1, "stride") if stride is not None else self._kernel
        )
        self._pad = as_tuple(pad, len(self._kernel), 0, "pad")

    def extra_repr(self) -> str:
        return f"kernel={self._kernel}, stride={self._stride}, pad={self._pad}"


class MaxPool(_Pool):
    """``F.max_pooling(x, kernel, stride, ignore_border=True, pad)``.

    Args:
        kernel: window size, e.g. ``(2, 2)``; an int ``k`` means ``(k, k)``.
        stride: default: the kernel (as in nnabla).
        pad: padding per spatial axis (default zeros); padded cells never win the max.
    """

    def call(self, x: nn.Variable) -> nn.Variable:
        return F.max_pooling(x, self._kernel, self._stride, ignore_border=True, pad=self._pad)


class AvgPool(_Pool):
    """``F.average_pooling(x, kernel, stride, ignore_border=True, pad, including_pad=False)``.

    Padded cells are not counted: each output is the mean of the real input cells under its
    window (PyTorch's ``count_include_pad=False``, as DARTS' ``avg_pool_3x3`` uses).

    Args:
        kernel: window size; an int ``k`` means ``(k, k)``.
        stride: default: the kernel (as in nnabla).
        pad: padding per spatial axis (default zeros).
    """

    def call(self, x: nn.Variable) -> nn.Variable:
        return F.average_pooling(
            x, self._kernel, self._stride, ignore_border=True, pad=self._pad, including_pad=False
        )


class GlobalAvgPool(Module):
    """``F.global_average_pooling(x)``: the mean over the spatial axes, shape ``(N, C, 1, 1)``."""

    def call(self, x: nn.Variable) -> nn.Variable:
        return F.global_average_pooling(x)
