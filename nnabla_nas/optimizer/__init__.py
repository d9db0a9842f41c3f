"""Solvers by name, global-norm gradient clipping, weight decay and learning-rate schedules.

One optimizer section of the experiment file (``optimizer.train``, ``optimizer.valid`` or
``optimizer.warmup``), parsed once into a typed :class:`OptimizerConfig`,
becomes one :class:`Optimizer` (:func:`make_optimizer`)::

    {"grad_clip": 5.0, "weight_decay": 4e-5,
     "lr_scheduler": {"name": "step", "milestones": [30, 60], "gamma": 0.1},
     "solver": {"name": "Momentum", "lr": 0.1}}

- ``solver``: any solver of :mod:`nnabla.solvers` by name (case-insensitive, see :data:`SOLVERS`)
  and its arguments: a :class:`SolverConfig` generated from the solver's signature
  (``MomentumConfig(lr=0.1)``; :mod:`~nnabla_nas.optimizer.solvers`).
- ``grad_clip``: the gradients of all parameters are rescaled together when their global L2
  norm exceeds it (as ``torch.nn.utils.clip_grad_norm_``; nnabla's own ``clip_grad_by_norm``
  clips each parameter separately, which is not what DARTS/ProxylessNAS use).
- ``weight_decay``: ``solver.weight_decay(rate)`` before each update. For most solvers this adds
  ``rate * w`` to the gradient (L2 regularisation, after clipping, as PyTorch's
  ``weight_decay``); for the decoupled solvers (AdamW, SgdW, Lars, Lamb, Lion) it replaces the
  solver's own ``wd`` for that update.
- ``lr_scheduler``: a :class:`SchedulerConfig` (``CosineSchedulerConfig(eta_min=0.0)``;
  :mod:`~nnabla_nas.optimizer.schedulers`); its scheduler maps the iteration to the learning
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

from .factory import DEFAULT_SOLVERS, default_solver, make_optimizer, optimizer_section
from .optimizer import Optimizer, check_accumulation
from .schedulers import (
    LR_SCHEDULERS,
    ConstantScheduler,
    ConstantSchedulerConfig,
    CosineScheduler,
    CosineSchedulerConfig,
    ExponentialScheduler,
    ExponentialSchedulerConfig,
    PolynomialScheduler,
    PolynomialSchedulerConfig,
    Scheduler,
    SchedulerConfig,
    StepScheduler,
    StepSchedulerConfig,
    make_scheduler,
)
from .section import (
    DEFAULT_SCHEDULERS,
    OPTIMIZER_SECTIONS,
    OptimizerConfig,
    parse_optimizers,
    parse_scheduler,
    parse_solver,
)
from .solvers import (
    SOLVERS,
    SolverConfig,
    learning_rate_key,
    make_solver,
    solver_arguments,
    solver_config,
)

__all__ = [
    "DEFAULT_SCHEDULERS",
    "DEFAULT_SOLVERS",
    "LR_SCHEDULERS",
    "OPTIMIZER_SECTIONS",
    "SOLVERS",
    "ConstantScheduler",
    "ConstantSchedulerConfig",
    "CosineScheduler",
    "CosineSchedulerConfig",
    "ExponentialScheduler",
    "ExponentialSchedulerConfig",
    "Optimizer",
    "OptimizerConfig",
    "PolynomialScheduler",
    "PolynomialSchedulerConfig",
    "Scheduler",
    "SchedulerConfig",
    "SolverConfig",
    "StepScheduler",
    "StepSchedulerConfig",
    "check_accumulation",
    "default_solver",
    "learning_rate_key",
    "make_optimizer",
    "make_scheduler",
    "make_solver",
    "optimizer_section",
    "parse_optimizers",
    "parse_scheduler",
    "parse_solver",
    "solver_arguments",
    "solver_config",
]
