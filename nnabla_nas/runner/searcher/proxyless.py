"""ProxylessNAS (Cai, Zhu and Han, "ProxylessNAS: Direct Neural Architecture Search on Target Task
and Hardware", ICLR 2019) as a searcher.

Every decision has logits (:class:`~.logits.ArchLogits`, probabilities ``p = softmax(logits)``)
and is a path-level binarised choice: only sampled paths run, so memory stays that of one
network.

Weight step (both estimators)
    One path per decision is drawn from ``p`` with the searcher's RNG, once per batch (the same
    for all its mini-batches); only that path is built and its weights are trained with the
    phase's optimizer. The logits are not in the graph: they get no gradient. Candidates that
    did not run keep their weights: their gradients stay lazily zero, which nnabla's solvers
    skip (no momentum or weight-decay step on them).

Architecture step, ``estimator: "gradient"`` (binary gates, the paper's section 3.2.1)
    See :mod:`.proxyless_gates`: two sampled paths per decision, the pair-renormalised gradient to
    the ``valid`` optimizer, then the rescaling that keeps the pair's total probability (hence
    every other path's) unchanged, the other logits restored to their values before the update.

Architecture step, ``estimator: "reinforce"`` (the paper's section 3.2.2)
    ``num_samples`` architectures (one path per decision each) are drawn from ``p`` and
    evaluated, forward only, on the architecture batch, in training mode (batch statistics;
    batch-norm running statistics are updated as in any training forward), as the reference
    implementation does. The reward is ``(1 - error) * reward_factor(sample)``; the baseline
    (:class:`~.reinforce.MovingAverageBaseline`) starts at the first step's mean reward and is
    updated before the advantages are formed (as the reference implementation); the gradient
    of ``-mean_s (R_s - b) log p(sample_s)`` (:func:`~.reinforce.log_prob_gradient`) goes to the
    ``valid`` optimizer.

Shared decisions (MixedOps with one label, e.g. an edge of a shared DARTS cell): one
distribution and one drawn path for all of them; the gates are shared, so ``dL/dg`` sums the
contributions of every MixedOp of the decision.

Hardware constraints (the ``regularizer`` section; :mod:`nnabla_nas.estimator.regularizer`)
    Gradient mode: the architecture loss is ``L(CE, E)`` (``add#linear`` or ``mul#log``) with
    ``E`` the expected estimate under the pairs' renormalised probabilities (the reference
    implementation's expected latency: zero probability outside each drawn pair), an nnabla
    expression of the logits; its gradient by the chain rule
    (:func:`~.proxyless_gates.hardware_gradient`). Only the pairs' logits move, with or without
    a regularizer: the others are restored after the optimizer's update, which a solver with
    momentum would otherwise apply to them. REINFORCE: the reward factor is the product over
    the regularizers of ``min(1, bound / value) ** weight`` with ``value`` the estimate of the
    sampled architecture.

Not implemented: the paper's ``full``/``full_v2`` binarisation modes, and the entropy
regularisation of the architecture distribution.
"""

from __future__ import annotations

import contextlib
import logging
import math
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import numpy as np

from ...errors import ConfigError
from ...module import BatchNormalization, use_architecture
from ..algorithm import RunContext
from ..steps import Batch
from .base import SoftmaxSearcher
from .proxyless_gates import draw_gates, gate_gradient, hardware_gradient, rescale_pairs
from .reinforce import MovingAverageBaseline, log_prob_gradient
from .sampling import sample_architecture

__all__ = ["ProxylessNasConfig", "ProxylessNasSearcher"]

logger = logging.getLogger(__name__)

ESTIMATORS = ("gradient", "reinforce")


