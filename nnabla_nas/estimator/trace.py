"""The network tracer every estimator shares: what a "layer" is, and one architecture's graph.

:func:`trace` builds the network's graph once in inference mode with a rule on every
:class:`~nnabla_nas.module.MixedOp` that builds each candidate on its own detached input and hands
a fresh placeholder of the output shape to the rest of the network. The nnabla functions found
are split into the fixed part and, per choice (by label, see
:func:`~nnabla_nas.module.choice_groups`), per candidate, that candidate's part (nested choices
recurse). A layer (:class:`Layer`) is ONE nnabla function with its input shapes and arguments;
its stable string :attr:`Layer.key` is the lookup-table key of the latency estimator.
:func:`inference_graph` builds one architecture ``{label: candidate index}`` of a model.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass, field
from typing import Any, Iterator, Mapping, Sequence

import nnabla as nn
import nnabla.functions as F
import numpy as np

from ..module import MixedOp, Module, choice_groups

__all__ = [
    "Architecture",
    "Choice",
    "Distribution",
    "Layer",
    "Segment",
    "build_network",
    "inference_graph",
    "labels_of",
    "probabilities_of",
    "trace",
]

logger = logging.getLogger(__name__)

#: One architecture of a model: ``{choice label: candidate index}``.
Architecture = Mapping[str, int]
#: A distribution over a model's architectures: ``{choice label: probabilities}``, each an
#: ``nn.Variable`` of shape ``(n,)`` (independent choices).
Distribution = Mapping[str, nn.Variable]


def _pick(label: str, architecture: Architecture | None) -> int:
    if architecture is None or label not in architecture:
        raise ValueError(
            f"no candidate given for choice {label!r}: estimate a supernet for an explicit "
            "architecture ({label: candidate index}, e.g. a searcher's exported one)"
        )
    return int(architecture[label])


def labels_of(model: Module) -> dict[int, str]:
    """``id(MixedOp) -> label`` of every choice (shared decisions share a label)."""
    return {id(op): label for label, ops in choice_groups(model).items() for op in ops}


def probabilities_of(distribution: Distribution, label: str, n: int) -> nn.Variable:
    """The probabilities of choice ``label`` (``n`` candidates) from ``distribution``."""
    if label not in distribution:
        raise ValueError(f"the distribution gives no probabilities for choice {label!r}")
    probs = distribution[label]
    if int(np.prod(probs.shape)) != n:
        raise ValueError(f"choice {label!r} has {n} candidates, its probabilities {probs.shape}")
    return probs if tuple(probs.shape) == (n,) else F.reshape(probs, (n,))


#: nnabla functions that only join outputs (added by the tracer itself): never layers.
_IGNORED_TYPES = frozenset({"Sink"})


# ---------------------------------------------------------------------------------------------
# Layers and the traced network
# ---------------------------------------------------------------------------------------------


def _canonical(value: Any) -> Any:
    """Argument values as hashable, process-independent Python values."""
    if isinstance(value, (list, tuple)):
        return tuple(_canonical(v) for v in value)
    if isinstance(value, np.generic):
        return value.item()
    return value


def _format(value: Any) -> str:
    if isinstance(value, tuple):
        return "(" + ",".join(_format(v) for v in value) + ")"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _shape(shape: Sequence[int]) -> str:
    return "x".join(str(int(s)) for s in shape) or "scalar"


@dataclass(frozen=True)
class Layer:
    """One nnabla function of the network, as estimators see it.

    Attributes:
        type: the nnabla function's type name (``"Convolution"``, ``"ReLU6"``, ...).
        inputs: the shapes of its inputs, in the function's order (weights included).
        outputs: the shapes of its outputs.
        args: its arguments as sorted ``(name, value)`` pairs (lists become tuples).
        weights: per input, True when it is a weight (a leaf variable that is neither the
            network input nor an activation: parameters, running statistics, fixed weights).
    """

    type: str
    inputs: tuple[tuple[int, ...], ...]
    outputs: tuple[tuple[int, ...], ...]
    args: tuple[tuple[str, Any], ...] = ()
    weights: tuple[bool, ...] = ()

    @property
    def key(self) -> str:
        """A stable string: type, input shapes and arguments (the same in every process), e.g.
        ``Convolution[1x8x14x14,16x8x1x1](base_axis=1,...,stride=(1,1))``."""
        shapes = ",".join(_shape(s) for s in self.inputs)
        args = ",".join(f"{k}={_format(v)}" for k, v in self.args)
        return f"{self.type}[{shapes}]({args})"

    @property
    def arguments(self) -> dict[str, Any]:
        """The arguments as a dict (tuples as lists, as nnabla's function constructors take)."""

        def plain(v: Any) -> Any:
            return [plain(x) for x in v] if isinstance(v, tuple) else v

        return {k: plain(v) for k, v in self.args}

    @classmethod
    def from_function(cls, func: Any, activations: set) -> Layer:
        """The layer of an nnabla function object (from ``nn.Variable.visit``).

        Args:
            func: the function.
            activations: variables to count as activations even though they have no parent
                (the network input, the tracer's placeholders).
        """
        weights = tuple(v.parent is None and v not in activations for v in func.inputs)
        args = tuple(sorted((str(k), _canonical(v)) for k, v in func.info.args.items()))
        return cls(
            type=str(func.info.type_name),
            inputs=tuple(tuple(int(s) for s in v.shape) for v in func.inputs),
            outputs=tuple(tuple(int(s) for s in v.shape) for v in func.outputs),
            args=args,
            weights=weights,
        )


@dataclass(eq=False)
class Choice:
    """A choice of the traced network: its candidates' parts.

    Attributes:
        label: the choice's label (its module path, as ``Model.choices()``).
        op: the (first) MixedOp of the choice.
        names: the candidates' names.
        candidates: one :class:`Segment` per candidate (the layers that candidate runs).
    """

    label: str
    op: MixedOp
    names: list[str]
    candidates: list[Segment]

    def index(self, architecture: Architecture | None) -> int:
        """The candidate ``architecture`` picks for this choice (a ValueError when absent)."""
        return _pick(self.label, architecture)


@dataclass(eq=False)
class Segment:
    """A part of a traced network: its own layers plus the choices inside it.

    The root segment is the fixed part of the whole network; every candidate of a choice is a
    segment (a candidate with choices inside it has nested segments).
    """

    layers: list[Layer] = field(default_factory=list)
    choices: list[Choice] = field(default_factory=list)

    def active_layers(self, architecture: Architecture | None = None) -> Iterator[Layer]:
        """The layers of one architecture: this segment's and those of the chosen candidates."""
        yield from self.layers
        for choice in self.choices:
            yield from choice.candidates[choice.index(architecture)].active_layers(architecture)

    def all_layers(self) -> Iterator[Layer]:
        """Every layer of every candidate (what a lookup table must hold for the space)."""
        yield from self.layers
        for choice in self.choices:
            for cand in choice.candidates:
                yield from cand.all_layers()

    def all_choices(self) -> Iterator[Choice]:
        """Every choice, nested ones included."""
        for choice in self.choices:
            yield choice
            for cand in choice.candidates:
                yield from cand.all_choices()


@contextlib.contextmanager
def _rules(model: Module, rule: Any) -> Iterator[None]:
    """Installs ``rule`` on every MixedOp and inference mode; restores both after."""
    modules = [m for _, m in model.get_modules()]
    ops = [m for m in modules if isinstance(m, MixedOp)]
    previous = [(op, op.rule, op.active_index) for op in ops]
    training = [(m, m.training) for m in modules]  # pre-order: parents before children
    model.apply(training=False)
    for op in ops:
        op.rule = rule
    try:
        yield
    finally:
        for op, old, index in previous:
            op.rule, op.active_index = old, index
        for m, flag in training:
            m.training = flag


def _outputs(out: Any) -> list[nn.Variable]:
    if isinstance(out, nn.Variable):
        return [out]
    if isinstance(out, (tuple, list)):
        return [v for v in out if isinstance(v, nn.Variable)]
    raise TypeError(f"estimators need nn.Variable outputs, got {type(out).__name__}")


def _collect(roots: list[nn.Variable], activations: set) -> list[Layer]:
    """The layers reachable from ``roots`` (each function once), in topological order."""
    roots = [r for r in roots if r.parent is not None]
    if not roots:
        return []
    sink = F.sink(*roots) if len(roots) > 1 else roots[0]
    found: list[Any] = []
    sink.visit(found.append)
    return [
        Layer.from_function(f, activations) for f in found if f.info.type_name not in _IGNORED_TYPES
    ]


class _Tracer:
    def __init__(self, label_of: dict[int, str]) -> None:
        self.label_of = label_of
        self.activations: set = set()
        self.stack: list[tuple[list[nn.Variable], list[Choice]]] = []

    def rule(self, op: MixedOp, *inputs: Any) -> nn.Variable:
        roots, choices = self.stack[-1]
        roots.extend(v for v in inputs if isinstance(v, nn.Variable))
        candidates, shapes = [], []
        for cand in op.ops:
            fresh = [nn.Variable(v.shape) if isinstance(v, nn.Variable) else v for v in inputs]
            self.activations.update(v for v in fresh if isinstance(v, nn.Variable))
            self.stack.append(([], []))
            outs = _outputs(cand(*fresh))
            cand_roots, cand_choices = self.stack.pop()
            candidates.append(Segment(_collect(cand_roots + outs, self.activations), cand_choices))
            shapes.append(tuple(outs[0].shape))
        if len(set(shapes)) > 1:
            detail = ", ".join(f"{n}: {s}" for n, s in zip(op.names, shapes))
            raise ValueError(f"choice {self.label_of.get(id(op))!r}: candidates give different "
                             f"output shapes ({detail}); estimators cannot trace it")  # fmt: skip
        label = self.label_of.get(id(op), f"choice{len(choices)}")
        choices.append(Choice(label, op, list(op.names), candidates))
        placeholder = nn.Variable(shapes[0])
        self.activations.add(placeholder)
        return placeholder


def trace(model: Module, input_shape: Sequence[int], batch_size: int = 1) -> Segment:
    """Traces ``model`` on inputs ``(batch_size, *input_shape)`` in inference mode.

    Builds graphs only (no forward): cheap. The model's rules and training flag are restored.

    Returns:
        The root :class:`Segment` (fixed layers, and the choices with every candidate's layers).

    Raises:
        ValueError: the candidates of a choice give outputs of different shapes.
    """
    tracer = _Tracer(labels_of(model))
    x = nn.Variable((int(batch_size), *(int(s) for s in input_shape)))
    tracer.activations.add(x)
    tracer.stack.append(([], []))
    with _rules(model, tracer.rule):
        outs = _outputs(model(x))
    roots, choices = tracer.stack.pop()
    return Segment(_collect(roots + outs, tracer.activations), choices)


def inference_graph(
    model: Module,
    input_shape: Sequence[int],
    batch_size: int = 1,
    architecture: Architecture | None = None,
) -> tuple[nn.Variable, Any]:
    """Builds one architecture of ``model`` as an inference graph (``training=False``).

    Every choice runs only its candidate in ``architecture`` (every label of a supernet must
    be given; a fixed network needs none). The model's
    rules and training flag are restored after building.

    Returns:
        ``(x, outputs)``: the input variable ``(batch_size, *input_shape)`` and the model's
        outputs (an ``nn.Variable``, or a tuple with an auxiliary head).
    """
    label_of = labels_of(model)

    def rule(op: MixedOp, *inputs: Any) -> nn.Variable:
        op.active_index = _pick(label_of[id(op)], architecture)
        return op.ops[op.active_index](*inputs)

    x = nn.Variable((int(batch_size), *(int(s) for s in input_shape)))
    with _rules(model, rule):
        out = model(x)
    return x, out


#: Alias kept for readability at call sites (``build_network(model, shape)``).
build_network = inference_graph
