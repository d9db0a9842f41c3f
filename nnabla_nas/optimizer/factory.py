"""The optimizer of one phase (``train``, ``warmup`` or ``valid``) from its typed section, with
the defaults of an experiment that leaves the section (or its schedule) out."""

from __future__ import annotations

from typing import Mapping

import nnabla as nn

from ..distributed import Communicator
from .optimizer import Optimizer
from .schedulers import make_scheduler
from .section import DEFAULT_SCHEDULERS, OPTIMIZER_SECTIONS, OptimizerConfig
from .solvers import SolverConfig, solver_config

__all__ = ["DEFAULT_SOLVERS", "default_solver", "make_optimizer", "optimizer_section"]

#: The solver of a section the experiment leaves out (the seed's example values).
DEFAULT_SOLVERS: dict[str, tuple[str, dict[str, float]]] = {
    "train": ("Momentum", {"lr": 0.1}),
    "warmup": ("Momentum", {"lr": 0.1}),
    "valid": ("Adam", {"alpha": 0.001, "beta1": 0.5, "beta2": 0.999}),
}


def _check_section_name(name: str) -> None:
    if name not in OPTIMIZER_SECTIONS:
        raise ValueError(f"unknown optimizer section {name!r}; valid: {OPTIMIZER_SECTIONS}")


def default_solver(name: str) -> SolverConfig:
    """The solver of section ``name`` when the experiment gives none (:data:`DEFAULT_SOLVERS`)."""
    _check_section_name(name)
    solver, arguments = DEFAULT_SOLVERS[name]
    return solver_config(solver)(**arguments)


def optimizer_section(name: str, sections: Mapping[str, OptimizerConfig]) -> OptimizerConfig | None:
    """The section that configures phase ``name``: its own, else (``warmup``) ``train``'s, so
    that the warm-up epochs train the weights as the training proper does; None: defaults."""
    _check_section_name(name)
    section = sections.get(name)
    if section is None and name == "warmup":
        section = sections.get("train")
    return section


def make_optimizer(
    name: str,
    section: OptimizerConfig | None,
    params: Mapping[str, nn.Variable],
    max_iter: int,
    iter_per_epoch: int,
    communicator: Communicator | None = None,
) -> Optimizer:
    """The optimizer of phase ``name`` over ``params``.

    Args:
        name: ``train``, ``warmup`` or ``valid`` (sets the defaults and the messages' key
            ``optimizer.<name>``).
        section: the phase's parsed section (see :func:`optimizer_section`); None: the default
            solver (:data:`DEFAULT_SOLVERS`) without clipping or weight decay.
        params: the parameters it updates.
        max_iter: the updates of the phase (its epochs times ``iter_per_epoch``; at least 1 is
            used).
        iter_per_epoch: updates per epoch (at least 1 is used).
        communicator: the data-parallel processes (default: one).

    Returns:
        The optimizer, its schedule from ``section.lr_scheduler`` or the phase's default
        (:data:`DEFAULT_SCHEDULERS`), starting from the solver's learning rate.
    """
    _check_section_name(name)
    if section is None:
        solver, grad_clip, weight_decay, schedule = default_solver(name), None, None, None
    else:
        solver, grad_clip = section.solver, section.grad_clip
        weight_decay, schedule = section.weight_decay, section.lr_scheduler
    scheduler = make_scheduler(
        schedule,
        init_lr=solver.learning_rate,
        max_iter=max(1, max_iter),
        iter_per_epoch=max(1, iter_per_epoch),
        default=DEFAULT_SCHEDULERS[name],
    )
    return Optimizer(
        params,
        solver,
        grad_clip=grad_clip,
        weight_decay=weight_decay,
        lr_scheduler=scheduler,
        key=f"optimizer.{name}",
        communicator=communicator,
    )