@dataclass
class ProxylessNasConfig:
    """The ``searcher`` section of the experiment file for ``ProxylessNasSearcher``.

    Attributes:
        estimator: ``"gradient"`` (binary gates, two sampled paths per choice) or
            ``"reinforce"`` (sampled architectures rewarded by their accuracy).
        num_samples: REINFORCE only: architectures sampled and evaluated per architecture step.
        baseline_decay: REINFORCE only: decay of the moving-average reward baseline, in [0, 1).
        arch_update_frequency: one architecture step every this many weight steps (default 1;
            the reference implementation: 5).
        arch_update_delay: search epochs (after the warm-up) with weight steps only (default 0;
            the reference implementation: 1).
        logit_init_std: the logits start as ``logit_init_std * randn(n)`` from the searcher's
            generator (default 0: uniform probabilities; the reference implementation: 1e-3).
    """

    estimator: str = "gradient"
    num_samples: int = 8
    baseline_decay: float = 0.9
    arch_update_frequency: int = 1
    arch_update_delay: int = 0
    logit_init_std: float = 0.0

    def check(self) -> None:
        """Raises ConfigError (naming the key) on an invalid value."""
        if self.estimator not in ESTIMATORS:
            raise ConfigError(
                f"unknown estimator {self.estimator!r}; valid values: {', '.join(ESTIMATORS)}",
                key="estimator",
            )
        if self.num_samples < 1:
            raise ConfigError(f"must be >= 1, got {self.num_samples}", key="num_samples")
        if not 0.0 <= self.baseline_decay < 1.0:
            raise ConfigError(
                f"must be in [0, 1) (weight of the old baseline), got {self.baseline_decay}",
                key="baseline_decay",
            )
        if self.arch_update_frequency < 1:
            raise ConfigError(
                f"must be >= 1 (weight steps per architecture step), got "
                f"{self.arch_update_frequency}",
                key="arch_update_frequency",
            )
        if self.arch_update_delay < 0:
            raise ConfigError(
                f"must be >= 0 (epochs), got {self.arch_update_delay}", key="arch_update_delay"
            )
        if not (math.isfinite(self.logit_init_std) and self.logit_init_std >= 0):
            raise ConfigError(f"must be >= 0, got {self.logit_init_std}", key="logit_init_std")


