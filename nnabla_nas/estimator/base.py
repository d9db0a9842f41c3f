"""The estimator interface and the network tracer every estimator shares.

An estimator turns a network into a number (latency in ms, multiply-accumulates, bytes, ...):

- :meth:`Estimator.predict` -- the value of one architecture of the model, given as
  ``{choice label: candidate index}`` (a searcher's exported architecture, a REINFORCE sample;
  a fixed network has only one and needs none);
- :meth:`Estimator.expected` -- the expected value under an architecture distribution handed in
  by the searcher (``{choice label: probabilities}``, every choice independent, each an
  ``nn.Variable`` of shape ``(n,)``), as a scalar ``nn.Variable`` differentiable with respect to
  whatever the probabilities are computed from (what a gradient-mode hardware loss
  back-propagates to the searcher's logits). Estimators never read architecture parameters;
- :meth:`Estimator.details` -- the named figures reported per epoch (``{"ms": 1.9}``, logged
  as ``<regularizer label>_ms``).

What a "layer" is
    The tracer (:func:`trace`) builds the network's graph once in inference mode with a rule on
    every :class:`~nnabla_nas.module.MixedOp` that builds each candidate on its own detached
    input and hands a fresh placeholder of the output shape to the rest of the network. The
    nnabla functions found are split into the fixed part and, per choice, per candidate, that
    candidate's part (nested choices recurse). A layer (:class:`Layer`) is ONE nnabla function
    (``Convolution``, ``BatchNormalization``, ``Add2``, ...) with its input shapes and arguments:
    every operation the network runs is counted, including those written inline in a module's
    ``call`` (a residual ``x + out``), and nothing else. Its stable string :attr:`Layer.key` is
    the lookup-table key of the latency estimator.

Additive estimators (:class:`LayerwiseEstimator`) define the value of one layer; an
architecture's value is then the sum over its layers, and the expectation is
``fixed + sum_choices sum_i p_choice,i * value(candidate_i)`` (exact for independent
choices, the way the searchers sample). Non-additive ones (peak memory, nn-Meter's graph-level
predictors) implement :meth:`Estimator.predict` on the graph :func:`build_network` returns and
document what their :meth:`Estimator.expected` approximates.

Implementing an estimator: subclass, set :attr:`Estimator.unit` (and an ``Options`` dataclass
for estimator-specific keys of the experiment file's ``regularizer.<name>.options``), override
:meth:`Estimator.from_config` if the constructor needs more than ``input_shape`` and
``batch_size``, and register it in :data:`nnabla_nas.estimator.ESTIMATORS`.
"""

from __future__ import annotations

import abc
import dataclasses
import logging
import weakref
from dataclasses import dataclass
from typing import Any, ClassVar, Sequence

import nnabla as nn
import nnabla.functions as F
import numpy as np

from ..module import Module
from .trace import (  # noqa: F401  (the tracer's names, imported from here before)
    Architecture,
    Choice,
    Distribution,
    Layer,
    Segment,
    build_network,
    inference_graph,
    labels_of,
    probabilities_of,
    trace,
)

__all__ = [
    "Architecture",
    "Distribution",
    "Choice",
    "Estimator",
    "Layer",
    "LayerwiseEstimator",
    "NoOptions",
    "Segment",
    "build_network",
    "inference_graph",
    "trace",
]

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------------
# The interface
# ---------------------------------------------------------------------------------------------


@dataclass
class NoOptions:
    """An estimator without options of its own (``options`` must be empty)."""


class Estimator(abc.ABC):
    """Base of every estimator (see the module docstring).

    Args:
        input_shape: one example's shape ``(C, H, W)`` (the experiment's ``input_shape``).
        batch_size: the batch the value is estimated for (1: single-image inference).
    """

    #: The unit of :meth:`predict` (``"ms"``, ``"MACs"``, ``"bytes"``, ``"params"``).
    unit: ClassVar[str] = ""
    #: The estimator's own options (the ``options`` object of its regularizer section).
    Options: ClassVar[type] = NoOptions
    #: Whether the regularizer section may name a ``lookup_table`` file for it.
    accepts_lookup_table: ClassVar[bool] = False

    def __init__(self, input_shape: Sequence[int], batch_size: int = 1) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.input_shape = tuple(int(s) for s in input_shape)
        self.batch_size = int(batch_size)

    @classmethod
    def from_config(cls, cfg: Any, input_shape: Sequence[int]) -> Estimator:
        """Builds the estimator of a regularizer section.

        Args:
            cfg: the :class:`~nnabla_nas.config.RegularizerConfig` (``cfg.options`` is an
                instance of :attr:`Options`).
            input_shape: the experiment's ``input_shape``.
        """
        kwargs = dataclasses.asdict(cfg.options) if dataclasses.is_dataclass(cfg.options) else {}
        return cls(input_shape, batch_size=cfg.batch_size, **kwargs)

    @property
    def name(self) -> str:
        """The estimator's class name (its registry name)."""
        return type(self).__name__

    @abc.abstractmethod
    def predict(self, model: Module, architecture: Architecture | None = None) -> float:
        """The value of one architecture of ``model`` (None: a fixed network's only one)."""

    @abc.abstractmethod
    def expected(self, model: Module, distribution: Distribution) -> nn.Variable:
        """The expected value under ``distribution`` (``{label: probabilities}``): a scalar
        (shape ``()``) ``nn.Variable`` whose backward reaches what the probabilities are computed
        from."""

    def details(self, model: Module, architecture: Architecture | None = None) -> dict[str, float]:
        """Named figures of one architecture, reported per epoch as ``<label>_<name>`` (default
        ``{unit: predict()}``, e.g. ``{"ms": 1.9}``)."""
        return {self.unit.lower(): float(self.predict(model, architecture))}


