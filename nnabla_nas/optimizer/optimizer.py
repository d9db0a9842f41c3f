"""The :class:`Optimizer`: a solver with global-norm clipping, weight decay, a learning-rate
schedule and the data-parallel all-reduce; and the gradient-accumulation count."""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from typing import Any, Callable

import nnabla as nn
import nnabla.functions as F
import numpy as np
from nnabla.solver import Solver, SolverState

from ..distributed import Communicator, SingleProcess
from ..errors import ConfigError
from .schedulers import Scheduler
from .solvers import SOLVERS, SolverConfig, make_solver

__all__ = ["Optimizer", "check_accumulation"]

logger = logging.getLogger(__name__)


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
        # A bounded search (whatever the sizes: the divisors are never enumerated).
        top = min(mini, batch)
        near = next((d for d in range(top, max(top - 1000, 0), -1) if batch % d == 0), None)
        near = near or math.gcd(batch, mini)
        below = batch - batch % mini
        multiples = f"{below} or {below + mini}" if below else f"{mini}"
        raise ConfigError(
            f"the mini-batch ({mini}) must divide the batch size ({batch}); e.g. {near} "
            f"divides it, or make the batch size a multiple of {mini} ({multiples})",
            key,
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

    The values come checked from their section (:class:`~nnabla_nas.config.OptimizerConfig`);
    :func:`~nnabla_nas.optimizer.make_optimizer` builds one from a section.

    Args:
        params: the parameters to update (path -> Variable); those with ``need_grad=False`` at
            construction are skipped.
        solver: the solver and its arguments, e.g. ``MomentumConfig(lr=0.1)`` (see
            :class:`~nnabla_nas.optimizer.SolverConfig`).
        grad_clip: if given (> 0), gradients are scaled by ``grad_clip / norm`` when their
            global L2 norm exceeds it.
        weight_decay: if given (>= 0), ``solver.weight_decay(weight_decay)`` before each update.
        lr_scheduler: sets the learning rate before each update, from the iteration.
        key: the config path of this section (e.g. ``optimizer.train``), used in messages.
        communicator: data-parallel processes (:mod:`nnabla_nas.distributed`): the gradients
            are averaged over them first thing in :meth:`update` (default: one process).
    """

    def __init__(
        self,
        params: OrderedDict[str, nn.Variable] | dict[str, nn.Variable],
        solver: SolverConfig,
        grad_clip: float | None = None,
        weight_decay: float | None = None,
        lr_scheduler: Scheduler | None = None,
        key: str = "optimizer",
        communicator: Communicator | None = None,
    ) -> None:
        self.name = solver.name
        self.config = solver
        self.solver: Solver = make_solver(solver)
        self.params = OrderedDict((k, v) for k, v in params.items() if v.need_grad)
        self.solver.set_parameters(self.params)
        self.grad_clip = grad_clip
        self.weight_decay = weight_decay
        self.lr_scheduler = lr_scheduler
        self.key = key
        self.communicator = communicator if communicator is not None else SingleProcess()
        self.iteration = 0
        self.grad_norm: float | None = None
        #: Called first thing in :meth:`update`, before any parameter changes (the loop waits
        #: there for a checkpoint being written in the background).
        self.before_update: Callable[[], None] | None = None
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
        decay, ``solver.update()``. :attr:`before_update` is called before all of them.
        """
        if self.before_update is not None:
            self.before_update()
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