class ProxylessNasSearcher(SoftmaxSearcher):
    """ProxylessNAS: path-binarised weight steps, binary-gate or REINFORCE architecture steps.

    See the module docstring for the algorithm; the options are :class:`ProxylessNasConfig`.
    """

    Config = ProxylessNasConfig

    def init_logits(self) -> Any:
        """``logit_init_std * randn(n)`` per decision (None, zeros, at the default 0)."""
        std = self.options.logit_init_std
        return None if std == 0 else (lambda n: std * self.rng.randn(n))

    def setup(self, ctx: RunContext) -> Any:
        params = super().setup(ctx)
        #: The REINFORCE moving-average baseline.
        self.baseline = MovingAverageBaseline(self.options.baseline_decay)
        #: The metrics of the last architecture step (repeated on the steps without one).
        self.last_arch: dict[str, float] = {}
        return params

    def state_dict(self) -> dict[str, Any]:
        """The searcher's RNG, the REINFORCE baseline and the last architecture metrics."""
        return {**super().state_dict(), **self.baseline.state_dict(),
                "last_arch": dict(self.last_arch)}  # fmt: skip

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.baseline.load_state_dict(state)
        self.last_arch = dict(state.get("last_arch", {}))

    def arch_update_due(self) -> bool:
        """Whether this iteration's architecture step updates the logits: after
        ``arch_update_delay`` search epochs, on every ``arch_update_frequency``-th weight step
        (counted from the end of the warm-up)."""
        iteration = self.ctx.phase_iteration("train")
        steps = max(1, len(self.ctx.data.train))
        if iteration < self.options.arch_update_delay * steps:
            return False
        return (iteration - self.options.arch_update_delay * steps) % (
            self.options.arch_update_frequency
        ) == 0

    @contextlib.contextmanager
    def evaluating(self) -> Iterator[None]:
        """The current argmax architecture, its batch normalisations on batch statistics (as the
        reference implementation validates during the search: the running statistics of the
        shared layers describe a mixture of sampled paths, not this one). The running
        statistics are restored afterwards; dropout stays in inference mode."""
        bns = [m for _, m in self.model.get_modules() if isinstance(m, BatchNormalization)]
        stats = [p for p in self.model.get_net_parameters().values() if not p.need_grad]
        saved = [np.array(p.d, copy=True) for p in stats]
        modes = [m.training for m in bns]
        with super().evaluating():
            for m in bns:
                m.training = True
            try:
                yield
            finally:
                for m, mode in zip(bns, modes):
                    m.training = mode
                for p, value in zip(stats, saved):
                    p.d = value

    def sample_architecture(self) -> dict[str, int]:
        """One path per decision drawn from its probabilities: ``label -> candidate index``."""
        return sample_architecture(self.logits.probabilities(), self.rng)

    # ------------------------------------------------------------------ weight step
    def train_step(self, batch: Batch, phase: str) -> dict[str, float]:
        """Trains the weights of one sampled path per decision (same path for every
        mini-batch)."""
        opt = self.ctx.optimizers[phase]
        opt.zero_grad()
        with use_architecture(self.model, self.sample_architecture()):
            metrics = self.ctx.steps.accumulate(batch, cache=False, key="train")
        opt.update(self.ctx.phase_iteration(phase))
        return metrics

    # ------------------------------------------------------------------ architecture step
    def arch_step(self, batch: Batch, weight_batch: Batch) -> dict[str, float]:
        """One update of the logits with the configured estimator, when
        :meth:`arch_update_due`; otherwise nothing, and the last update's metrics are returned
        again (so the epoch's means weight each update by the steps it stands for; none before
        the first update)."""
        if not self.arch_update_due():
            return dict(self.last_arch)
        if self.options.estimator == "reinforce":
            metrics = self.reinforce_step(batch)
        else:
            metrics = self.gradient_step(batch)
        self.last_arch = dict(metrics)
        return metrics

    def gradient_step(self, batch: Batch) -> dict[str, float]:
        """Binary-gate gradient, ``valid`` optimizer update, then the rescaling of the pairs."""
        draws = draw_gates(self.logits, self.rng)
        opt = self.ctx.optimizers["valid"]
        opt.zero_grad()
        metrics = gate_gradient(self, batch, draws)
        hardware_gradient(self, metrics, draws)
        old = {label: np.array(self.logits.params[label].d, copy=True) for label in draws}
        opt.update()
        rescale_pairs(self.logits, draws, old)
        return metrics

    # ------------------------------------------------------------------ REINFORCE
    def reward_factor(self, sample: Mapping[str, int]) -> float:
        """Multiplies the accuracy of ``sample`` (``label -> index``) to form its reward:
        ``prod min(1, bound / value) ** weight`` over the regularizers (``value``: the estimate
        of ``sample``); 1.0 without regularizers."""
        factor = 1.0
        for reg in self.ctx.regularizers.values():
            if reg.weight != 0.0:
                factor *= reg.reward_factor(reg.value(self.model, sample))
        return factor

    def reinforce_step(self, batch: Batch) -> dict[str, float]:
        """Samples ``num_samples`` architectures, rewards them, updates the baseline and logits.

        With several data-parallel processes every rank draws all the samples (their RNGs
        agree) and evaluates its share of them (``rank, rank + size, ...``) on the whole
        architecture batch; the rewards are gathered, so every rank forms the same gradient.
        """
        ctx = self.ctx
        samples = [self.sample_architecture() for _ in range(self.options.num_samples)]
        batch = ctx.steps.whole_batch(batch, ctx.options.mini_batch_valid or len(batch[0][0]))
        measured: dict[int, tuple[float, float, float]] = {}
        for s in range(self.comm.rank, len(samples), self.comm.size):
            with use_architecture(self.model, samples[s]):
                m = ctx.steps.accumulate(batch, cache=False, key="arch", backward=False)
            reward = (1.0 - m["error"]) * float(self.reward_factor(samples[s]))
            measured[s] = (reward, m["loss"], m["error"])
        if self.comm.size > 1:
            for part in self.comm.all_gather(measured):
                measured.update(part)
        ordered = (measured[s] for s in range(len(samples)))
        rewards, losses, errors = (list(v) for v in zip(*ordered))
        mean_reward = float(np.mean(rewards))
        baseline = self.baseline.update(mean_reward)
        opt = ctx.optimizers["valid"]
        opt.zero_grad()
        grads = log_prob_gradient(self.logits.probabilities(), samples, rewards, baseline)
        for label, grad in grads.items():
            param = self.logits.params[label]
            if param.need_grad:
                param.g = grad.reshape(param.shape).astype(np.float32)
        opt.update()
        return {
            "reward": mean_reward,
            "baseline": float(baseline),
            "loss": float(np.mean(losses)),
            "error": float(np.mean(errors)),
        }
