"""Inference memory of an architecture: :class:`MemoryEstimator`.

Two figures, in bytes (``bytes_per_value`` per number: 4 for float, 2 for half):

- parameter bytes: every weight the architecture's functions read (running statistics
  included: they are stored with the weights);
- peak activation bytes: the largest total size of the activations alive at once when the
  functions run in order and each activation is freed after its last reader (what nnabla's
  ``forward(clear_buffer=True)`` does), the network input included. A function's outputs are
  alive while it runs, together with its inputs. In-place functions are counted as if they
  allocated their output.

:meth:`MemoryEstimator.predict` is their sum for one architecture, computed on its real graph.
:meth:`MemoryEstimator.expected` (for a gradient-mode regularizer) is the exact expectation of
the parameter bytes plus a differentiable stand-in for the peak: the largest, over the fixed
part and the choices, of the expected working set of one function (its activation inputs and
outputs). That is a lower bound of the expected peak (it ignores activations kept alive across
functions, such as a residual input), so compare it to a bound measured the same way.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Sequence

import nnabla as nn
import nnabla.functions as F
import numpy as np

from ..module import Module
from .base import (
    Architecture,
    Distribution,
    Estimator,
    Layer,
    Segment,
    inference_graph,
    probabilities_of,
    trace,
)

__all__ = ["MemoryEstimator", "peak_activation_bytes"]

logger = logging.getLogger(__name__)


def _bytes(shape: Sequence[int], per_value: int) -> int:
    return int(math.prod(shape)) * per_value


def peak_activation_bytes(outputs: Sequence[nn.Variable], inputs: Sequence[nn.Variable],
                          per_value: int = 4) -> int:  # fmt: skip
    """The peak of live activation bytes when the graph of ``outputs`` runs (see the module
    docstring).

    Args:
        outputs: the graph's outputs (alive until the end).
        inputs: the graph's input variables (alive from the start until their last reader).
        per_value: bytes per number.
    """
    order: list[Any] = []
    roots = [o for o in outputs if o.parent is not None]
    if not roots:
        return sum(_bytes(v.shape, per_value) for v in inputs)
    (F.sink(*roots) if len(roots) > 1 else roots[0]).visit(order.append)
    order = [f for f in order if f.info.type_name != "Sink"]
    activation = set(inputs)
    for f in order:
        activation.update(f.outputs)
    last: dict[Any, int] = {}
    for i, f in enumerate(order):
        for v in f.inputs:
            if v in activation:
                last[v] = i
    keep = set(outputs)
    live = {v: _bytes(v.shape, per_value) for v in inputs}
    peak = sum(live.values())
    for i, f in enumerate(order):
        for v in f.outputs:
            live[v] = _bytes(v.shape, per_value)
        peak = max(peak, sum(live.values()))
        for v in f.inputs:
            if v in live and last.get(v) == i and v not in keep:
                del live[v]
        for v in f.outputs:  # an output nobody reads is dropped at once
            if v not in last and v not in keep:
                live.pop(v, None)
    return int(peak)


def _param_bytes(layers: Sequence[Layer], per_value: int) -> int:
    return sum(_bytes(s, per_value) for ly in layers for s, w in zip(ly.inputs, ly.weights) if w)


def _working_set(layer: Layer, per_value: int) -> int:
    acts = [s for s, w in zip(layer.inputs, layer.weights) if not w]
    return sum(_bytes(s, per_value) for s in [*acts, *layer.outputs])


class MemoryEstimator(Estimator):
    """Parameter bytes plus peak activation bytes of an architecture (see the module docstring).

    Args:
        input_shape: one example's shape.
        batch_size: examples per forward.
        bytes_per_value: bytes per number (4: float32; 2: half).
    """

    unit = "bytes"

    def __init__(self, input_shape: Sequence[int], batch_size: int = 1,
                 bytes_per_value: int = 4) -> None:  # fmt: skip
        super().__init__(input_shape, batch_size)
        self.bytes_per_value = int(bytes_per_value)

    def memory(self, model: Module, architecture: Architecture | None = None) -> tuple[int, int]:
        """``(parameter bytes, peak activation bytes)`` of one architecture."""
        x, out = inference_graph(model, self.input_shape, self.batch_size, architecture)
        outs = list(out) if isinstance(out, (tuple, list)) else [out]
        order: list[Any] = []
        roots = [o for o in outs if o.parent is not None]
        if roots:
            (F.sink(*roots) if len(roots) > 1 else roots[0]).visit(order.append)
        layers = [Layer.from_function(f, {x}) for f in order if f.info.type_name != "Sink"]
        params = _param_bytes(layers, self.bytes_per_value)
        return params, peak_activation_bytes(outs, [x], self.bytes_per_value)

    def predict(self, model: Module, architecture: Architecture | None = None) -> float:
        """Parameter bytes + peak activation bytes."""
        return float(sum(self.memory(model, architecture)))

    def details(self, model: Module, architecture: Architecture | None = None) -> dict[str, float]:
        params, peak = self.memory(model, architecture)
        return {
            "param_bytes": float(params),
            "activation_bytes": float(peak),
            "total_bytes": float(params + peak),
        }

    def expected(self, model: Module, distribution: Distribution) -> nn.Variable:
        """E[parameter bytes] + the largest expected working set of one function (a
        differentiable lower bound of the expected peak; see the module docstring)."""
        seg = trace(model, self.input_shape, self.batch_size)
        params, peaks = self._expected(seg, distribution)
        return F.add2(F.reshape(params, ()), F.reshape(_max(peaks), ()))

    def _expected(
        self, seg: Segment, distribution: Distribution
    ) -> tuple[nn.Variable, list[nn.Variable]]:
        per = self.bytes_per_value
        params: nn.Variable = _const(_param_bytes(seg.layers, per))
        peaks = [_const(max([_working_set(ly, per) for ly in seg.layers], default=0))]
        for choice in seg.choices:
            sub = [self._expected(c, distribution) for c in choice.candidates]
            probs = probabilities_of(distribution, choice.label, len(sub))
            params = params + F.sum(probs * F.concatenate(*[F.reshape(p, (1,)) for p, _ in sub]))
            cand_peaks = [_max(ps) for _, ps in sub]
            peaks.append(F.sum(probs * F.concatenate(*[F.reshape(p, (1,)) for p in cand_peaks])))
        return params, peaks


def _const(value: float) -> nn.Variable:
    return nn.Variable.from_numpy_array(np.array(float(value), dtype=np.float32))


def _max(values: list[nn.Variable]) -> nn.Variable:
    out = values[0]
    for v in values[1:]:
        out = F.maximum2(out, v)
    return out
