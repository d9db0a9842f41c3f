"""The typed ``optimizer`` sections of the experiment file, parsed with the one value parser.

``{"solver": {"name": "Momentum", "lr": 0.1}, "lr_scheduler": {"name": "cosine"},
"grad_clip": 5.0}`` becomes ``OptimizerConfig(solver=MomentumConfig(lr=0.1),
lr_scheduler=CosineSchedulerConfig(), grad_clip=5.0)``. The classes live next to the optimizer
they configure (as a space's ``Config`` next to the space); :mod:`nnabla_nas.config` exposes
them with the rest of the experiment file.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError
from ..parsing import check_range, parse_dataclass
from .schedulers import LR_SCHEDULERS, SchedulerConfig
from .solvers import SOLVERS, SolverConfig, solver_config

__all__ = [
    "DEFAULT_SCHEDULERS",
    "OPTIMIZER_SECTIONS",
    "OptimizerConfig",
    "parse_optimizers",
    "parse_scheduler",
    "parse_solver",
]

#: The optimizer sections: ``train`` (weights), ``valid`` (architecture), ``warmup`` (weights
#: during the warm-up epochs of a search).
OPTIMIZER_SECTIONS = ("train", "valid", "warmup")

#: The schedule of a section without ``lr_scheduler`` (or whose ``lr_scheduler`` names none):
#: the weights follow cosine decay over their epochs, the architecture a constant rate.
DEFAULT_SCHEDULERS = {"train": "cosine", "warmup": "cosine", "valid": "constant"}


def parse_solver(data: Any, key: str = "solver") -> SolverConfig:
    """Parses a ``solver`` section, ``{"name": "Momentum", "lr": 0.1}``, into the solver's
    arguments dataclass (``MomentumConfig(lr=0.1)``; see :mod:`nnabla_nas.optimizer.solvers`).

    Raises:
        ConfigError: at ``key.name`` (missing or unknown solver, listing the valid ones) or
            ``key.<argument>`` (unknown argument, listing the valid ones; wrong type; a
            negative learning rate).
    """
    if isinstance(data, SolverConfig):
        return data
    if not isinstance(data, dict):
        raise ConfigError(
            f"expected an object such as {{'name': 'Sgd', 'lr': 0.1}}, got {data!r}", key
        )
    if "name" not in data:
        raise ConfigError(
            f"missing required key; valid solvers: {', '.join(SOLVERS.names())}", f"{key}.name"
        )
    cls = solver_config(data["name"], key=f"{key}.name")
    return parse_dataclass(cls, {k: v for k, v in data.items() if k != "name"}, key)


def parse_scheduler(
    data: Any, key: str = "lr_scheduler", default: str = "cosine"
) -> SchedulerConfig | None:
    """Parses an ``lr_scheduler`` section, ``{"name": "step", "milestones": [30]}``, into the
    scheduler's dataclass (``StepSchedulerConfig(milestones=[30])``; see
    :mod:`nnabla_nas.optimizer.schedulers`); without ``name``, scheduler ``default``.

    Raises:
        ConfigError: at ``key.name`` (unknown scheduler, listing the valid ones) or
            ``key.<argument>`` (unknown, missing or impossible argument).
    """
    if data is None or isinstance(data, SchedulerConfig):
        return data
    if not isinstance(data, dict):
        raise ConfigError(f"expected an object such as {{'name': 'cosine'}}, got {data!r}", key)
    cls = LR_SCHEDULERS.get(data.get("name", default), key=f"{key}.name").Config
    return parse_dataclass(cls, {k: v for k, v in data.items() if k != "name"}, key)


@dataclass
class OptimizerConfig:
    """One optimizer section (``train``, ``valid`` or ``warmup``), checked on construction.

    Attributes:
        solver: the solver and its arguments (a ``{"name": ..., ...}`` object is parsed with
            :func:`parse_solver`, in Python as from JSON).
        grad_clip: the global gradient norm clipped to (finite, > 0), or None.
        weight_decay: L2 weight decay (finite, >= 0), or None; not with the solver's own ``wd``.
        lr_scheduler: the schedule (an object is parsed with :func:`parse_scheduler`), or
            None: the phase's default (cosine for the weights, constant for the architecture).

    Raises:
        ConfigError: at the relative key (``grad_clip``, ``solver.lr``, ...).
    """

    solver: SolverConfig = field(metadata={"parse": parse_solver})
    grad_clip: float | None = None
    weight_decay: float | None = None
    lr_scheduler: SchedulerConfig | None = field(default=None, metadata={"parse": parse_scheduler})

    def __post_init__(self) -> None:
        if isinstance(self.solver, Mapping):
            self.solver = parse_solver(dict(self.solver))
        if isinstance(self.lr_scheduler, Mapping):
            self.lr_scheduler = parse_scheduler(dict(self.lr_scheduler))
        if not isinstance(self.solver, SolverConfig):
            raise ConfigError(f"expected a solver section, got {self.solver!r}", key="solver")
        if self.grad_clip is not None:
            check_range(self.grad_clip, "grad_clip", low=0, low_open=True)
        if self.weight_decay is not None:
            check_range(self.weight_decay, "weight_decay", low=0)
        if self.weight_decay is not None and "wd" in self.solver.given:
            raise ConfigError(
                "give either weight_decay or the solver's own wd, not both", key="weight_decay"
            )


def parse_optimizers(data: Any, path: str = "optimizer") -> dict[str, OptimizerConfig]:
    """Parses the ``optimizer`` block: its sections by name; an ``lr_scheduler`` without
    ``name`` is the section's default schedule (``DEFAULT_SCHEDULERS``)."""
    if not isinstance(data, dict):
        raise ConfigError(f"expected an object, got {data!r}", key=path)
    out = {}
    for name, section in data.items():
        if name not in OPTIMIZER_SECTIONS:
            close = difflib.get_close_matches(str(name), OPTIMIZER_SECTIONS, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise ConfigError(
                f"unknown optimizer section {name!r}; {hint}valid sections: "
                f"{', '.join(OPTIMIZER_SECTIONS)}",
                key=f"{path}.{name}",
            )
        schedule = section.get("lr_scheduler") if isinstance(section, dict) else None
        if isinstance(schedule, dict) and "name" not in schedule:
            section = {**section, "lr_scheduler": {"name": DEFAULT_SCHEDULERS[name], **schedule}}
        out[name] = parse_dataclass(OptimizerConfig, section, f"{path}.{name}")
    return out
