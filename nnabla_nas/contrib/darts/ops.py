"""The DARTS candidate operations (Liu, Simonyan and Yang, ICLR 2019, ``operations.py``).

Every candidate maps ``C`` channels to ``C`` channels; with ``stride=2`` (the edges of a reduction
cell that leave its two input nodes) the spatial size becomes ``ceil(size / 2)``:

- ``sep_conv_3x3``, ``sep_conv_5x5``: a separable convolution applied twice,
  ReLU - depthwise ``k x k`` (stride) - pointwise 1x1 - BN - ReLU - depthwise ``k x k`` -
  pointwise 1x1 - BN;
- ``dil_conv_3x3``, ``dil_conv_5x5``: ReLU - depthwise ``k x k`` with dilation 2 (stride) -
  pointwise 1x1 - BN;
- ``max_pool_3x3``, ``avg_pool_3x3``: 3x3 pooling with padding 1 (the average does not count
  the padding); in the search network followed by a BN without affine parameters, as DARTS;
- ``skip_connect``: the identity, or :class:`FactorizedReduce` at stride 2;
- ``none``: :class:`~nnabla_nas.module.Zero`.

Convolutions have no bias. ``affine=False`` (the search network) builds batch normalisations
without trainable scale and shift (``fix_parameters=True``: only the running statistics are
parameters).
"""

from __future__ import annotations

import logging

import nnabla as nn
import nnabla.functions as F
import numpy as np

from ...module import (
    AvgPool,
    BatchNormalization,
    Conv,
    DwConv,
    Identity,
    MaxPool,
    Module,
    ReLU,
    Zero,
)

__all__ = [
    "cell_inputs",
    "PRIMITIVES",
    "DilConv",
    "FactorizedReduce",
    "Pool",
    "ReLUConvBN",
    "SepConv",
    "batch_norm",
    "make_op",
]

logger = logging.getLogger(__name__)

#: The candidates in DARTS' order (``genotypes.PRIMITIVES``).
PRIMITIVES = (
    "none",
    "max_pool_3x3",
    "avg_pool_3x3",
    "skip_connect",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)

Rng = np.random.RandomState


def batch_norm(channels: int, affine: bool) -> BatchNormalization:
    """BN over the channels of NCHW inputs; ``affine=False`` has no trainable scale and shift."""
    return BatchNormalization(channels, 4, fix_parameters=not affine)


class ReLUConvBN(Module):
    """ReLU - Conv ``k x k`` (no bias) - BN."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int = 1,
        pad: int = 0,
        affine: bool = True,
        rng: Rng | None = None,
    ) -> None:
        self.relu = ReLU()
        self.conv = Conv(
            in_channels, out_channels, kernel, pad=pad, stride=stride, with_bias=False, rng=rng
        )
        self.bn = batch_norm(out_channels, affine)

    def call(self, x: nn.Variable) -> nn.Variable:
        return self.bn(self.conv(self.relu(x)))


class DilConv(Module):
    """ReLU - depthwise ``k x k`` (stride, dilation) - pointwise 1x1 - BN."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int,
        pad: int,
        dilation: int,
        affine: bool = True,
        rng: Rng | None = None,
    ) -> None:
        self.relu = ReLU()
        self.dw = DwConv(
            in_channels,
            kernel,
            pad=pad,
            stride=stride,
            dilation=dilation,
            with_bias=False,
            rng=rng,
        )
        self.pw = Conv(in_channels, out_channels, 1, with_bias=False, rng=rng)
        self.bn = batch_norm(out_channels, affine)

    def call(self, x: nn.Variable) -> nn.Variable:
        return self.bn(self.pw(self.dw(self.relu(x))))


