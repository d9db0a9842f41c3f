"""DARTS (Liu, Simonyan and Yang, "DARTS: Differentiable Architecture Search", ICLR 2019) as a
searcher.

The whole supernet runs in ``full`` mode: every choice (a :class:`~nnabla_nas.module.MixedOp`;
its decision's logits ``alpha``, owned by the searcher: :class:`~.logits.ArchLogits`) outputs
``sum_i softmax(alpha)_i op_i(x)`` (:func:`~nnabla_nas.module.mixture`, installed on every choice
by the searcher whatever the space's ``mode``), so the loss is differentiable in the weights
``w`` and in ``alpha``.

Weight step
    ``grad_w L_train(w, alpha)`` on the weight batch, accumulated over its mini-batches, then the
    phase's optimizer (``train`` or ``warmup``). The logits are frozen (``need_grad=False``)
    during this step: they get no gradient and are not in that optimizer.

Architecture step (after the weight step of the same iteration, on a batch of the architecture
split; the ``valid`` optimizer)
    - ``order: 1``: ``grad_alpha L_val(w, alpha)`` (weights frozen: no weight gradient).
    - ``order: 2`` (unrolled): the virtual step ``w' = w - mu m - xi (grad_w L_train(w, alpha)
      + wd w)`` on the weight batch of the current iteration (the loop hands it over),
      then ``grad_alpha L_val(w', alpha) - xi (grad_alpha L_train(w+, alpha) - grad_alpha
      L_train(w-, alpha)) / (2 eps)`` with ``w+- = w +- eps grad_w' L_val(w', alpha)`` and
      ``eps = epsilon / ||grad_w' L_val(w', alpha)||`` (global L2 norm over the weights).
      ``xi`` is ``unrolled_lr`` or else the current learning rate of the ``train`` optimizer;
      ``wd`` is its ``weight_decay`` (0 when unset); ``mu`` and ``m`` are the momentum
      coefficient and buffer of a ``Momentum`` solver (nnabla's buffer holds the last
      displacement, learning rate included, so with ``xi`` equal to the rate ``w'`` is exactly
      the solver's next step; the reference implementation's ``w - xi (mu buf + g + wd w)`` with
      PyTorch's rate-free buffer is the same step at a constant rate). Other solvers get the
      plain SGD form ``mu m = 0`` (a warning says so). Gradient clipping is not applied to the
      virtual step (as in the reference). All weights are copied back exactly afterwards.

Order of the steps: the runner calls the architecture step after the weight step of the same
iteration (the reference implementation runs it before), so the virtual step starts from the
weights, and the momentum buffer, that this iteration's weight update produced.

Batch normalisation: every forward of both steps runs in training mode (batch statistics of
each mini-batch), as in the paper. The architecture step restores every running statistic its
forwards touched (the validation forward of both orders, the virtual step and the two extra
forwards of order 2): after an architecture step the network's weights and running statistics
are bit-for-bit what the weight step left, so the running statistics follow the weight split
only. (The reference implementation lets these forwards update them.)

Export: as every searcher, ``arch.h5`` holds the logits and the argmax of every choice; the
DARTS discretisation (the two strongest non-``none`` incoming edges per node, ``arch.json``) is
the ``darts`` space's business (:meth:`~nnabla_nas.contrib.model.Model.export_files`).

Not implemented: the state of adaptive solvers (Adam, RMSprop, ...) in the virtual step (plain
SGD form), gradient clipping in the virtual step, and decoupled weight decay (a solver's own
``wd``) in it: only ``optimizer.train.weight_decay`` enters, as L2.
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterable, Iterator

import nnabla as nn
import numpy as np

from ...errors import ConfigError, NnasError
from ...module import MixedOp, mixture
from ..algorithm import RunContext
from ..steps import Batch
from .base import SoftmaxSearcher
from .export import ArchExport

__all__ = ["DartsSearcher", "DartsSearcherConfig"]

logger = logging.getLogger(__name__)

ORDERS = (1, 2)
#: Graph cache key: one static full-mode graph per input shape serves every forward.
GRAPH_KEY = "darts"

#: Arrays by parameter path.
Arrays = dict[str, np.ndarray]


@dataclass
class DartsSearcherConfig:
    """The ``searcher`` section of the experiment file for ``DartsSearcher``.

    Attributes:
        order: 1 (first-order approximation) or 2 (unrolled second-order gradient).
        unrolled_lr: ``xi``, the learning rate of the virtual step (order 2); None uses the
            current learning rate of the ``train`` optimizer, as the paper.
        epsilon: the finite-difference step is ``epsilon / ||grad_w' L_val||`` (order 2).
        logit_init_std: the logits start as ``logit_init_std * randn`` (the paper: 1e-3), drawn
            from the searcher's generator; 0 starts them at zero.
    """

    order: int = 1
    unrolled_lr: float | None = None
    epsilon: float = 0.01
    logit_init_std: float = 1e-3

    def check(self) -> None:
        """Raises ConfigError (naming the key) on an invalid value."""
        if self.order not in ORDERS:
            valid = ", ".join(map(str, ORDERS))
            raise ConfigError(f"unknown order {self.order}; valid values: {valid}", key="order")
        if self.unrolled_lr is not None and not (
            math.isfinite(self.unrolled_lr) and self.unrolled_lr >= 0
        ):
            raise ConfigError(
                f"must be >= 0 (or null: the train learning rate), got {self.unrolled_lr}",
                key="unrolled_lr",
            )
        if not (math.isfinite(self.epsilon) and self.epsilon > 0):
            raise ConfigError(f"must be > 0, got {self.epsilon}", key="epsilon")
        if not (math.isfinite(self.logit_init_std) and self.logit_init_std >= 0):
            raise ConfigError(f"must be >= 0, got {self.logit_init_std}", key="logit_init_std")


def _copy(params: OrderedDict[str, nn.Variable], grad: bool = False) -> OrderedDict:
    return OrderedDict((k, np.array(p.g if grad else p.d, copy=True)) for k, p in params.items())


def _assign(params: OrderedDict[str, nn.Variable], values: dict[str, np.ndarray]) -> None:
    for k, p in params.items():
        p.d = values[k]


def _zero_grad(params: Iterable[nn.Variable]) -> None:
    for p in params:
        p.grad.zero()


class DartsSearcher(SoftmaxSearcher):
    """DARTS: full-mode weight steps and first- or second-order architecture gradients.

    See the module docstring for the algorithm; the options are :class:`DartsSearcherConfig`.
    """

    Config = DartsSearcherConfig

    def init_logits(self) -> Any:
        """``logit_init_std * randn(n)`` per decision, from the searcher's generator."""
        std = self.options.logit_init_std
        return lambda n: std * self.rng.randn(n)

    def setup(self, ctx: RunContext) -> Any:
        params = super().setup(ctx)
        net = self.model.get_net_parameters()
        #: The trained weights ``w`` (the train optimizer's parameters).
        self.weights = OrderedDict((k, p) for k, p in net.items() if p.need_grad)
        #: Non-trainable state of the network (batch-norm running statistics).
        self.stats = OrderedDict((k, p) for k, p in net.items() if not p.need_grad)
        #: The trained architecture logits (the valid optimizer's parameters).
        self.arch = OrderedDict((k, p) for k, p in params.items() if p.need_grad)
        solver = ctx.optimizers["train"].name
        if self.options.order == 2 and solver not in ("Sgd", "Momentum"):
            logger.warning(
                "optimizer.train uses %s: the second-order virtual step is the plain SGD step "
                "w - xi (g + wd w) (the solver's own state is not included)",
                solver,
            )
        return params

    # ------------------------------------------------------------------ helpers
    def mixture_rule(self, op: MixedOp, *inputs: Any) -> Any:
        """Every candidate, weighted by ``softmax`` of the decision's logits."""
        return mixture(op, self.logits.of(op), *inputs)

    def _gradients(self, batch: Batch) -> dict[str, float]:
        """Zeroes, then accumulates, the gradients of the mean loss of ``batch`` (full mode)."""
        _zero_grad(self.weights.values())
        _zero_grad(self.arch.values())
        # recompute: the candidates' intermediate buffers are recomputed in the backward, not
        # kept from the forward (the full supernet's activations set the peak memory)
        with self.use_rule(self.mixture_rule), nn.recompute(True):
            return self.ctx.steps.accumulate(batch, cache=True, key=GRAPH_KEY)

    def unrolled_lr(self) -> float:
        """``xi``: the option ``unrolled_lr``, else the train optimizer's current rate."""
        if self.options.unrolled_lr is not None:
            return float(self.options.unrolled_lr)
        return self.ctx.optimizers["train"].get_learning_rate()

    def results(self, export: ArchExport) -> dict[str, Any]:
        """``num_parameters``: the weights of the network that is retrained (the fixed network
        derived from the logits: for ``darts`` the two strongest non-``none`` edges per node);
        ``num_parameters_argmax_path``: those of the supernet's per-edge argmax path (what
        the loop reports for other searchers). Spaces without a derived network of their own
        report the argmax path for both."""
        argmax_path = int(self.model.num_params(export.architecture))
        derived = argmax_path
        if hasattr(self.model, "cell_specs") and not getattr(self.model, "is_fixed", True):
            genotype = self.model.to_genotype(export.architecture, export.logits)
            fixed = type(self.model)(self.model.cfg, genotype=genotype)
            derived = int(fixed.num_params())
        return {"num_parameters": derived, "num_parameters_argmax_path": argmax_path}

    # ------------------------------------------------------------------ weight step
    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """Evaluates the supernet DARTS trains: every edge the softmax-weighted mixture (the
        argmax op alone carries only its share of an edge's output in this network)."""
        with self.use_rule(self.mixture_rule):
            yield

    def train_step(self, batch: Batch, phase: str) -> dict[str, float]:
        """Trains every weight of the full-mode supernet; the logits get no gradient."""
        opt = self.ctx.optimizers[phase]
        with self.frozen(self.arch):
            metrics = self._gradients(batch)
        opt.update(self.ctx.phase_iteration(phase))
        _zero_grad(self.arch.values())
        return metrics

    # ------------------------------------------------------------------ architecture step
    def arch_step(self, batch: Batch, weight_batch: Batch) -> dict[str, float]:
        """One ``valid`` optimizer update of the logits with the gradient of ``order``.

        Returns:
            The architecture batch's mean ``loss`` and ``error`` (at ``w'`` for order 2).
        """
        stats = _copy(self.stats)
        try:
            if self.options.order == 1:
                metrics = self.first_order_gradient(batch)
            else:
                metrics = self.second_order_gradient(batch, weight_batch)
        finally:
            _assign(self.stats, stats)
        self.ctx.optimizers["valid"].update()
        return metrics

    def first_order_gradient(self, batch: Batch) -> dict[str, float]:
        """Writes ``grad_alpha L_val(w, alpha)`` into the logits' ``.g``."""
        with self.frozen(self.weights):
            return self._gradients(batch)

    def virtual_step(self, w: Arrays, grad: Arrays, xi: float) -> Arrays:
        """``w' = w - mu m - xi (grad + wd w)`` (see the module docstring), float32."""
        opt = self.ctx.optimizers["train"]
        wd = float(opt.weight_decay or 0.0)
        mu, states = 0.0, {}
        if opt.name == "Momentum":
            mu = float(opt.solver.info.get("momentum", 0.0))
            states = opt.solver.get_states()
        out = OrderedDict()
        for k, value in w.items():
            step = xi * (grad[k] + wd * value)
            if k in states and "m" in states[k].pstate:
                step = step + mu * states[k].pstate["m"].d
            out[k] = (value - step).astype(np.float32)
        return out

    def second_order_gradient(self, batch: Batch, train_batch: Batch) -> dict[str, float]:
        """Writes the unrolled gradient into the logits' ``.g``; the weights are restored.

        Args:
            batch: the architecture batch (``L_val``).
            train_batch: the weight batch of the virtual step (``L_train``).
        """
        if not train_batch:
            raise NnasError(
                "second-order DARTS needs the weight batch of the current step "
                "(it is empty: run a weight step first)"
            )
        xi = self.unrolled_lr()
        w = _copy(self.weights)
        try:
            with self.frozen(self.arch):
                self._gradients(train_batch)
            # Data-parallel ranks: the virtual step and dw of the whole batch (the logits'
            # gradient, linear in the batch, is averaged by the valid optimizer's update).
            self.comm.all_reduce_grads(self.weights.values())
            _assign(self.weights, self.virtual_step(w, _copy(self.weights, grad=True), xi))
            metrics = self._gradients(batch)
            self.comm.all_reduce_grads(self.weights.values())
            grad_alpha = _copy(self.arch, grad=True)
            dw = _copy(self.weights, grad=True)
            norm = math.sqrt(
                sum(float(np.sum(np.square(g, dtype=np.float64))) for g in dw.values())
            )
            if norm > 0 and xi > 0:
                eps = self.options.epsilon / norm
                sides = []
                for sign in (1.0, -1.0):
                    _assign(self.weights, {k: w[k] + sign * eps * dw[k] for k in w})
                    with self.frozen(self.weights):
                        self._gradients(train_batch)
                    sides.append(_copy(self.arch, grad=True))
                for k in grad_alpha:
                    hessian = (sides[0][k] - sides[1][k]) / (2.0 * eps)
                    grad_alpha[k] = grad_alpha[k] - xi * hessian
        finally:
            _assign(self.weights, w)
            _zero_grad(self.weights.values())
        for k, p in self.arch.items():
            p.g = grad_alpha[k]
        return metrics
