"""Solvers by name, global-norm gradient clipping, weight decay and learning-rate schedules.

One optimizer section of the experiment file (``optimizer.train``, ``optimizer.valid`` or
``optimizer.warmup``) becomes one :class:`Optimizer`::

    {"grad_clip": 5.0, "weight_decay": 4e-5,
     "lr_scheduler": {"name": "step", "milestones": [30, 60], "gamma": 0.1},
     "solver": {"name": "Momentum", "lr": 0.1}}

- ``solver``: any solver of :mod:`nnabla.solvers` by name (case-insensitive, see :data:`SOLVERS`)
  and its arguments, checked against the solver's signature (:func:`make_solver`).
- ``grad_clip``: the gradients of all parameters are rescaled together when their global L2
  norm exceeds it (as ``torch.nn.utils.clip_grad_norm_``; nnabla's own ``clip_grad_by_norm``
  clips each parameter separately, which is not what DARTS/ProxylessNAS use).
- ``weight_decay``: ``solver.weight_decay(rate)`` before each update. For most solvers this adds
  ``rate * w`` to the gradient (L2 regularisation, after clipping, as PyTorch's
  ``weight_decay``); for the decoupled solvers (AdamW, SgdW, Lars, Lamb, Lion) it replaces the
  solver's own ``wd`` for that update.
- ``lr_scheduler``: see :func:`make_scheduler`; a scheduler maps the iteration to the learning
  rate, with an optional linear warm-up ramp.

Gradient accumulation (``batch_size_train`` examples per update, ``mini_batch_train`` per
forward pass): nnabla *adds* each ``backward()`` into the parameters' ``.g`` (``clear_buffer=True``
frees intermediate buffers only, never the parameters' gradients). The runner therefore does::

    k = check_accumulation(batch, mini, "mini_batch_train")
    optimizer.zero_grad()
    for _ in range(k):
        ...  # fill the inputs with the next mini-batch
        loss.forward(clear_no_need_grad=True)
        loss.backward(grad=1.0 / k, clear_buffer=True)  # same as backward() of loss / k
    optimizer.update(iteration)

which gives the gradient of the mean loss over the whole batch (exactly, for networks without
batch statistics). The optimizer itself only needs ``zero_grad`` and ``update``.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import math
import typing
from collections import OrderedDict
from typing import Any

import nnabla as nn
import nnabla.functions as F
import nnabla.solvers as S
import numpy as np
from nnabla.solver import Solver, SolverState

from .distributed import Communicator, SingleProcess
from .errors import ConfigError
from .registry import Registry

__all__ = [
    "SOLVERS",
    "LR_SCHEDULERS",
    "Optimizer",
    "Scheduler",
    "ConstantScheduler",
    "CosineScheduler",
    "StepScheduler",
    "ExponentialScheduler",
    "PolynomialScheduler",
    "solver_arguments",
    "learning_rate_key",
    "initial_learning_rate",
    "make_solver",
    "make_scheduler",
    "check_scheduler",
    "check_optimizer_section",
    "check_accumulation",
]

logger = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Argument checking (shared by solvers and schedulers)
# ---------------------------------------------------------------------------------------------

_TYPE_NAMES = {float: "a number", int: "an integer", bool: "true or false", str: "a string"}


def _describe(tp: Any) -> str:
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        return f"a list of {_describe(item).split(' ', 1)[1]}s"
    return _TYPE_NAMES.get(tp, getattr(tp, "__name__", str(tp)))


def _convert(value: Any, tp: Any) -> Any:
    """``value`` as type ``tp`` (float, int, bool, str or list[...]); TypeError if it is not one."""
    if typing.get_origin(tp) is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, (list, tuple)):
            raise TypeError
        return [_convert(v, item) for v in value]
    if tp is bool:
        if not isinstance(value, (bool, np.bool_)):
            raise TypeError
        return bool(value)
    if isinstance(value, (bool, np.bool_)):
        raise TypeError
    if tp is int:
        if isinstance(value, (int, np.integer)):
            return int(value)
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise TypeError
    if tp is float:
        if not isinstance(value, (int, float, np.integer, np.floating)):
            raise TypeError
        return float(value)
    if not isinstance(value, tp):
        raise TypeError
    return value


def _check_args(
    args: dict[str, Any], types: dict[str, Any], required: set[str], key: str, what: str
) -> dict[str, Any]:
    """Checks ``args`` against the accepted names and types; returns the converted values.

    Raises:
        ConfigError: naming ``key.<argument>`` and the valid argument names.
    """
    if not isinstance(args, dict):
        raise ConfigError(f"expected an object with the arguments of {what}, got {args!r}", key)
    valid = ", ".join(types) or "(none)"
    out = {}
    for name, value in args.items():
        if name not in types:
            close = difflib.get_close_matches(str(name), list(types), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"unknown argument {name!r} of {what}; {hint}valid arguments: {valid}",
                key=f"{key}.{name}",
            )
        try:
            out[name] = _convert(value, types[name])
        except TypeError:
            raise ConfigError(
                f"expected {_describe(types[name])} for {what}, got {value!r}",
                key=f"{key}.{name}",
            ) from None
    for name in sorted(required - set(out)):
        raise ConfigError(
            f"missing required argument of {what} ({_describe(types[name])})", key=f"{key}.{name}"
        )
    return out


# ---------------------------------------------------------------------------------------------
# Solvers
# ---------------------------------------------------------------------------------------------

SOLVERS = Registry("solver")
"""Every solver of :mod:`nnabla.solvers` under its nnabla name (``Sgd``, ``Adam``, ...)."""

_LR_KEYS = ("lr", "alpha", "eta")  # the learning-rate argument, by nnabla's naming


def _register_solvers() -> None:
    for name, obj in vars(S).items():
        if name.startswith("_") or not inspect.isfunction(obj):
            continue
        params = inspect.signature(obj).parameters
        if not any(k in params for k in _LR_KEYS):
            continue  # helpers such as iteritems
        if any(p.default is inspect.Parameter.empty for p in params.values()):
            continue  # every nnabla solver has defaults for all its arguments
        SOLVERS.add(name, obj)


_register_solvers()


def solver_arguments(name: str, key: str = "solver.name") -> dict[str, Any]:
    """The arguments of solver ``name`` and their defaults, e.g. ``{"lr": 0.001, "momentum": 0.9}``.

    Raises:
        ConfigError: at ``key`` listing the valid solvers when ``name`` is unknown.
    """
    func = SOLVERS.get(name, key=key)
    return {k: p.default for k, p in inspect.signature(func).parameters.items()}


def learning_rate_key(name: str) -> str:
    """The argument holding the learning rate: ``lr`` (Sgd, Momentum, RMSprop...), ``alpha``
    (Adam, AdamW, Adamax, AMSGRAD, AdaBound...), ``eta`` (Lamb)."""
    params = solver_arguments(name)
    return next(k for k in _LR_KEYS if k in params)


def initial_learning_rate(name: str, args: dict[str, Any]) -> float:
    """The learning rate given in ``args`` for solver ``name``, else the solver's default."""
    lr_key = learning_rate_key(name)
    return float(args.get(lr_key, solver_arguments(name)[lr_key]))