class LayerwiseEstimator(Estimator):
    """An estimator whose value is a sum over layers (latency, MACs, parameter counts).

    Subclasses implement :meth:`layer_value`; traces are cached per model (weakly), so
    estimating many architectures of the same model costs one trace.
    """

    def __init__(self, input_shape: Sequence[int], batch_size: int = 1) -> None:
        super().__init__(input_shape, batch_size)
        self._traces: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._sums: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

    @abc.abstractmethod
    def layer_value(self, layer: Layer) -> float:
        """The value of one layer."""

    def prepare(self, layers: Sequence[Layer]) -> None:
        """Called once per trace with every layer of the space before values are asked for
        (the latency estimator measures all unseen layers here, with one progress bar)."""

    def trace(self, model: Module) -> Segment:
        """The model's trace (cached)."""
        seg = self._traces.get(model)
        if seg is None:
            seg = trace(model, self.input_shape, self.batch_size)
            self.prepare(list(seg.all_layers()))
            self._traces[model] = seg
        return seg

    def _fixed(self, seg: Segment) -> float:
        value = self._sums.get(seg)
        if value is None:
            value = self._sums[seg] = float(sum(map(self.layer_value, seg.layers)))
        return value

    def _value(self, seg: Segment, architecture: Architecture | None) -> float:
        total = self._fixed(seg)
        for choice in seg.choices:
            total += self._value(choice.candidates[choice.index(architecture)], architecture)
        return total

    def predict(self, model: Module, architecture: Architecture | None = None) -> float:
        """The sum of the layer values of one architecture."""
        return self._value(self.trace(model), architecture)

    def value_range(self, model: Module) -> tuple[float, float]:
        """The smallest and largest value over the architectures of ``model`` (every choice at
        its cheapest / dearest candidate)."""

        def walk(seg: Segment, pick: Any) -> float:
            total = self._fixed(seg)
            for choice in seg.choices:
                total += pick(walk(c, pick) for c in choice.candidates)
            return total

        seg = self.trace(model)
        return walk(seg, min), walk(seg, max)

    def candidate_values(
        self, model: Module, architecture: Architecture | None = None
    ) -> dict[str, np.ndarray]:
        """``{label: value of each candidate's part}`` for the top-level choices (nested
        choices' parts at their candidate in ``architecture``)."""
        return {
            c.label: np.array([self._value(s, architecture) for s in c.candidates])
            for c in self.trace(model).choices
        }

    def _expected(self, seg: Segment, distribution: Distribution) -> nn.Variable | float:
        total: nn.Variable | float = self._fixed(seg)
        for choice in seg.choices:
            values = [self._expected(c, distribution) for c in choice.candidates]
            n = len(values)
            probs = probabilities_of(distribution, choice.label, n)
            if all(isinstance(v, float) for v in values):
                const = nn.Variable.from_numpy_array(np.asarray(values, dtype=np.float32))
                term = F.sum(probs * const)
            else:
                parts = [
                    F.reshape(v, (1,)) if isinstance(v, nn.Variable)
                    else nn.Variable.from_numpy_array(np.array([v], dtype=np.float32))
                    for v in values
                ]  # fmt: skip
                term = F.sum(probs * F.concatenate(*parts, axis=0))
            total = term + total if isinstance(total, nn.Variable) else F.add_scalar(term, total)
        return total

    def expected(self, model: Module, distribution: Distribution) -> nn.Variable:
        """``fixed + sum_choices sum_i p_i * value(candidate_i)`` (nested choices recurse),
        differentiable with respect to the probabilities of ``distribution``."""
        value = self._expected(self.trace(model), distribution)
        if isinstance(value, float):
            return nn.Variable.from_numpy_array(np.array(value, dtype=np.float32))
        return value
