"""``MixedOp``: the choice point of a search space, and the one place that tells declared
architecture parameters from weights (:func:`arch_parameters`, :func:`net_parameters`).

A ``MixedOp`` declares a choice: its candidates, their names and the label of the decision it
makes (:func:`choice_groups`). It holds no architecture state of its own: logits, a controller
and sampling belong to the searcher that drives it, through its ``rule``: ``rule(mixed_op,
*inputs) -> nn.Variable`` decides which candidates run (e.g. :func:`use_architecture`, or
ProxylessNAS' binary gates). Without a rule the default rule of ``mode`` runs, over uniform
weights: :func:`full_rule` (the mean of every candidate), :func:`sample_rule` (one random
candidate, from ``op.rng``), :func:`max_rule` (the first candidate). A space ported from the
original NNabla NAS may declare an ``alpha`` Parameter: the default rules then use its softmax,
and searchers take it as the decision's initial logits (several MixedOps given the same ``alpha``
are one decision).
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence

import nnabla as nn
import nnabla.functions as F
import numpy as np

from nnabla_nas.errors import ConfigError
from nnabla_nas.module.container import ModuleList
from nnabla_nas.module.module import Module
from nnabla_nas.module.parameter import Parameter

logger = logging.getLogger(__name__)

Rule = Callable[..., nn.Variable]


def softmax(alpha: np.ndarray) -> np.ndarray:
    """The numpy softmax of the flattened ``alpha`` (float64, shape ``(n,)``)."""
    a = np.asarray(alpha, dtype=np.float64).reshape(-1)
    e = np.exp(a - a.max())
    return e / e.sum()


def mixture(op: MixedOp, logits: nn.Variable | None, *inputs: Any) -> nn.Variable:
    """Runs every candidate: ``sum_i softmax(logits)_i * op_i(*inputs)`` (DARTS).

    Args:
        op: the choice.
        logits: an ``nn.Variable`` of ``n`` elements (any shape), or None for uniform weights.
            The output is differentiable with respect to it and every candidate's weights.

    Sets ``op.active_index = None``. All candidates must give outputs of the same shape.
    """
    outs = [module(*inputs) for module in op.ops]
    shapes = {tuple(o.shape) for o in outs}
    if len(shapes) > 1:
        detail = ", ".join(f"{n}: {tuple(o.shape)}" for n, o in zip(op.names, outs))
        raise ValueError(f"MixedOp candidates give different output shapes ({detail})")
    op.active_index = None
    n = len(outs)
    shape = tuple(outs[0].shape)
    if logits is None:
        weights = nn.Variable.from_numpy_array(np.full((1, n), 1.0 / n, dtype=np.float32))
    else:
        if tuple(logits.shape) != (n, 1, 1, 1, 1):
            logits = F.reshape(logits, (n, 1, 1, 1, 1))
        weights = F.reshape(F.softmax(logits, axis=0), (1, n))
    # One (1, n) x (n, size) matrix product: much cheaper in nnabla than a broadcast multiply
    # of the stacked outputs followed by a sum (forward and backward).
    stacked = F.reshape(F.stack(*outs, axis=0), (n, int(np.prod(shape))))
    return F.reshape(F.affine(weights, stacked), shape)


def full_rule(op: MixedOp, *inputs: Any) -> nn.Variable:
    """The ``full`` default: :func:`mixture` over the declared ``alpha`` (uniform without)."""
    return mixture(op, op.alpha, *inputs)


def sample_rule(op: MixedOp, *inputs: Any) -> nn.Variable:
    """The ``sample`` default: one candidate drawn with ``op.rng`` from
    :meth:`MixedOp.probabilities`; only it runs. Sets ``op.active_index``."""
    op.active_index = int(op.rng.choice(len(op.ops), p=op.probabilities()))
    return op.ops[op.active_index](*inputs)


def max_rule(op: MixedOp, *inputs: Any) -> nn.Variable:
    """The ``max`` default: the candidate of largest declared ``alpha`` (the first on ties, the
    first without ``alpha``); sets ``active_index``."""
    op.active_index = int(np.argmax(op.probabilities()))
    return op.ops[op.active_index](*inputs)


DEFAULT_RULES: dict[str, Rule] = {"full": full_rule, "sample": sample_rule, "max": max_rule}


class MixedOp(Module):
    """A choice among candidate modules.

    Attributes:
        ops: the candidates (a :class:`ModuleList`, paths ``ops/0``, ``ops/1``, ...).
        alpha: the declared architecture :class:`Parameter` (shape ``(n, 1, 1, 1, 1)``, path
            ``alpha``), or None (the searcher owns the logits).
        rng: the ``numpy.random.RandomState`` of the default ``sample`` rule.
        names: one label per candidate.
        active_index: the index of the candidate the last forward ran (None after ``full``).
        rule: None (the default rule of ``mode``) or a callable ``rule(op, *inputs)`` that
            replaces the forward. It is a plain attribute, never registered as a module.

    Args:
        operators: the candidate modules (at least one).
        mode: ``'full'``, ``'sample'`` or ``'max'``: the default rule, used when no searcher
            drives the choice (the ``mode`` key of the seed's experiment files; searchers install
            their own rules whatever it is). Changeable later, e.g. ``net.apply(mode='max')``.
        alpha: None (the usual case: a space only declares the choice), or a ``Parameter`` of
            shape ``(n, 1, 1, 1, 1)`` as spaces of the original NNabla NAS declare it: the
            decision's initial logits; passing the same one to several MixedOps makes them one
            decision (it is then one parameter, listed once).
        rng: the default ``sample`` rule's generator; None uses a fresh, unseeded RandomState.
        names: candidate labels (default: the candidates' class names).
        label: the label of the decision this choice makes. MixedOps given the same label are
            one decision (e.g. the same edge of every normal cell): searchers give them one
            distribution and one sampled candidate. None: the MixedOp's module path.
    """

    def __init__(
        self,
        operators: Iterable[Module],
        mode: str = "full",
        alpha: Parameter | None = None,
        rng: np.random.RandomState | None = None,
        names: Sequence[str] | None = None,
        label: str | None = None,
    ) -> None:
        self.ops = ModuleList(operators)
        n = len(self.ops)
        if n == 0:
            raise ValueError("MixedOp needs at least one candidate")
        if alpha is not None and (
            not isinstance(alpha, Parameter) or tuple(alpha.shape) != (n, 1, 1, 1, 1)
        ):
            raise ValueError(
                f"MixedOp alpha must be a Parameter of shape {(n, 1, 1, 1, 1)}, got "
                f"{type(alpha).__name__} {tuple(getattr(alpha, 'shape', ()))}"
            )
        self.alpha = alpha
        self.mode = mode
        self.rng = rng if rng is not None else np.random.RandomState()
        self.names = list(names) if names is not None else [type(m).__name__ for m in self.ops]
        if len(self.names) != n:
            raise ValueError(f"MixedOp has {n} candidates but {len(self.names)} names")
        self.active_index: int | None = None
        self.rule = None
        if label is not None and (not isinstance(label, str) or not label):
            raise ValueError(f"MixedOp label must be a non-empty string, got {label!r}")
        self.label = label

    @property
    def mode(self) -> str:
        """``'full'``, ``'sample'`` or ``'max'``."""
        return self.__dict__["_mode"]

    @mode.setter
    def mode(self, mode: str) -> None:
        if mode not in DEFAULT_RULES:
            valid = list(DEFAULT_RULES)
            raise ConfigError(f"unknown MixedOp mode {mode!r}; valid: {valid}", "mode")
        self.__dict__["_mode"] = mode

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "rule":
            if value is not None and not callable(value):
                kind = type(value).__name__
                raise TypeError(f"MixedOp.rule must be None or a callable, got {kind}")
            self._unregister(name)
            object.__setattr__(self, name, value)
            return
        super().__setattr__(name, value)

    def probabilities(self) -> np.ndarray:
        """The default rules' probabilities: ``softmax(alpha)`` of a declared ``alpha``, else
        uniform; float64, shape ``(n,)``."""
        if self.alpha is None:
            return np.full(len(self.ops), 1.0 / len(self.ops))
        return softmax(self.alpha.d)

    def call(self, *inputs: Any) -> nn.Variable:
        rule = self.rule if self.rule is not None else DEFAULT_RULES[self.mode]
        return rule(self, *inputs)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, names={self.names}"


def choice_groups(module: Module) -> OrderedDict[str, list[MixedOp]]:
    """The decisions under ``module``: ``label -> [MixedOp, ...]`` in module order.

    A MixedOp's label is its ``label`` when given; else, when it declares an ``alpha``, the
    path of that parameter without a trailing ``/alpha`` (MixedOps sharing one ``alpha`` are one
    decision); else its module path. MixedOps with the same label are listed together, under
    the position of the first one.
    """
    alpha_paths = {id(p): k.removesuffix("/alpha") for k, p in module.get_parameters().items()}
    groups: OrderedDict[str, list[MixedOp]] = OrderedDict()
    for path, m in module.get_modules():
        if isinstance(m, MixedOp):
            if m.label is not None:
                label = m.label
            elif m.alpha is not None:
                label = alpha_paths[id(m.alpha)]
            else:
                label = path
            groups.setdefault(label, []).append(m)
    return groups


@contextlib.contextmanager
def use_architecture(module: Module, architecture: Mapping[str, int]) -> Iterator[None]:
    """Graphs built inside the block run one candidate per decision: ``architecture[label]``.

    Every MixedOp under ``module`` gets a rule for the duration (the previous rules come back
    after); a label missing from ``architecture`` is a KeyError naming it.
    """
    groups = choice_groups(module)
    missing = [label for label in groups if label not in architecture]
    if missing:
        raise KeyError(f"the architecture gives no candidate for {missing[:5]}")
    index = {id(op): int(architecture[label]) for label, ops in groups.items() for op in ops}

    def rule(op: MixedOp, *inputs: Any) -> nn.Variable:
        op.active_index = index[id(op)]
        return op.ops[op.active_index](*inputs)

    with use_rule(module, rule):
        yield


@contextlib.contextmanager
def use_rule(module: Module, rule: Rule) -> Iterator[None]:
    """Installs ``rule`` on every MixedOp under ``module`` for the duration; the previous rules
    come back after. The rule decides the forward at graph-building time, so every graph built
    inside the block runs the paths ``rule`` picks."""
    previous = [(m, m.rule) for _, m in module.get_modules() if isinstance(m, MixedOp)]
    for op, _ in previous:
        op.rule = rule
    try:
        yield
    finally:
        for op, old in previous:
            op.rule = old


def arch_parameters(module: Module, grad_only: bool = False) -> OrderedDict[str, Parameter]:
    """The declared ``alpha`` of every :class:`MixedOp` under ``module``, once each, by path.

    Paths and order are those of ``module.get_parameters()`` (a shared alpha appears once, at
    its first path).

    Args:
        module: the root module.
        grad_only: keep only the parameters with ``need_grad=True``.
    """
    ids = {
        id(m.alpha)
        for _, m in module.get_modules()
        if isinstance(m, MixedOp) and m.alpha is not None
    }
    params = module.get_parameters(grad_only=grad_only)
    return OrderedDict((k, p) for k, p in params.items() if id(p) in ids)


def net_parameters(module: Module, grad_only: bool = False) -> OrderedDict[str, Parameter]:
    """Every Parameter under ``module`` that is not an architecture parameter (the weights).

    Args:
        module: the root module.
        grad_only: keep only the parameters with ``need_grad=True``.
    """
    ids = {
        id(m.alpha)
        for _, m in module.get_modules()
        if isinstance(m, MixedOp) and m.alpha is not None
    }
    params = module.get_parameters(grad_only=grad_only)
    return OrderedDict((k, p) for k, p in params.items() if id(p) not in ids)
