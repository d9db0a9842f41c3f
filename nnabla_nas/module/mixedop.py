"""``MixedOp``: the choice point of a search space, and the one place that tells architecture
parameters from weights (:func:`arch_parameters`, :func:`net_parameters`).

A ``MixedOp`` only holds the candidates and their architecture parameter ``alpha``. How it
runs is its ``rule``: ``rule(mixed_op, *inputs) -> nn.Variable``. With ``rule=None`` the
default rule of ``mode`` runs (:func:`full_rule`, :func:`sample_rule`, :func:`max_rule`); a
searcher installs its own rule (e.g. ProxylessNAS binary gates) to own sampling and the
architecture gradient, and may call the default rules from it.
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


def full_rule(op: MixedOp, *inputs: Any) -> nn.Variable:
    """Runs every candidate: ``sum_i softmax(alpha)_i * op_i(*inputs)`` (DARTS).

    Differentiable with respect to ``alpha`` and every candidate's weights. Sets
    ``op.active_index = None``. All candidates must give outputs of the same shape.
    """
    outs = [module(*inputs) for module in op.ops]
    shapes = {tuple(o.shape) for o in outs}
    if len(shapes) > 1:
        detail = ", ".join(f"{n}: {tuple(o.shape)}" for n, o in zip(op.names, outs))
        raise ValueError(f"MixedOp candidates give different output shapes ({detail})")
    op.active_index = None
    n = len(outs)
    shape = tuple(outs[0].shape)
    weights = F.reshape(F.softmax(op.alpha, axis=0), (1, n))
    # One (1, n) x (n, size) matrix product: much cheaper in nnabla than a broadcast multiply
    # of the stacked outputs followed by a sum (forward and backward).
    stacked = F.reshape(F.stack(*outs, axis=0), (n, int(np.prod(shape))))
    return F.reshape(F.affine(weights, stacked), shape)


def sample_rule(op: MixedOp, *inputs: Any) -> nn.Variable:
    """Draws one index from ``softmax(alpha)`` with ``op.rng``; only that candidate runs.

    Sets ``op.active_index``. The output does not depend on ``alpha`` (the architecture
    gradient is the searcher's business).
    """
    op.active_index = int(op.rng.choice(len(op.ops), p=op.probabilities()))
    return op.ops[op.active_index](*inputs)


def max_rule(op: MixedOp, *inputs: Any) -> nn.Variable:
    """Runs only the candidate of largest ``alpha`` (the first on ties); sets ``active_index``."""
    op.active_index = int(np.argmax(op.alpha.d.reshape(-1)))
    return op.ops[op.active_index](*inputs)


DEFAULT_RULES: dict[str, Rule] = {"full": full_rule, "sample": sample_rule, "max": max_rule}


class MixedOp(Module):
    """A choice among candidate modules.

    Attributes:
        ops: the candidates (a :class:`ModuleList`, paths ``ops/0``, ``ops/1``, ...).
        alpha: the architecture :class:`Parameter`, shape ``(n, 1, 1, 1, 1)``, path ``alpha``.
        rng: the ``numpy.random.RandomState`` of the ``sample`` rule.
        names: one label per candidate.
        active_index: the index of the candidate the last forward ran (None after ``full``).
        rule: None (the default rule of ``mode``) or a callable ``rule(op, *inputs)`` that
            replaces the forward. It is a plain attribute, never registered as a module.

    Args:
        operators: the candidate modules (at least one).
        mode: ``'full'``, ``'sample'`` or ``'max'``: selects the default rule (the ``mode``
            property can be changed later, e.g. ``net.apply(mode='max')``).
        alpha: None creates a zero-initialised ``alpha`` (uniform probabilities); a given
            ``Parameter`` of shape ``(n, 1, 1, 1, 1)`` is used as it is, so passing the same
            one to several MixedOps shares it (it is then one parameter, listed once).
        rng: None uses a fresh, unseeded RandomState; pass a seeded one for reproducible
            sampling.
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
        if alpha is None:
            alpha = Parameter((n, 1, 1, 1, 1))
        elif not isinstance(alpha, Parameter) or tuple(alpha.shape) != (n, 1, 1, 1, 1):
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
        """``softmax(alpha)`` as a float64 numpy array of shape ``(n,)``."""
        return softmax(self.alpha.d)

    def call(self, *inputs: Any) -> nn.Variable:
        rule = self.rule if self.rule is not None else DEFAULT_RULES[self.mode]
        return rule(self, *inputs)

    def extra_repr(self) -> str:
        return f"mode={self.mode!r}, names={self.names}"


def choice_groups(module: Module) -> OrderedDict[str, list[MixedOp]]:
    """The decisions under ``module``: ``label -> [MixedOp, ...]`` in module order.

    A MixedOp's label is its ``label`` when given, else its module path; MixedOps with the same
    label (a shared decision) are listed together, under the position of the first one.
    """
    groups: OrderedDict[str, list[MixedOp]] = OrderedDict()
    for path, m in module.get_modules():
        if isinstance(m, MixedOp):
            groups.setdefault(m.label if m.label is not None else path, []).append(m)
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

    previous = [(op, op.rule) for ops in groups.values() for op in ops]
    for op, _ in previous:
        op.rule = rule
    try:
        yield
    finally:
        for op, old in previous:
            op.rule = old


def arch_parameters(module: Module, grad_only: bool = False) -> OrderedDict[str, Parameter]:
    """The ``alpha`` of every :class:`MixedOp` under ``module``, once each, by parameter path.

    Paths and order are those of ``module.get_parameters()`` (a shared alpha appears once, at
    its first path).

    Args:
        module: the root module.
        grad_only: keep only the parameters with ``need_grad=True``.
    """
    ids = {id(m.alpha) for _, m in module.get_modules() if isinstance(m, MixedOp)}
    params = module.get_parameters(grad_only=grad_only)
    return OrderedDict((k, p) for k, p in params.items() if id(p) in ids)


def net_parameters(module: Module, grad_only: bool = False) -> OrderedDict[str, Parameter]:
    """Every Parameter under ``module`` that is not an architecture parameter (the weights).

    Args:
        module: the root module.
        grad_only: keep only the parameters with ``need_grad=True``.
    """
    ids = {id(m.alpha) for _, m in module.get_modules() if isinstance(m, MixedOp)}
    params = module.get_parameters(grad_only=grad_only)
    return OrderedDict((k, p) for k, p in params.items() if id(p) not in ids)