def _solver_args(name: str, args: dict[str, Any], key: str) -> tuple[str, dict[str, Any]]:
    canonical = SOLVERS.canonical(name, key=f"{key}.name")
    args = dict(args)
    if "name" in args:  # tolerate the whole solver section being passed
        if not isinstance(args["name"], str) or args["name"].lower() != canonical.lower():
            raise ConfigError(f"conflicting solver names {name!r} and {args['name']!r}", key)
        del args["name"]
    defaults = solver_arguments(canonical)
    types = {k: type(v) for k, v in defaults.items()}
    out = _check_args(args, types, set(), key, f"solver {canonical}")
    lr_key = learning_rate_key(canonical)
    if lr_key in out and not (math.isfinite(out[lr_key]) and out[lr_key] >= 0):
        raise ConfigError(f"the learning rate must be >= 0, got {out[lr_key]}", f"{key}.{lr_key}")
    return canonical, out


def make_solver(name: str, args: dict[str, Any], key: str = "solver") -> Solver:
    """Builds the nnabla solver ``name`` with ``args`` (checked against its signature).

    Args:
        name: a solver of :data:`SOLVERS` (case-insensitive).
        args: the solver's arguments, e.g. ``{"lr": 0.1, "momentum": 0.9}``; a ``name`` entry equal
            to ``name`` is ignored, so the whole solver section of the config may be passed.
        key: the config path of the solver section, used in error messages.

    Raises:
        ConfigError: naming ``key.name`` (unknown solver, listing the valid ones) or
            ``key.<argument>`` (unknown argument or wrong type, listing the valid arguments).
    """
    canonical, kwargs = _solver_args(name, args, key)
    return SOLVERS.get(canonical)(**kwargs)


