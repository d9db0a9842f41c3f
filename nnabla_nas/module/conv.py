"""Convolution layers: ``Conv`` and ``DwConv`` (over ``F.convolution`` and
``F.depthwise_convolution``, initialised like ``nnabla.parametric_functions``)."""

from __future__ import annotations

import logging

import nnabla as nn
import nnabla.functions as F
import numpy as np
from nnabla.initializer import UniformInitializer, calc_uniform_lim_glorot

from nnabla_nas.module._utils import IntOrTuple, as_tuple
from nnabla_nas.module.module import Module
from nnabla_nas.module.parameter import Initializer, make_weight

logger = logging.getLogger(__name__)


def _kernel(kernel: IntOrTuple) -> tuple[int, ...]:
    return (int(kernel),) * 2 if isinstance(kernel, int) else tuple(int(k) for k in kernel)


class Conv(Module):
    """N-D convolution, ``F.convolution(x, _W, _b, base_axis, pad, stride, dilation, group)``.

    Weights: ``_W`` of shape ``(out_channels, in_channels // group, *kernel)`` and ``_b`` of
    shape ``(out_channels,)`` (``_b`` is None without bias). As in
    ``nnabla.parametric_functions.convolution``, ``_W`` defaults to
    ``UniformInitializer(calc_uniform_lim_glorot(in_channels, out_channels, kernel), rng)`` and
    ``_b`` to zeros.

    Args:
        in_channels: input channels (axis ``base_axis``).
        out_channels: output channels.
        kernel: kernel size, e.g. ``(3, 3)``; an int ``k`` means ``(k, k)``.
        pad: padding per spatial axis (default zeros).
        stride: stride per spatial axis (default ones).
        dilation: dilation per spatial axis (default ones).
        group: number of channel groups.
        w_init: initializer of ``_W`` (None, an array, or a callable taking the shape).
        b_init: initializer of ``_b`` (default zeros).
        base_axis: axes before it are sample axes.
        fix_parameters: True makes the weights plain ``nn.Variable`` (``need_grad=False``),
            not registered Parameters.
        rng: the ``numpy.random.RandomState`` of the default initializer; None uses a fresh,
            unseeded one (pass a seeded one for reproducible weights).
        with_bias: whether there is a bias.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: IntOrTuple,
        pad: IntOrTuple | None = None,
        stride: IntOrTuple | None = None,
        dilation: IntOrTuple | None = None,
        group: int = 1,
        w_init: Initializer = None,
        b_init: Initializer = None,
        base_axis: int = 1,
        fix_parameters: bool = False,
        rng: np.random.RandomState | None = None,
        with_bias: bool = True,
    ) -> None:
        kernel = _kernel(kernel)
        if in_channels % group or out_channels % group:
            raise ValueError(
                f"Conv: in_channels ({in_channels}) and out_channels ({out_channels}) must be "
                f"multiples of group ({group})"
            )
        self._in_channels = int(in_channels)
        self._out_channels = int(out_channels)
        self._kernel = kernel
        self._pad = as_tuple(pad, len(kernel), 0, "pad")
        self._stride = as_tuple(stride, len(kernel), 1, "stride")
        self._dilation = as_tuple(dilation, len(kernel), 1, "dilation")
        self._group = int(group)
        self._base_axis = int(base_axis)
        self._with_bias = bool(with_bias)
        self._fix_parameters = bool(fix_parameters)
        if w_init is None:
            rng = rng if rng is not None else np.random.RandomState()
            lim = calc_uniform_lim_glorot(in_channels, out_channels, kernel)
            w_init = UniformInitializer(lim, rng=rng)
        w_shape = (out_channels, in_channels // group, *kernel)
        self._W = make_weight(w_shape, w_init, fix_parameters)
        self._b = make_weight((out_channels,), b_init, fix_parameters) if with_bias else None

    def call(self, x: nn.Variable) -> nn.Variable:
        return F.convolution(
            x,
            self._W,
            self._b,
            base_axis=self._base_axis,
            pad=self._pad,
            stride=self._stride,
            dilation=self._dilation,
            group=self._group,
        )

    def extra_repr(self) -> str:
        return (
            f"{self._in_channels}, {self._out_channels}, kernel={self._kernel}, "
            f"stride={self._stride}, pad={self._pad}, dilation={self._dilation}, "
            f"group={self._group}, with_bias={self._with_bias}"
            + (", fix_parameters=True" if self._fix_parameters else "")
        )


class DwConv(Module):
    """Depthwise convolution, ``F.depthwise_convolution(x, _W, _b, base_axis, pad, stride,
    dilation, multiplier)``.

    Weights: ``_W`` of shape ``(in_channels * multiplier, *kernel)`` and ``_b`` of shape
    ``(in_channels * multiplier,)``. ``_W`` defaults, as in
    ``nnabla.parametric_functions.depthwise_convolution``, to ``UniformInitializer(
    calc_uniform_lim_glorot(in_channels * multiplier, in_channels, kernel), rng)``; ``_b`` to
    zeros.

    Args:
        in_channels: input channels.
        kernel: kernel size; an int ``k`` means ``(k, k)``.
        pad, stride, dilation: per spatial axis (defaults zeros, ones, ones).
        multiplier: output channels per input channel.
        w_init, b_init, base_axis, fix_parameters, rng, with_bias: as for :class:`Conv`.
    """

    def __init__(
        self,
        in_channels: int,
        kernel: IntOrTuple,
        pad: IntOrTuple | None = None,
        stride: IntOrTuple | None = None,
        dilation: IntOrTuple | None = None,
        multiplier: int = 1,
        w_init: Initializer = None,
        b_init: Initializer = None,
        base_axis: int = 1,
        fix_parameters: bool = False,
        rng: np.random.RandomState | None = None,
        with_bias: bool = True,
    ) -> None:
        kernel = _kernel(kernel)
        self._in_channels = int(in_channels)
        self._kernel = kernel
        self._pad = as_tuple(pad, len(kernel), 0, "pad")
        self._stride = as_tuple(stride, len(kernel), 1, "stride")
        self._dilation = as_tuple(dilation, len(kernel), 1, "dilation")
        self._multiplier = int(multiplier)
        self._base_axis = int(base_axis)
        self._with_bias = bool(with_bias)
        self._fix_parameters = bool(fix_parameters)
        out_channels = in_channels * multiplier
        if w_init is None:
            rng = rng if rng is not None else np.random.RandomState()
            lim = calc_uniform_lim_glorot(out_channels, in_channels, kernel)
            w_init = UniformInitializer(lim, rng=rng)
        self._W = make_weight((out_channels, *kernel), w_init, fix_parameters)
        self._b = make_weight((out_channels,), b_init, fix_parameters) if with_bias else None

    def call(self, x: nn.Variable) -> nn.Variable:
        return F.depthwise_convolution(
            x,
            self._W,
            self._b,
            base_axis=self._base_axis,
            pad=self._pad,
            stride=self._stride,
            dilation=self._dilation,
            multiplier=self._multiplier,
        )

    def extra_repr(self) -> str:
        return (
            f"{self._in_channels}, kernel={self._kernel}, stride={self._stride}, "
            f"pad={self._pad}, dilation={self._dilation}, multiplier={self._multiplier}, "
            f"with_bias={self._with_bias}"
            + (", fix_parameters=True" if self._fix_parameters else "")
        )
