"""Arithmetic cost: multiply-accumulates (:class:`FlopsEstimator`) and weights
(:class:`ParamsEstimator`), counted per nnabla function of the traced network.

MACs of one function (``out`` = number of output values, batch included):

================================  ==============================================================
``Convolution``                   ``out * (C_in / group) * k_h * k_w`` (the weight's size per
                                  output channel)
``DepthwiseConvolution``          ``out * k_h * k_w``
``Affine``                        ``out * in_features``
``BatchNormalization``            ``out`` (inference: one multiply-add per value, the scale and
                                  shift folded)
``MaxPooling``/``AveragePooling`` ``out * k_h * k_w`` (one compare or add per window cell)
``GlobalAveragePooling``          the input's size (one add per value)
anything else                     0 (activations, additions, reshapes: memory-bound, cheap)
================================  ==============================================================

Biases are not counted as MACs. FLOPs are about ``2 * MACs``.

Parameters: the sizes of a function's weight inputs (see :attr:`Layer.weights`), except the
running statistics of ``BatchNormalization`` (its inputs 3 and 4): the learnable weights, as
``Model.num_params`` counts them. A weight used by several functions would be counted once per
use (no space here shares weights between functions).
"""

from __future__ import annotations

import logging
import math
from typing import Sequence

from ..module import Module
from .base import Architecture, Layer, LayerwiseEstimator

__all__ = ["FlopsEstimator", "ParamsEstimator", "layer_macs", "layer_params"]

logger = logging.getLogger(__name__)

_STATISTICS = {"BatchNormalization": (3, 4)}  # input indices that are running statistics


def _size(shape: Sequence[int]) -> int:
    return int(math.prod(shape))


def layer_macs(layer: Layer) -> int:
    """The multiply-accumulates of one layer (see the module docstring)."""
    out = _size(layer.outputs[0]) if layer.outputs else 0
    t = layer.type
    if t == "Convolution":
        return out * _size(layer.inputs[1][1:])
    if t in ("DepthwiseConvolution", "DepthwiseDeconvolution"):
        return out * _size(layer.inputs[1][1:])
    if t == "Deconvolution":
        return _size(layer.inputs[0]) * _size(layer.inputs[1][1:])
    if t == "Affine":
        return out * int(layer.inputs[1][0])
    if t == "BatchNormalization":
        return out
    if t in ("MaxPooling", "AveragePooling", "SumPooling"):
        return out * _size(dict(layer.args)["kernel"])
    if t == "GlobalAveragePooling":
        return _size(layer.inputs[0])
    return 0


def layer_params(layer: Layer) -> int:
    """The learnable weights one layer reads (running statistics excluded)."""
    skip = _STATISTICS.get(layer.type, ())
    return sum(
        _size(shape)
        for i, (shape, is_weight) in enumerate(zip(layer.inputs, layer.weights))
        if is_weight and i not in skip
    )


class FlopsEstimator(LayerwiseEstimator):
    """Multiply-accumulates of an architecture (inference, ``batch_size`` examples).

    :meth:`details` reports ``macs`` and ``params`` (the learnable weights).
    """

    unit = "MACs"

    def layer_value(self, layer: Layer) -> float:
        return float(layer_macs(layer))

    def details(self, model: Module, architecture: Architecture | None = None) -> dict[str, float]:
        params = sum(map(layer_params, self.trace(model).active_layers(architecture)))
        return {"macs": self.predict(model, architecture), "params": float(params)}


class ParamsEstimator(LayerwiseEstimator):
    """The number of learnable weights of an architecture (batch-independent)."""

    unit = "params"

    def layer_value(self, layer: Layer) -> float:
        return float(layer_params(layer))

    def details(self, model: Module, architecture: Architecture | None = None) -> dict[str, float]:
        return {"params": self.predict(model, architecture)}
