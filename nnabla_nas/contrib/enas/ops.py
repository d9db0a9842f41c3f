"""The candidate operations of the ENAS spaces (Pham et al., ICML 2018) and the input selector.

Macro space (every layer keeps ``C`` channels and the spatial size; order of the reference code's
branch indices, so its architecture strings read directly):

- ``conv_3x3``, ``conv_5x5``: 1x1 conv - BN - ReLU, then ``k x k`` conv - BN - ReLU;
- ``sep_conv_3x3``, ``sep_conv_5x5``: 1x1 conv - BN - ReLU, then depthwise ``k x k`` - pointwise
  1x1 - BN - ReLU;
- ``avg_pool_3x3``, ``max_pool_3x3``: 1x1 conv - BN - ReLU, then 3x3 pooling, stride 1, padding 1
  (the average does not count the padding).

Micro space (every node has ``C`` channels; ``stride`` 2 on the edges that leave a reduction
cell's two inputs):

- ``sep_conv_3x3``, ``sep_conv_5x5``: (ReLU - depthwise ``k x k`` - pointwise 1x1 - BN) twice,
  the stride on the first (DARTS' :class:`~nnabla_nas.contrib.darts.ops.SepConv`);
- ``avg_pool_3x3``, ``max_pool_3x3``: 3x3 pooling with padding 1 and the stride;
- ``identity``: the input, or at stride 2 a factorized reduction (two shifted 1x1 stride-2 convs,
  concatenated, BN; no leading ReLU).

Convolutions have no bias; every BN has trainable scale and shift.
"""

from __future__ import annotations

import logging
from typing import Any

import nnabla as nn
import numpy as np

from ...module import (
    AvgPool,
    BatchNormalization,
    Conv,
    DwConv,
    Identity,
    MaxPool,
    MixedOp,
    Module,
    ReLU,
    Sequential,
)
from ..darts.ops import FactorizedReduce, Pool, SepConv

__all__ = [
    "MACRO_OPS",
    "MICRO_OPS",
    "SKIP_NAMES",
    "Edge",
    "macro_op",
    "micro_op",
]

logger = logging.getLogger(__name__)

Rng = np.random.RandomState

#: The six operations of a macro layer, in the reference code's branch order.
MACRO_OPS = (
    "conv_3x3",
    "sep_conv_3x3",
    "conv_5x5",
    "sep_conv_5x5",
    "avg_pool_3x3",
    "max_pool_3x3",
)
#: The five operations of a micro node's input, in the reference code's order.
MICRO_OPS = ("sep_conv_3x3", "sep_conv_5x5", "avg_pool_3x3", "max_pool_3x3", "identity")
#: The two candidates of a skip-connection decision.
SKIP_NAMES = ("absent", "present")


def _conv_bn_relu(
    in_channels: int, out_channels: int, kernel: int, rng: Rng | None, separable: bool = False
) -> Sequential:
    pad = kernel // 2
    if separable:
        convs: list[Module] = [
            DwConv(in_channels, kernel, pad=pad, with_bias=False, rng=rng),
            Conv(in_channels, out_channels, 1, with_bias=False, rng=rng),
        ]
    else:
        convs = [Conv(in_channels, out_channels, kernel, pad=pad, with_bias=False, rng=rng)]
    return Sequential(*convs, BatchNormalization(out_channels, 4), ReLU())


def macro_op(name: str, channels: int, rng: Rng | None = None) -> Module:
    """Builds macro operation ``name`` (one of :data:`MACRO_OPS`) on ``channels`` channels.

    Raises:
        ValueError: an unknown name.
    """
    if name not in MACRO_OPS:
        raise ValueError(f"unknown ENAS macro operation {name!r}; valid: {', '.join(MACRO_OPS)}")
    first = _conv_bn_relu(channels, channels, 1, rng)
    kind, size = name.rsplit("_", 1)
    k = int(size[0])
    if kind == "avg_pool":
        second: Module = AvgPool(k, stride=1, pad=k // 2)
    elif kind == "max_pool":
        second = MaxPool(k, stride=1, pad=k // 2)
    else:
        second = _conv_bn_relu(channels, channels, k, rng, separable=kind == "sep_conv")
    return Sequential(first, second)


def micro_op(name: str, channels: int, stride: int, rng: Rng | None = None) -> Module:
    """Builds micro operation ``name`` (one of :data:`MICRO_OPS`) on ``channels`` channels.

    Raises:
        ValueError: an unknown name.
    """
    if name in ("sep_conv_3x3", "sep_conv_5x5"):
        k = int(name[-1])
        return SepConv(channels, channels, k, stride, k // 2, True, rng)
    if name in ("avg_pool_3x3", "max_pool_3x3"):
        return Pool(name[:3], channels, stride, bn=False)
    if name == "identity":
        if stride == 1:
            return Identity()
        return FactorizedReduce(channels, channels, True, rng, relu=False)
    raise ValueError(f"unknown ENAS micro operation {name!r}; valid: {', '.join(MICRO_OPS)}")


class Edge(Module):
    """One candidate of a micro node's input choice: takes node ``source`` of the states it is
    called with and applies ``op`` to it (the operation choice of this input, whose weights
    belong to this edge of the cell's DAG, as ENAS shares weights per edge)."""

    def __init__(self, source: int, op: MixedOp | Module) -> None:
        self.source = int(source)
        self.op = op

    def call(self, *states: Any) -> nn.Variable:
        return self.op(states[self.source])

    def extra_repr(self) -> str:
        return f"source={self.source}"