# ---------------------------------------------------------------------------------------------
# Learning-rate schedules
# ---------------------------------------------------------------------------------------------

LR_SCHEDULERS = Registry("learning-rate scheduler")
"""``constant``, ``cosine``, ``step``, ``exponential``, ``polynomial`` (and ``<Name>Scheduler``)."""

# Given by the runner, never by the user.
_RUNTIME_ARGS = ("init_lr", "max_iter", "iter_per_epoch")


class Scheduler:
    """A learning-rate schedule: ``get_learning_rate(iteration) -> float``.

    Iterations count solver updates from 0. With ``warmup_iter = W > 0`` the first ``W``
    iterations follow a linear ramp up to the schedule's value at ``W``:
    ``lr(t) = schedule(W) * (t + 1) / (W + 1)`` for ``t < W`` (so the first update uses a small
    learning rate and the ramp joins the schedule without a jump); the schedule itself keeps
    counting from iteration 0, so its milestones and horizon are not shifted by the warm-up.

    Args:
        init_lr: the base learning rate (the solver's).
        max_iter: the total number of iterations of the phase (epochs x iterations per epoch).
        iter_per_epoch: iterations (updates) per epoch, for arguments given in epochs.
        warmup_iter: length of the linear warm-up ramp in iterations (0 = none).
    """

    def __init__(
        self, init_lr: float, max_iter: int, iter_per_epoch: int = 1, warmup_iter: int = 0
    ) -> None:
        if max_iter < 1 or iter_per_epoch < 1:
            raise ValueError(f"max_iter ({max_iter}) and iter_per_epoch ({iter_per_epoch}) >= 1")
        self.init_lr = float(init_lr)
        self.max_iter = int(max_iter)
        self.iter_per_epoch = int(iter_per_epoch)
        self.warmup_iter = int(warmup_iter)
        for arg, problem in self.problems(warmup_iter=warmup_iter):
            raise ConfigError(problem, key=arg)

    @classmethod
    def problems(cls, **kwargs: Any) -> list[tuple[str, str]]:
        """Impossible argument values: ``(argument, message)`` pairs (none when all are valid)."""
        warmup = kwargs.get("warmup_iter", 0)
        return [("warmup_iter", f"must be >= 0, got {warmup}")] if warmup < 0 else []

    def schedule(self, iteration: int) -> float:
        """The learning rate at ``iteration`` without warm-up."""
        raise NotImplementedError

    def get_learning_rate(self, iteration: int) -> float:
        """The learning rate of the update number ``iteration`` (from 0)."""
        t = max(0, int(iteration))
        if t < self.warmup_iter:
            return self.schedule(self.warmup_iter) * (t + 1) / (self.warmup_iter + 1)
        return self.schedule(t)

    def __repr__(self) -> str:
        names = list(inspect.signature(type(self).__init__).parameters)[1:]
        args = ", ".join(f"{k}={getattr(self, k)!r}" for k in names)
        return f"{type(self).__name__}({args})"