class SepConv(Module):
    """A separable convolution applied twice: ``DilConv(C_in, C_in, k, stride)`` then
    ``DilConv(C_in, C_out, k, 1)``, both with dilation 1."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel: int,
        stride: int,
        pad: int,
        affine: bool = True,
        rng: Rng | None = None,
    ) -> None:
        self.op1 = DilConv(in_channels, in_channels, kernel, stride, pad, 1, affine, rng)
        self.op2 = DilConv(in_channels, out_channels, kernel, 1, pad, 1, affine, rng)

    def call(self, x: nn.Variable) -> nn.Variable:
        return self.op2(self.op1(x))


class FactorizedReduce(Module):
    """Halves the spatial size: ReLU, two 1x1 stride-2 convolutions to ``C_out / 2`` channels each,
    one on the input and one on the input shifted by one pixel, concatenated, then BN.

    The shifted input is ``x[:, :, 1:, 1:]`` zero-padded by one row and column at the end, so
    both halves have ``ceil(size / 2)`` pixels at any size (equal to DARTS' ``x[:, :, 1:, 1:]``
    at even sizes, where the padding is never read). ``relu=False`` leaves out the leading ReLU
    (ENAS' factorized reduction).
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        affine: bool = True,
        rng: Rng | None = None,
        relu: bool = True,
    ) -> None:
        if out_channels % 2:
            raise ValueError(f"FactorizedReduce needs an even out_channels, got {out_channels}")
        self.relu = ReLU() if relu else Identity()
        self.conv1 = Conv(in_channels, out_channels // 2, 1, stride=2, with_bias=False, rng=rng)
        self.conv2 = Conv(in_channels, out_channels // 2, 1, stride=2, with_bias=False, rng=rng)
        self.bn = batch_norm(out_channels, affine)

    def call(self, x: nn.Variable) -> nn.Variable:
        x = self.relu(x)
        shifted = F.slice(x, start=(0, 0, 1, 1), stop=tuple(x.shape), step=(1, 1, 1, 1))
        shifted = F.pad(shifted, (0, 1, 0, 1))
        return self.bn(F.concatenate(self.conv1(x), self.conv2(shifted), axis=1))


class Pool(Module):
    """3x3 max or average pooling (padding 1; the average excludes the padding), optionally
    followed by a BN without affine parameters (DARTS' search network)."""

    def __init__(self, kind: str, channels: int, stride: int, bn: bool) -> None:
        if kind == "max":
            self.pool = MaxPool(3, stride=stride, pad=1)
        elif kind == "avg":
            self.pool = AvgPool(3, stride=stride, pad=1)
        else:
            raise ValueError(f"unknown pooling {kind!r}; expected 'max' or 'avg'")
        if bn:
            self.bn = batch_norm(channels, affine=False)

    def call(self, x: nn.Variable) -> nn.Variable:
        out = self.pool(x)
        return self.bn(out) if "bn" in self.modules else out


def cell_inputs(
    prev_prev: int, prev: int, channels: int, reduction_prev: bool, affine: bool, rng: Rng | None
) -> tuple[Module, Module]:
    """The two input nodes of a cell: ``c_{k-2}`` (factorized reduce after a reduction cell,
    whose output is twice as small) and ``c_{k-1}``, both brought to ``channels``."""
    if reduction_prev:
        pre0: Module = FactorizedReduce(prev_prev, channels, affine=affine, rng=rng)
    else:
        pre0 = ReLUConvBN(prev_prev, channels, 1, affine=affine, rng=rng)
    return pre0, ReLUConvBN(prev, channels, 1, affine=affine, rng=rng)


def make_op(
    name: str,
    channels: int,
    stride: int,
    affine: bool = True,
    pool_bn: bool = False,
    rng: Rng | None = None,
) -> Module:
    """Builds candidate ``name`` (one of :data:`PRIMITIVES`) on ``channels`` channels.

    Args:
        name: the candidate.
        channels: input and output channels.
        stride: 1, or 2 on the edges that leave the inputs of a reduction cell.
        affine: trainable BN scale and shift (False in the search network).
        pool_bn: follow the pooling candidates with a non-affine BN (the search network).
        rng: weight initialisation.

    Raises:
        ValueError: ``name`` is not a DARTS candidate.
    """
    if name == "none":
        return Zero(stride)
    if name == "skip_connect":
        return Identity() if stride == 1 else FactorizedReduce(channels, channels, affine, rng)
    if name in ("max_pool_3x3", "avg_pool_3x3"):
        return Pool(name[:3], channels, stride, pool_bn)
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        k = int(name[-1])
        return SepConv(channels, channels, k, stride, k // 2, affine, rng)
    if name in ("dil_conv_3x3", "dil_conv_5x5"):
        k = int(name[-1])
        return DilConv(channels, channels, k, stride, k - 1, 2, affine, rng)
    raise ValueError(f"unknown DARTS candidate {name!r}; valid: {', '.join(PRIMITIVES)}")
