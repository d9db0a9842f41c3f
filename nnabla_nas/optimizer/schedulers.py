"""Learning-rate schedules, and the typed ``lr_scheduler`` section of each one.

A :class:`Scheduler` maps the iteration to the learning rate, with an optional linear warm-up
ramp. Each registered scheduler has a ``Config`` dataclass (a :class:`SchedulerConfig`: its
arguments and the warm-up keys, checked on construction); :func:`make_scheduler` builds the
scheduler of a section for one phase. The JSON section ``{"name": "step", "milestones": [30,
60]}`` is parsed into ``StepSchedulerConfig(milestones=[30, 60])`` by
:func:`nnabla_nas.config.parse_scheduler`.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import ConfigError
from ..parsing import GivenFields, check_range
from ..registry import Registry

__all__ = [
    "LR_SCHEDULERS",
    "ConstantScheduler",
    "ConstantSchedulerConfig",
    "CosineScheduler",
    "CosineSchedulerConfig",
    "ExponentialScheduler",
    "ExponentialSchedulerConfig",
    "PolynomialScheduler",
    "PolynomialSchedulerConfig",
    "Scheduler",
    "SchedulerConfig",
    "StepScheduler",
    "StepSchedulerConfig",
    "make_scheduler",
]

LR_SCHEDULERS = Registry("learning-rate scheduler")
"""``constant``, ``cosine``, ``step``, ``exponential``, ``polynomial`` (and ``<Name>Scheduler``)."""

_WARMUP_KEYS = ("warmup_iter", "warmup_epochs")


@dataclass(kw_only=True)
class SchedulerConfig(GivenFields):
    """An ``lr_scheduler`` section: the schedule's arguments plus an optional linear warm-up.

    Attributes:
        warmup_iter: length of the warm-up ramp in updates (see :class:`Scheduler`).
        warmup_epochs: the same in epochs (converted with the updates per epoch); give one of
            the two at most.

    Raises:
        ConfigError: on construction, at the argument, when a value is impossible.
    """

    #: The scheduler's registered name (``"cosine"``).
    name: ClassVar[str] = ""
    ARGUMENTS_OF: ClassVar[str] = "the learning-rate scheduler"

    warmup_iter: int | None = None
    warmup_epochs: int | None = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.ARGUMENTS_OF = f"learning-rate scheduler {cls.name!r}"

    def __post_init__(self) -> None:
        if self.warmup_iter is not None and self.warmup_epochs is not None:
            raise ConfigError("give warmup_epochs or warmup_iter, not both", "warmup_epochs")
        for key in _WARMUP_KEYS:
            value = getattr(self, key)
            if value is not None and value < 0:
                raise ConfigError(f"must be >= 0, got {value}", key=key)

    def arguments(self) -> dict[str, Any]:
        """The schedule's own arguments (every one, given or default; no warm-up key)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
                if f.name not in _WARMUP_KEYS}  # fmt: skip

    def warmup_iterations(self, iter_per_epoch: int) -> int:
        """The warm-up ramp's length in updates (0: none)."""
        if self.warmup_iter is not None:
            return self.warmup_iter
        return (self.warmup_epochs or 0) * iter_per_epoch

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., <the arguments given>}`` (the warm-up keys last)."""
        given = super().to_dict()
        own = {k: v for k, v in given.items() if k not in _WARMUP_KEYS}
        return {"name": self.name, **own, **{k: v for k, v in given.items() if k not in own}}


class Scheduler:
    """A learning-rate schedule: ``get_learning_rate(iteration) -> float``.

    Iterations count solver updates from 0. With ``warmup_iter = W > 0`` the first ``W``
    iterations follow a linear ramp up to the schedule's value at ``W``:
    ``lr(t) = schedule(W) * (t + 1) / (W + 1)`` for ``t < W`` (so the first update uses a small
    learning rate and the ramp joins the schedule without a jump); the schedule itself keeps
    counting from iteration 0, so its milestones and horizon are not shifted by the warm-up.

    The arguments are those of the scheduler's ``Config`` section, checked there.

    Args:
        init_lr: the base learning rate (the solver's).
        max_iter: the total number of iterations of the phase (epochs x iterations per epoch).
        iter_per_epoch: iterations (updates) per epoch, for arguments given in epochs.
        warmup_iter: length of the linear warm-up ramp in iterations (0 = none).
    """

    Config: ClassVar[type[SchedulerConfig]] = SchedulerConfig

    def __init__(
        self, init_lr: float, max_iter: int, iter_per_epoch: int = 1, warmup_iter: int = 0
    ) -> None:
        if max_iter < 1 or iter_per_epoch < 1:
            raise ValueError(f"max_iter ({max_iter}) and iter_per_epoch ({iter_per_epoch}) >= 1")
        self.init_lr = float(init_lr)
        self.max_iter = int(max_iter)
        self.iter_per_epoch = int(iter_per_epoch)
        self.warmup_iter = int(warmup_iter)

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


def _positive(value: float, key: str) -> None:
    check_range(value, key, low=0, low_open=True)


@dataclass(kw_only=True)
class ConstantSchedulerConfig(SchedulerConfig):
    """``constant``: no argument of its own."""

    name: ClassVar[str] = "constant"


@LR_SCHEDULERS.register("constant", "ConstantScheduler")
class ConstantScheduler(Scheduler):
    """``lr(t) = init_lr`` (after the optional warm-up)."""

    Config = ConstantSchedulerConfig

    def schedule(self, iteration: int) -> float:
        return self.init_lr


@dataclass(kw_only=True)
class CosineSchedulerConfig(SchedulerConfig):
    """``cosine``: ``eta_min``, the final learning rate (>= 0; 0.0)."""

    name: ClassVar[str] = "cosine"
    eta_min: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range(self.eta_min, "eta_min", low=0)


@LR_SCHEDULERS.register("cosine", "CosineScheduler")
class CosineScheduler(Scheduler):
    """Cosine decay over the phase (SGDR without restarts, as DARTS/ProxylessNAS):
    ``lr(t) = eta_min + (init_lr - eta_min) * (1 + cos(pi * t / max_iter)) / 2``.

    Args:
        eta_min: the final learning rate (reached at ``max_iter``, kept afterwards).
    """

    Config = CosineSchedulerConfig

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


@dataclass(kw_only=True)
class StepSchedulerConfig(SchedulerConfig):
    """``step``: ``milestones`` (required; strictly increasing epochs >= 1) and ``gamma``
    (> 0; 0.1)."""

    name: ClassVar[str] = "step"
    milestones: list[int]
    gamma: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        ms = self.milestones
        if any(m < 1 for m in ms) or any(b <= a for a, b in zip(ms, ms[1:])):
            raise ConfigError(f"must be strictly increasing epochs >= 1, got {ms}", "milestones")
        _positive(self.gamma, "gamma")


@LR_SCHEDULERS.register("step", "StepScheduler", "multistep")
class StepScheduler(Scheduler):
    """Multiplies the learning rate by ``gamma`` at each milestone, given in EPOCHS:
    ``lr(t) = init_lr * gamma ** #{m in milestones : t >= m * iter_per_epoch}``.

    Args:
        milestones: strictly increasing epoch numbers (>= 1).
        gamma: the factor applied at each milestone.
    """

    Config = StepSchedulerConfig

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
        super().__init__(init_lr, max_iter, iter_per_epoch, warmup_iter)
        self.milestones = [int(m) for m in milestones]
        self.gamma = float(gamma)

    def schedule(self, iteration: int) -> float:
        passed = sum(iteration >= m * self.iter_per_epoch for m in self.milestones)
        return self.init_lr * self.gamma**passed


@dataclass(kw_only=True)
class ExponentialSchedulerConfig(SchedulerConfig):
    """``exponential``: ``gamma`` (> 0; 0.97) and ``staircase`` (true)."""

    name: ClassVar[str] = "exponential"
    gamma: float = 0.97
    staircase: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self.gamma, "gamma")


@LR_SCHEDULERS.register("exponential", "ExponentialScheduler")
class ExponentialScheduler(Scheduler):
    """Multiplies the learning rate by ``gamma`` every epoch:
    ``lr(t) = init_lr * gamma ** (t // iter_per_epoch)``, or ``gamma ** (t / iter_per_epoch)``
    with ``staircase: false``.

    Args:
        gamma: the factor per epoch.
        staircase: decay once per epoch (true) or smoothly at every iteration (false).
    """

    Config = ExponentialSchedulerConfig

    def __init__(
        self,
        init_lr: float,
        max_iter: int,
        iter_per_epoch: int = 1,
        warmup_iter: int = 0,
        gamma: float = 0.97,
        staircase: bool = True,
    ) -> None:
        super().__init__(init_lr, max_iter, iter_per_epoch, warmup_iter)
        self.gamma = float(gamma)
        self.staircase = bool(staircase)

    def schedule(self, iteration: int) -> float:
        if self.staircase:
            return self.init_lr * self.gamma ** (iteration // self.iter_per_epoch)
        return self.init_lr * self.gamma ** (iteration / self.iter_per_epoch)


@dataclass(kw_only=True)
class PolynomialSchedulerConfig(SchedulerConfig):
    """``polynomial``: ``power`` (> 0; 1.0) and ``eta_min`` (>= 0; 0.0)."""

    name: ClassVar[str] = "polynomial"
    power: float = 1.0
    eta_min: float = 0.0

    def __post_init__(self) -> None:
        super().__post_init__()
        _positive(self.power, "power")
        check_range(self.eta_min, "eta_min", low=0)


@LR_SCHEDULERS.register("polynomial", "PolynomialScheduler", "poly")
class PolynomialScheduler(Scheduler):
    """Polynomial decay: ``lr(t) = eta_min + (init_lr - eta_min) * (1 - t / max_iter) ** power``
    (``power: 1`` is a linear decay).

    Args:
        power: the exponent (> 0).
        eta_min: the final learning rate.
    """

    Config = PolynomialSchedulerConfig

    def __init__(
        self,
        init_lr: float,
        max_iter: int,
        iter_per_epoch: int = 1,
        warmup_iter: int = 0,
        power: float = 1.0,
        eta_min: float = 0.0,
    ) -> None:
        super().__init__(init_lr, max_iter, iter_per_epoch, warmup_iter)
        self.power = float(power)
        self.eta_min = float(eta_min)

    def schedule(self, iteration: int) -> float:
        frac = 1.0 - min(iteration, self.max_iter) / self.max_iter
        return self.eta_min + (self.init_lr - self.eta_min) * frac**self.power


def make_scheduler(
    config: SchedulerConfig | None,
    init_lr: float,
    max_iter: int,
    iter_per_epoch: int,
    default: str | None = "cosine",
) -> Scheduler:
    """Builds the scheduler of an ``lr_scheduler`` section for one phase.

    Args:
        config: the parsed section (e.g. ``StepSchedulerConfig(milestones=[30, 60])``); None:
            the ``default`` scheduler with its default arguments.
        init_lr: the base learning rate (the solver's ``learning_rate``).
        max_iter: the number of iterations (updates) of the phase.
        iter_per_epoch: iterations per epoch (arguments in epochs are converted with it).
        default: the scheduler used when ``config`` is None (None: constant).
    """
    if config is None:
        config = LR_SCHEDULERS.get(default or "constant").Config()
    cls = LR_SCHEDULERS.get(config.name)
    warmup = config.warmup_iterations(iter_per_epoch)
    return cls(init_lr, max_iter, iter_per_epoch, warmup, **config.arguments())