@LR_SCHEDULERS.register("constant", "ConstantScheduler")
class ConstantScheduler(Scheduler):
    """``lr(t) = init_lr`` (after the optional warm-up)."""

    def schedule(self, iteration: int) -> float:
        return self.init_lr


@LR_SCHEDULERS.register("cosine", "CosineScheduler")
class CosineScheduler(Scheduler):
    """Cosine decay over the phase (SGDR without restarts, as DARTS/ProxylessNAS):
    ``lr(t) = eta_min + (init_lr - eta_min) * (1 + cos(pi * t / max_iter)) / 2``.

    Args:
        eta_min: the final learning rate (reached at ``max_iter``, kept afterwards).
    """

    def __init__(
        self,
        init_lr: float,
        max_iter: int,
        iter_per_epoch: int = 1,
        warmup_iter: int = 0,
        eta_min: float = 0.0,
    ) -> None:
        super().__init__(init_lr, max_iter, iter_per_epoch, warmup_iter)
        self.eta_min = float(eta_min)

    def schedule(self, iteration: int) -> float:
        t = min(iteration, self.max_iter)
        cos = 0.5 * (1.0 + math.cos(math.pi * t / self.max_iter))
        return self.eta_min + (self.init_lr - self.eta_min) * cos


@LR_SCHEDULERS.register("step", "StepScheduler", "multistep")
class StepScheduler(Scheduler):
    """Multiplies the learning rate by ``gamma`` at each milestone, given in EPOCHS:
    ``lr(t) = init_lr * gamma ** #{m in milestones : t >= m * iter_per_epoch}``.

    Args:
        milestones: strictly increasing epoch numbers (>= 1).
        gamma: the factor applied at each milestone.
    """

    def __init__(
        self,
        init_lr: float,
        max_iter: int,
        iter_per_epoch: int = 1,
        warmup_iter: int = 0,
        *,
        milestones: list[int],
        gamma: float = 0.1,
    ) -> None:
        for arg, problem in self.problems(milestones=milestones, gamma=gamma):
            raise ConfigError(problem, key=arg)
        super().__init__(init_lr, max_iter, iter_per_epoch, warmup_iter)
        self.milestones = [int(m) for m in milestones]
        self.gamma = float(gamma)

    @classmethod
    def problems(cls, **kwargs: Any) -> list[tuple[str, str]]:
        out = super().problems(**kwargs)
        ms = kwargs.get("milestones", [])
        if any(m < 1 for m in ms) or any(b <= a for a, b in zip(ms, ms[1:])):
            out.append(("milestones", f"must be strictly increasing epochs >= 1, got {ms}"))
        if kwargs.get("gamma", 0.1) <= 0:
            out.append(("gamma", f"must be > 0, got {kwargs['gamma']}"))
        return out

    def schedule(self, iteration: int) -> float:
        passed = sum(iteration >= m * self.iter_per_epoch for m in self.milestones)
        return self.init_lr * self.gamma**passed


