"""The optimizers of a run from its ``optimizer`` sections, with the documented defaults."""

from __future__ import annotations

from typing import Any, Mapping

from ..distributed import Communicator
from ..optimizer import Optimizer, initial_learning_rate, make_scheduler

__all__ = ["DEFAULT_SOLVERS", "make_optimizer"]

#: The solver of a section that the experiment file does not give.
DEFAULT_SOLVERS = {
    "train": {"name": "Momentum", "lr": 0.1},
    "warmup": {"name": "Momentum", "lr": 0.1},
    "valid": {"name": "Adam", "alpha": 0.001, "beta1": 0.5, "beta2": 0.999},
}


def make_optimizer(
    name: str,
    sections: Mapping[str, Any],
    params: Mapping[str, Any],
    max_iter: int,
    per_epoch: int,
    communicator: Communicator,
) -> Optimizer:
    """The optimizer ``name`` (``train``, ``warmup`` or ``valid``) over ``params``.

    ``warmup`` without a section warms up like ``train``; a missing section gets
    :data:`DEFAULT_SOLVERS`. Without ``lr_scheduler``, ``train`` and ``warmup`` follow cosine
    decay over their ``max_iter`` iterations and ``valid`` keeps a constant rate.
    """
    from ..config import OptimizerConfig

    section = sections.get(name)
    if section is None and name == "warmup":
        section = sections.get("train")  # warm up like the training proper
    if section is None:
        section = OptimizerConfig(solver=DEFAULT_SOLVERS[name])
    solver = dict(section.solver)
    solver_name = solver.pop("name")
    init_lr = initial_learning_rate(solver_name, solver)
    default = "cosine" if name in ("train", "warmup") else None
    scheduler = make_scheduler(
        section.lr_scheduler,
        init_lr=float(init_lr),
        max_iter=max(1, max_iter),
        iter_per_epoch=max(1, per_epoch),
        default=default,
        key=f"optimizer.{name}.lr_scheduler",
    )
    return Optimizer(
        params,
        solver_name,
        solver,
        grad_clip=section.grad_clip,
        weight_decay=section.weight_decay,
        lr_scheduler=scheduler,
        key=f"optimizer.{name}",
        communicator=communicator,
    )
