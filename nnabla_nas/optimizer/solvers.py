"""Every nnabla solver by name, and the typed section of its arguments.

:data:`SOLVERS` registers the solvers of :mod:`nnabla.solvers` under their nnabla names. For each
one a dataclass of its arguments is generated from the solver's signature (same names, types and
defaults as nnabla's): ``MomentumConfig(lr=0.001, momentum=0.9)``, ``AdamConfig(alpha=0.001,
beta1=0.9, beta2=0.999, eps=1e-08)``... (:func:`solver_config` finds it by name). The JSON
section ``{"name": "Momentum", "lr": 0.1}`` is parsed into ``MomentumConfig(lr=0.1)`` by
:func:`nnabla_nas.config.parse_solver`; the object checks its arguments on construction against
the valid ranges of :data:`ARGUMENT_RANGES` (by argument name, the same meaning in every
nnabla solver).
"""

from __future__ import annotations

import dataclasses
import inspect
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import nnabla.solvers as S
from nnabla.solver import Solver

from ..errors import ConfigError
from ..parsing import GivenFields, check_range
from ..registry import Registry

__all__ = [
    "ARGUMENT_RANGES",
    "SOLVERS",
    "SolverConfig",
    "learning_rate_key",
    "make_solver",
    "solver_arguments",
    "solver_config",
]

SOLVERS = Registry("solver")
"""Every solver of :mod:`nnabla.solvers` under its nnabla name (``Sgd``, ``Adam``, ...)."""

_LR_KEYS = ("lr", "alpha", "eta")  # the learning-rate argument, by nnabla's naming

#: The valid range of each numeric solver argument, by name: ``(low, high, low_open,
#: high_open)`` (None: unbounded). Decay rates of moving averages lie in [0, 1) (at 1 the
#: average never moves, and Adam's bias correction divides by zero); denominators' ``eps`` and
#: AdaBound's ``gamma`` are > 0; learning rates, weight decays and coefficients are >= 0.
ARGUMENT_RANGES: dict[str, tuple[float | None, float | None, bool, bool]] = {
    "lr": (0.0, None, False, False),
    "alpha": (0.0, None, False, False),
    "eta": (0.0, None, False, False),
    "momentum": (0.0, 1.0, False, True),
    "beta1": (0.0, 1.0, False, True),
    "beta2": (0.0, 1.0, False, True),
    "decay": (0.0, 1.0, False, True),
    "eps": (0.0, None, True, False),
    "wd": (0.0, None, False, False),
    "coefficient": (0.0, None, False, False),
    "final_lr": (0.0, None, False, False),
    "gamma": (0.0, None, True, False),
    "gamma_l": (0.0, None, False, False),
    "gamma_u": (0.0, None, False, False),
}


@dataclass
class SolverConfig(GivenFields):
    """The arguments of one nnabla solver (base of the generated ``<Name>Config`` classes).

    Each subclass has one field per argument of ``nnabla.solvers.<name>``, with nnabla's
    default. Only the arguments given are written back (:meth:`to_dict`): the solver's own
    defaults are nnabla's, and a decoupled solver's ``wd`` next to the section's
    ``weight_decay`` would be refused as given twice.

    Raises:
        ConfigError: on construction, at the argument's key, when a number is not finite or
            outside its range in :data:`ARGUMENT_RANGES` (``beta2`` in [0, 1), ...).
    """

    #: The solver's registered name (``"Momentum"``).
    name: ClassVar[str] = ""
    #: The argument holding the learning rate (``lr``, ``alpha`` or ``eta``).
    lr_key: ClassVar[str] = ""
    #: Names the section in messages about unknown keys.
    ARGUMENTS_OF: ClassVar[str] = "the solver"

    def __post_init__(self) -> None:
        if not self.name:
            raise TypeError("SolverConfig is the base: use solver_config(name) for a solver's")
        lr = getattr(self, self.lr_key)
        if not (math.isfinite(lr) and lr >= 0):
            raise ConfigError(f"the learning rate must be >= 0, got {lr}", key=self.lr_key)
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            low, high, low_open, high_open = ARGUMENT_RANGES.get(f.name, (None,) * 2 + (False,) * 2)
            check_range(value, f.name, low, high, low_open, high_open)
        if getattr(self, "gamma_l", 0.0) > getattr(self, "gamma_u", math.inf):
            raise ConfigError(
                f"must be >= gamma_l ({self.gamma_l}), got {self.gamma_u}", key="gamma_u"
            )

    @property
    def learning_rate(self) -> float:
        """The learning rate (the value of :attr:`lr_key`)."""
        return float(getattr(self, self.lr_key))

    def arguments(self) -> dict[str, Any]:
        """Every argument of the solver, given or default: ``{"lr": 0.1, "momentum": 0.9}``."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    def to_dict(self) -> dict[str, Any]:
        """``{"name": ..., <the arguments given>}``, the JSON section."""
        return {"name": self.name, **super().to_dict()}


_CONFIGS: dict[str, type[SolverConfig]] = {}


def _config_class(name: str, func: Any) -> type[SolverConfig]:
    params = inspect.signature(func).parameters
    fields = [
        (k, type(p.default) if p.default is not None else Any, dataclasses.field(default=p.default))
        for k, p in params.items()
    ]
    lr_key = next(k for k in _LR_KEYS if k in params)
    cls = dataclasses.make_dataclass(
        f"{name}Config",
        fields,
        bases=(SolverConfig,),
        namespace={"name": name, "lr_key": lr_key, "ARGUMENTS_OF": f"solver {name}"},
    )
    cls.__module__ = __name__  # importable by name (pickling, documentation)
    defaults = ", ".join(f"``{k}={p.default!r}``" for k, p in params.items())
    cls.__doc__ = f"The arguments of ``nnabla.solvers.{name}`` (learning rate ``{lr_key}``): "
    cls.__doc__ += defaults + " (valid ranges: :data:`ARGUMENT_RANGES`)."
    return cls


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
        cls = _CONFIGS[name] = _config_class(name, obj)
        globals()[cls.__name__] = cls


_register_solvers()


def solver_config(name: str, key: str | None = "solver.name") -> type[SolverConfig]:
    """The arguments dataclass of solver ``name`` (case-insensitive): ``MomentumConfig``.

    Raises:
        ConfigError: at ``key``, listing the valid solvers, when ``name`` is unknown.
    """
    return _CONFIGS[SOLVERS.canonical(name, key=key)]


def solver_arguments(name: str, key: str = "solver.name") -> dict[str, Any]:
    """The arguments of solver ``name`` and their defaults, e.g. ``{"lr": 0.001, "momentum": 0.9}``.

    Raises:
        ConfigError: at ``key`` listing the valid solvers when ``name`` is unknown.
    """
    return solver_config(name, key)().arguments()


def learning_rate_key(name: str) -> str:
    """The argument holding the learning rate: ``lr`` (Sgd, Momentum, RMSprop...), ``alpha``
    (Adam, AdamW, Adamax, AMSGRAD, AdaBound...), ``eta`` (Lamb)."""
    return solver_config(name).lr_key


def make_solver(config: SolverConfig) -> Solver:
    """The nnabla solver of a parsed solver section, with every argument of ``config``."""
    return SOLVERS.get(config.name)(**config.arguments())