@LR_SCHEDULERS.register("exponential", "ExponentialScheduler")
class ExponentialScheduler(Scheduler):
    """Multiplies the learning rate by ``gamma`` every epoch:
    ``lr(t) = init_lr * gamma ** (t // iter_per_epoch)``, or ``gamma ** (t / iter_per_epoch)``
    with ``staircase: false``.

    Args:
        gamma: the factor per epoch.
        staircase: decay once per epoch (true) or smoothly at every iteration (false).
    """

    def __init__(
        self,
        init_lr: float,
        max_iter: int,
        iter_per_epoch: int = 1,
        warmup_iter: int = 0,
        gamma: float = 0.97,
        staircase: bool = True,
    ) -> None:
        for arg, problem in self.problems(gamma=gamma):
            raise ConfigError(problem, key=arg)
        super().__init__(init_lr, max_iter, iter_per_epoch, warmup_iter)
        self.gamma = float(gamma)
        self.staircase = bool(staircase)

    @classmethod
    def problems(cls, **kwargs: Any) -> list[tuple[str, str]]:
        out = super().problems(**kwargs)
        if kwargs.get("gamma", 0.97) <= 0:
            out.append(("gamma", f"must be > 0, got {kwargs['gamma']}"))
        return out

    def schedule(self, iteration: int) -> float:
        if self.staircase:
            return self.init_lr * self.gamma ** (iteration // self.iter_per_epoch)
        return self.init_lr * self.gamma ** (iteration / self.iter_per_epoch)


@LR_SCHEDULERS.register("polynomial", "PolynomialScheduler", "poly")
class PolynomialScheduler(Scheduler):
    """Polynomial decay: ``lr(t) = eta_min + (init_lr - eta_min) * (1 - t / max_iter) ** power``
    (``power: 1`` is a linear decay).

    Args:
        power: the exponent (> 0).
        eta_min: the final learning rate.
    """

    def __init__(
        self,
        init_lr: float,
        max_iter: int,
        iter_per_epoch: int = 1,
        warmup_iter: int = 0,
        power: float = 1.0,
        eta_min: float = 0.0,
    ) -> None:
        for arg, problem in self.problems(power=power):
            raise ConfigError(problem, key=arg)
        super().__init__(init_lr, max_iter, iter_per_epoch, warmup_iter)
        self.power = float(power)
        self.eta_min = float(eta_min)

    @classmethod
    def problems(cls, **kwargs: Any) -> list[tuple[str, str]]:
        out = super().problems(**kwargs)
        if kwargs.get("power", 1.0) <= 0:
            out.append(("power", f"must be > 0, got {kwargs['power']}"))
        return out

    def schedule(self, iteration: int) -> float:
        frac = 1.0 - min(iteration, self.max_iter) / self.max_iter
        return self.eta_min + (self.init_lr - self.eta_min) * frac**self.power


def _scheduler_args(
    cfg: dict[str, Any] | None, default: str | None, key: str
) -> tuple[type[Scheduler], dict[str, Any]]:
    """The scheduler class and its checked keyword arguments (``warmup_epochs`` kept as is)."""
    if cfg is None:
        cfg = {}
    if not isinstance(cfg, dict):
        raise ConfigError(f"expected an object such as {{'name': 'cosine'}}, got {cfg!r}", key)
    cfg = dict(cfg)
    name = cfg.pop("name", default if default is not None else "constant")
    cls = LR_SCHEDULERS.get(name, key=f"{key}.name")
    hints = typing.get_type_hints(cls.__init__)
    params = inspect.signature(cls.__init__).parameters
    user = [k for k in list(params)[1:] if k not in _RUNTIME_ARGS]
    types = {k: hints[k] for k in user}
    types["warmup_epochs"] = int
    required = {k for k in user if params[k].default is inspect.Parameter.empty}
    what = f"learning-rate scheduler {LR_SCHEDULERS.canonical(name)!r}"
    kwargs = _check_args(cfg, types, required, key, what)
    if "warmup_epochs" in kwargs and "warmup_iter" in kwargs:
        raise ConfigError("give warmup_epochs or warmup_iter, not both", f"{key}.warmup_epochs")
    checked = dict(kwargs)
    if "warmup_epochs" in checked:
        checked["warmup_iter"] = checked.pop("warmup_epochs")  # same sign constraint
    for arg, problem in cls.problems(**checked):
        arg = "warmup_epochs" if arg == "warmup_iter" and "warmup_epochs" in kwargs else arg
        raise ConfigError(problem, key=f"{key}.{arg}")
    return cls, kwargs


def check_scheduler(
    cfg: dict[str, Any] | None, default: str | None = "cosine", key: str = "lr_scheduler"
) -> None:
    """Checks a scheduler section without building it (unknown name/argument, wrong type/value).

    Raises:
        ConfigError: naming ``key.name`` or ``key.<argument>``.
    """
    _scheduler_args(cfg, default, key)


def make_scheduler(
    cfg: dict[str, Any] | None,
    init_lr: float,
    max_iter: int,
    iter_per_epoch: int,
    default: str | None = "cosine",
    key: str = "lr_scheduler",
) -> Scheduler:
    """Builds a learning-rate scheduler from its config section.

    Args:
        cfg: e.g. ``{"name": "step", "milestones": [30, 60], "gamma": 0.1, "warmup_epochs": 1}``.
            ``name`` is one of :data:`LR_SCHEDULERS` (default ``default``); the other keys are the
            scheduler's arguments, plus ``warmup_iter`` or ``warmup_epochs`` (a linear warm-up
            ramp, see :class:`Scheduler`). ``None`` means ``{}``.
        init_lr: the base learning rate (see :func:`initial_learning_rate`).
        max_iter: the number of iterations (updates) of the phase.
        iter_per_epoch: iterations per epoch (arguments in epochs are converted with it).
        default: the scheduler used when ``cfg`` names none (``None``: constant).
        key: the config path of the section, used in error messages.

    Raises:
        ConfigError: naming ``key.name`` or ``key.<argument>`` and the valid choices.
    """
    cls, kwargs = _scheduler_args(cfg, default, key)
    if "warmup_epochs" in kwargs:
        kwargs["warmup_iter"] = kwargs.pop("warmup_epochs") * iter_per_epoch
    return cls(init_lr, max_iter, iter_per_epoch, **kwargs)


# ---------------------------------------------------------------------------------------------
# Config checks
# ---------------------------------------------------------------------------------------------


def check_optimizer_section(
    solver: dict[str, Any],
    lr_scheduler: dict[str, Any] | None = None,
    weight_decay: float | None = None,
) -> None:
    """Checks an optimizer section's ``solver`` and ``lr_scheduler`` (relative keys).

    Raises:
        ConfigError: at ``solver.name``, ``solver.<argument>``, ``lr_scheduler.<argument>`` or
            ``weight_decay`` (when the solver's own ``wd`` is also given).
    """
    if not isinstance(solver, dict):
        raise ConfigError(
            f"expected an object such as {{'name': 'Sgd', 'lr': 0.1}}, got {solver!r}", "solver"
        )
    if "name" not in solver:
        raise ConfigError(
            f"missing required key; valid solvers: {', '.join(SOLVERS.names())}", "solver.name"
        )
    _, args = _solver_args(solver["name"], solver, "solver")
    if weight_decay is not None and "wd" in args:
        raise ConfigError(
            "give either weight_decay or the solver's own wd, not both", key="weight_decay"
        )
    check_scheduler(lr_scheduler, key="lr_scheduler")


def check_accumulation(batch: int, mini: int, key: str) -> int:
    """The number of mini-batches accumulated per update, ``batch // mini``.

    Raises:
        ConfigError: at ``key`` when ``mini`` is not a positive divisor of ``batch``.
    """
    if not isinstance(mini, int) or isinstance(mini, bool) or mini <= 0:
        raise ConfigError(f"must be a positive integer, got {mini!r}", key)
    if not isinstance(batch, int) or isinstance(batch, bool) or batch <= 0:
        raise ConfigError(f"the batch size must be a positive integer, got {batch!r}", key)
    if mini > batch or batch % mini:
        divisors = [d for d in range(1, batch + 1) if batch % d == 0]
        shown = ", ".join(map(str, divisors[:12])) + (", ..." if len(divisors) > 12 else "")
        raise ConfigError(
            f"the mini-batch ({mini}) must divide the batch size ({batch}); valid: {shown}", key
        )
    return batch // mini


# ---------------------------------------------------------------------------------------------
# Optimizer
# ---------------------------------------------------------------------------------------------


class _GlobalNorm:
    """The global L2 norm of the parameters' gradients, computed on the device.

    A small graph ``sqrt(sum_p sum(g_p ** 2))`` over variables that share the parameters' grad
    arrays is built once and rebuilt only if a parameter's grad array is replaced; one forward
    then costs one reduction per parameter and a single scalar transfer.
    """

    def __init__(self, params: list[nn.Variable]) -> None:
        self._params = params
        self._grads: list[nn.NdArray] = []
        self._total: nn.Variable | None = None

    def _build(self) -> None:
        self._grads = [p.grad for p in self._params]
        squares = []
        with nn.auto_forward(False):
            for p, g in zip(self._params, self._grads):
                v = nn.Variable(p.shape)
                v.data = g  # shares the gradient's memory
                squares.append(F.sum(F.pow_scalar(v, 2.0)))
            self._total = squares[0] if len(squares) == 1 else F.add_n(*squares)

    def __call__(self) -> float:
        if not self._params:
            return 0.0
        if self._total is None or not all(p.grad == g for p, g in zip(self._params, self._grads)):
            self._build()
        self._total.forward(clear_buffer=True)
        return math.sqrt(float(self._total.d))


class Optimizer:
    """A named nnabla solver with global-norm clipping, weight decay and a learning-rate schedule.

    Args:
        params: the parameters to update (path -> Variable); those with ``need_grad=False`` at
            construction are skipped.
        solver: the solver's name (see :data:`SOLVERS`).
        solver_args: its arguments, e.g. ``{"lr": 0.1, "momentum": 0.9}``.
        grad_clip: if given, gradients are scaled by ``grad_clip / norm`` when their global L2 norm
            exceeds it.
        weight_decay: if given, ``solver.weight_decay(weight_decay)`` before each update.
        lr_scheduler: sets the learning rate before each update, from the iteration.
        key: the config path of this section (e.g. ``optimizer.train``), used in error messages.
        communicator: data-parallel processes (:mod:`nnabla_nas.distributed`): the gradients
            are averaged over them first thing in :meth:`update` (default: one process).

    Raises:
        ConfigError: on an unknown solver or argument, a non-positive ``grad_clip``, a negative
            ``weight_decay``, or both ``weight_decay`` and the solver's ``wd``.
    """

    def __init__(
        self,
        params: OrderedDict[str, nn.Variable] | dict[str, nn.Variable],
        solver: str,
        solver_args: dict[str, Any],
        grad_clip: float | None = None,
        weight_decay: float | None = None,
        lr_scheduler: Scheduler | None = None,
        key: str = "optimizer",
        communicator: Communicator | None = None,
    ) -> None:
        if grad_clip is not None and not grad_clip > 0:
            raise ConfigError(f"must be > 0 (or omitted), got {grad_clip}", f"{key}.grad_clip")
        if weight_decay is not None and not weight_decay >= 0:
            raise ConfigError(
                f"must be >= 0 (or omitted), got {weight_decay}", f"{key}.weight_decay"
            )
        self.name, args = _solver_args(solver, solver_args, f"{key}.solver")
        if weight_decay is not None and "wd" in args:
            raise ConfigError(
                f"give either {key}.weight_decay or {key}.solver.wd, not both",
                f"{key}.weight_decay",
            )
        self.solver: Solver = SOLVERS.get(self.name)(**args)
        self.params = OrderedDict((k, v) for k, v in params.items() if v.need_grad)
        self.solver.set_parameters(self.params)
        self.grad_clip = grad_clip
        self.weight_decay = weight_decay
        self.lr_scheduler = lr_scheduler
        self.key = key
        self.communicator = communicator if communicator is not None else SingleProcess()
        self.iteration = 0
        self.grad_norm: float | None = None
        self._norm = _GlobalNorm(list(self.params.values()))

    def zero_grad(self) -> None:
        """Sets the gradients of the parameters to zero (call before accumulating)."""
        self.solver.zero_grad()

    def get_learning_rate(self) -> float:
        """The solver's current learning rate."""
        return float(self.solver.learning_rate())

    def set_learning_rate(self, lr: float) -> None:
        """Sets the solver's learning rate (overridden at the next update by a scheduler)."""
        self.solver.set_learning_rate(float(lr))

    def scale_grad(self, factor: float) -> None:
        """Multiplies every gradient by ``factor`` (e.g. ``1/k`` after summing ``k`` losses)."""
        self.solver.scale_grad(float(factor))

    def compute_grad_norm(self) -> float:
        """The global L2 norm of the current gradients."""
        return self._norm()

    def update(self, iteration: int | None = None) -> None:
        """One solver step on the accumulated gradients.

        In order: the gradients averaged over the data-parallel processes (several only), the
        learning rate from the scheduler at ``iteration`` (default: the number of updates done so
        far), the global norm (kept in :attr:`grad_norm`, before clipping), clipping, weight
        decay, ``solver.update()``.
        """
        if self.communicator.size > 1:
            self.communicator.all_reduce_grads(self.params.values())
        t = self.iteration if iteration is None else int(iteration)
        if self.lr_scheduler is not None:
            self.set_learning_rate(self.lr_scheduler.get_learning_rate(t))
        norm = self._norm()
        self.grad_norm = norm
        if self.grad_clip is not None:
            if not math.isfinite(norm):
                logger.warning("%s: gradient norm is %s at iteration %d", self.key, norm, t)
            elif norm > self.grad_clip:
                self.solver.scale_grad(self.grad_clip / norm)
        if self.weight_decay is not None:
            self.solver.weight_decay(self.weight_decay)
        self.solver.update()
        self.iteration = t + 1

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume exactly; leaves are numpy arrays, ints, floats and str.

        ``{"solver": name, "iteration": int, "learning_rate": float,
        "states": {param: {"t": int, "pstate": {name: np.ndarray}}}}``
        """
        states = {}
        for name, st in self.solver.get_states().items():
            pstate = {k: np.array(v.d, copy=True) for k, v in st.pstate.items()}
            states[name] = {"t": int(st.t), "pstate": pstate}
        return {
            "solver": self.name,
            "iteration": int(self.iteration),
            "learning_rate": self.get_learning_rate(),
            "states": states,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores a :meth:`state_dict` (same solver, same parameters and shapes).

        Raises:
            ConfigError: when the state belongs to another solver or other parameters.
        """
        if SOLVERS.canonical(str(state.get("solver"))) != self.name:
            raise ConfigError(
                f"the saved state is for solver {state.get('solver')!r}, not {self.name!r}",
                self.key,
            )
        states = state["states"]
        if set(states) != set(self.params):
            diff = sorted(set(states) ^ set(self.params))[:5]
            raise ConfigError(f"the saved state has other parameters (e.g. {diff})", self.key)
        current = self.solver.get_states()
        restored = OrderedDict()
        for name, saved in states.items():
            st = SolverState()
            st.t = int(saved["t"])
            pstate = {}
            for k, arr in saved["pstate"].items():
                arr = np.asarray(arr)
                if k not in current[name].pstate or arr.shape != current[name].pstate[k].shape:
                    raise ConfigError(
                        f"the saved state of {name!r} ({k}, shape {arr.shape}) does not match",
                        self.key,
                    )
                pstate[k] = nn.Variable.from_numpy_array(arr)
            st.pstate = pstate
            restored[name] = st
        self.solver.set_states(restored)
        self.set_learning_rate(float(state["learning_rate"]))
        self.iteration = int(state["iteration"])

    def __repr__(self) -> str:
        return (
            f"Optimizer({self.name}, lr={self.get_learning_rate():g}, params={len(self.params)}, "
            f"grad_clip={self.grad_clip}, weight_decay={self.weight_decay}, "
            f"lr_scheduler={self.lr_scheduler!r})"
        )
