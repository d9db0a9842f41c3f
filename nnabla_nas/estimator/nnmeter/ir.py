"""nnabla graph -> nn-Meter's IR (``nnmeter-ir``), and the kernels' prediction features."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Mapping, Sequence

import nnabla as nn
import nnabla.functions as F
import numpy as np

from ..base import Layer
from ._runtime import _INPUT, _OP_TYPES, _PASS_THROUGH, _quiet, import_nn_meter

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# nnabla graph -> nn-Meter IR
# ---------------------------------------------------------------------------------------------


@dataclass
class NnMeterGraph:
    """One architecture in nn-Meter's IR.

    Attributes:
        ir: the nn-Meter IR dict (``{node: {"attr": {"type", "attr", "input_shape",
            "output_shape"}, "inbounds", "outbounds"}}``), ``model_type="nnmeter-ir"``.
        layers: node name -> the :class:`~nnabla_nas.estimator.base.Layer` (nnabla function)
            it was made from (what the latency lookup table is keyed by).
    """

    ir: dict[str, dict[str, Any]]
    layers: dict[str, Layer]


def _nhwc(shape: Sequence[int], channel_last: bool = False) -> list[int]:
    shape = [int(s) for s in shape]
    if len(shape) == 4 and not channel_last:
        return [shape[0], shape[2], shape[3], shape[1]]
    return shape


def _node_attr(func: Any, layer: Layer, op: str) -> dict[str, Any]:
    args = layer.arguments
    attr: dict[str, Any] = {}
    if op in ("conv", "dwconv"):
        kernel = list(layer.inputs[1][-2:])
        stride = list(args.get("stride", [1, 1]))
        attr = {
            "ks": kernel,
            "strides": [1, *stride, 1],
            "pads": list(args.get("pad", [0, 0])),
            "dilations": list(args.get("dilation", [1, 1])),
        }
        # No "group": nn-Meter turns any conv whose group equals its input channels into a
        # dwconv, a 1-channel input's stem conv included; dwconv is decided here instead.
    elif op in ("avgpool", "maxpool"):
        attr = {"ks": list(args["kernel"]), "strides": [1, *args["stride"], 1]}
        attr["pads"] = list(args.get("pad", [0, 0]))
    elif op == "concat":
        attr = {"axis": int(args.get("axis", 1))}
    return attr


def to_nnmeter_ir(outputs: nn.Variable | Sequence[nn.Variable], x: nn.Variable) -> NnMeterGraph:
    """nn-Meter's IR of the nnabla graph that computes ``outputs`` from the input ``x``.

    One node per nnabla function, named ``<Type>_<i>``, plus an ``input`` placeholder. Shapes
    are NHWC (nn-Meter's layout); weights are not nodes (they are the functions' leaf inputs).
    ``Reshape``/``Identity`` only relabel memory and are skipped (their consumers read from
    their input's producer). A ``Convolution`` whose groups equal its input and output
    channels is a ``dwconv``. Functions without an nn-Meter type keep their lower-cased name.
    """
    outs = [outputs] if isinstance(outputs, nn.Variable) else list(outputs)
    outs = [o for o in outs if o.parent is not None]
    root = F.sink(*outs) if len(outs) > 1 else outs[0]
    funcs: list[Any] = []
    root.visit(funcs.append)
    ir: dict[str, dict[str, Any]] = {
        _INPUT: {
            "attr": {
                "name": _INPUT,
                "type": "Placeholder",
                "attr": {},
                "input_shape": [],
                "output_shape": [_nhwc(x.shape)],
            },
            "inbounds": [],
            "outbounds": [],
        }
    }
    layers: dict[str, Layer] = {}
    producer: dict[Any, str] = {x: _INPUT}  # activation variable -> node name
    for func in funcs:
        layer = Layer.from_function(func, {x})
        data = [v for v, w in zip(func.inputs, layer.weights) if not w]
        inbounds = [producer[v] for v in data if v in producer]
        kind = layer.type
        if kind in _PASS_THROUGH:
            if data and data[0] in producer:
                for v in func.outputs:
                    producer[v] = producer[data[0]]
            continue
        op = _OP_TYPES.get(kind, kind.lower())
        channel_last = bool(layer.arguments.get("channel_last", False))
        in_shapes = [_nhwc(v.shape, channel_last) for v in data]
        out_shapes = [_nhwc(v.shape, channel_last) for v in func.outputs]
        if op == "conv":
            group = int(layer.arguments.get("group", 1))
            if group > 1 and group == in_shapes[0][-1] == out_shapes[0][-1]:
                op = "dwconv"
        if op == "fc":
            base = int(layer.arguments.get("base_axis", 1))
            shape = [int(s) for s in data[0].shape]
            in_shapes = [[*shape[:base], int(np.prod(shape[base:]))]]
        name = f"{kind}_{len(layers)}"
        ir[name] = {
            "attr": {
                "name": name,
                "type": op,
                "attr": _node_attr(func, layer, op),
                "input_shape": in_shapes,
                "output_shape": out_shapes,
            },
            "inbounds": inbounds,
            "outbounds": [],
        }
        for parent in inbounds:
            ir[parent]["outbounds"].append(name)
        layers[name] = layer
        for v in func.outputs:
            producer[v] = name
    return NnMeterGraph(ir, layers)


def kernel_features(kernel: Mapping[str, Any]) -> list[float] | None:
    """The feature vector nn-Meter's predictor feeds the kernel's model (None: nn-Meter has no
    features for this kernel type, so it is never predicted)."""
    import_nn_meter()
    from nn_meter.predictor.prediction.extract_feature import get_predict_features

    with _quiet():
        try:
            feats = get_predict_features([dict(kernel)])
        except (KeyError, IndexError, TypeError):
            return None
    return [float(v) for v in next(iter(feats[0].values()))] if feats else None


def kernel_name(op: str) -> str:
    """The kernel predictor nn-Meter uses for a kernel op (``conv-bn`` -> ``conv-bn-relu``)."""
    import_nn_meter()
    from nn_meter.predictor.prediction.utils import get_kernel_name

    return str(get_kernel_name(op))
