"""ProxylessNAS (Cai, Zhu and Han, "ProxylessNAS: Direct Neural Architecture Search on Target Task
and Hardware", ICLR 2019) as a searcher.

Every choice (a :class:`~nnabla_nas.module.MixedOp` with logits ``alpha``, probabilities
``p = softmax(alpha)``) is a path-level binarised choice: only sampled paths run, so memory stays
that of one network.

Weight step (both estimators)
    One path per choice is drawn from ``p`` with the searcher's RNG, once per batch (the same for
    all its mini-batches); only that path is built and its weights are trained with the phase's
    optimizer. The logits are not in the graph: they get no gradient. Candidates that did not run
    keep their weights: their gradients stay lazily zero, which nnabla's solvers skip (no
    momentum or weight-decay step on them).

Architecture step, ``estimator: "gradient"`` (binary gates, the paper's section 3.2.1)
    Per architecture parameter, two distinct paths ``i, j`` are drawn from ``p`` without
    replacement (``i`` from ``p``, then ``j`` from ``p`` without ``i``), their probabilities are
    renormalised over the pair (``q = softmax(alpha_i, alpha_j)``) and the active one is drawn from
    ``q``. The forward is ``g_i * op_i(x) + g_j * op_j(x)`` with gates ``g`` (the one-hot of the
    active path, ``need_grad``), so ``dL/dg`` exists for both paths. The loss of the architecture
    split is back-propagated (accumulated over the mini-batches with the same gates) and
    ``dL/dalpha_k = sum_l dL/dg_l * q_l * (delta_kl - q_k)`` for ``k, l`` in the pair (zero
    elsewhere) goes to the ``valid`` optimizer. After its update the two logits are shifted by
    ``log sum_pair exp(old) - log sum_pair exp(new)``: the pair's total probability, hence every
    other path's probability, is unchanged, and the other logits are restored to their values
    before the update (a momentum or weight-decay solver would otherwise move them).

    What the estimator is: ``dL/dg_l`` is the first-order (Taylor) estimate of the loss of path
    ``l``, exact when the loss is linear in the choice's output. For such a loss the update is
    the exact gradient of the pair's expected loss ``sum_pair q_l L_l`` whatever gate is active;
    with two candidates that is the exact gradient of ``E_{path~p}[L]``; with ``n`` candidates at
    uniform ``p`` its expectation is ``n / (2 (n - 1))`` times that gradient. In general
    (non-uniform ``p``, ``n > 2``) its expectation weights the pairwise loss differences
    differently from the exact gradient, so it is a biased estimate: the paper's approximation.

Architecture step, ``estimator: "reinforce"`` (the paper's section 3.2.2)
    ``num_samples`` architectures (one path per choice each) are drawn from ``p`` and evaluated,
    forward only, on the architecture batch. They run in the model's current mode, i.e. training
    mode (batch statistics; batch-norm running statistics are updated as in any training
    forward), as the reference implementation does: the supernet's running statistics are a
    mixture over all paths and do not describe one sampled network. The reward is
    ``(1 - error) * reward_factor(sample)``; the baseline ``b`` starts at the first step's mean
    reward and then follows ``b <- decay * b + (1 - decay) * mean(reward)``, updated before the
    advantages are formed (as the reference implementation). The gradient of
    ``-mean_s (R_s - b) log p(sample_s)`` goes to the ``valid`` optimizer, with
    ``d log p_k / d alpha = onehot_k - p``.

Shared logits (one ``alpha`` Parameter in several MixedOps, e.g. a shared DARTS cell): the weight
step and REINFORCE draw a path for every MixedOp independently; ``log p(sample)`` sums over all
of them, so their gradient contributions add. The gradient estimator draws one pair and one
active path per parameter; the MixedOps sharing it share the gates, so ``dL/dg`` sums the
contributions of all of them, and the rescaling stays exact.

Hardware constraints (the ``regularizer`` section; see :mod:`nnabla_nas.estimator.regularizer`)
    Gradient mode: the architecture loss is ``L(CE, E)`` (``add#linear`` or ``mul#log``) with
    ``E`` the expected estimate under ``softmax(alpha)``, an nnabla expression of the logits. Its
    gradient is formed by the chain rule (:meth:`ProxylessNasSearcher.hardware_gradient`):
    ``dL/dalpha = dL/dCE * g_CE + dL/dE * dE/dalpha`` where ``g_CE`` is the binary-gate estimate
    above (pair only) and ``dE/dalpha`` is exact, on every logit. Combined with the rescaling as
    in the reference implementation: after the update the pair is shifted to keep its
    log-sum-exp, while the logits outside the pair keep their update (their gradient is the
    hardware term's alone), so the hardware term can move probability between the pair and the
    other paths. Without an active regularizer the other logits are restored as described above.
    REINFORCE: :meth:`ProxylessNasSearcher.reward_factor` is the product over the regularizers
    of ``min(1, bound / value) ** weight`` with ``value`` the estimate of the sampled
    architecture.

Not implemented: the paper's ``full``/``full_v2`` binarisation modes, and the entropy
regularisation of the architecture distribution.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import nnabla as nn
import nnabla.functions as F
import numpy as np

from ...errors import ConfigError
from ...estimator.regularizer import apply_regularizers
from ...module import MixedOp, softmax
from ..runner import Batch
from .base import Searcher

__all__ = ["ProxylessNasConfig", "ProxylessNasSearcher", "GateDraw", "pair_gradient"]

logger = logging.getLogger(__name__)

ESTIMATORS = ("gradient", "reinforce")

#: One draw of the gradient estimator for an architecture parameter: the pair ``(i, j)`` and
#: the index (``i`` or ``j``) of the active path.
GateDraw = tuple[int, int, int]


@dataclass
class ProxylessNasConfig:
    """The ``searcher`` section of the experiment file for ``ProxylessNasSearcher``.

    Attributes:
        estimator: ``"gradient"`` (binary gates, two sampled paths per choice) or
            ``"reinforce"`` (sampled architectures rewarded by their accuracy).
        num_samples: REINFORCE only: architectures sampled and evaluated per architecture step.
        baseline_decay: REINFORCE only: decay of the moving-average reward baseline, in [0, 1).
    """

    estimator: str = "gradient"
    num_samples: int = 8
    baseline_decay: float = 0.9

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


def pair_gradient(alpha: np.ndarray, pair: tuple[int, int], gate_grad: np.ndarray) -> np.ndarray:
    """The binary-gate gradient of the logits: zero except on the pair.

    ``grad_k = sum_l gate_grad_l * q_l * (delta_kl - q_k)`` for ``k, l`` in the pair, with ``q``
    the softmax of the pair's two logits.

    Args:
        alpha: the logits, any shape with ``n`` elements.
        pair: the two distinct indices ``(i, j)``.
        gate_grad: ``(dL/dg_i, dL/dg_j)``.
    """
    flat = np.asarray(alpha, dtype=np.float64).reshape(-1)
    q = softmax(flat[list(pair)])
    dg = np.asarray(gate_grad, dtype=np.float64).reshape(2)
    local = q * dg - q * float(np.dot(q, dg))  # sum_l dg_l q_l (delta_kl - q_k)
    grad = np.zeros_like(flat)
    grad[list(pair)] = local
    return grad.reshape(np.shape(alpha))


def _logsumexp(values: np.ndarray) -> float:
    m = float(np.max(values))
    return m + float(np.log(np.exp(np.asarray(values, dtype=np.float64) - m).sum()))


class ProxylessNasSearcher(Searcher):
    """ProxylessNAS: path-binarised weight steps, binary-gate or REINFORCE architecture steps.

    See the module docstring for the algorithm; the options are :class:`ProxylessNasConfig`.
    """

    Config = ProxylessNasConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        #: The REINFORCE moving-average baseline (None before the first architecture step).
        self.baseline: float | None = None
        # Architecture parameter id -> (Parameter, the MixedOps that use it), in choice order.
        self._groups: OrderedDict[int, tuple[nn.Variable, list[MixedOp]]] = OrderedDict()
        for op in self.choices.values():
            self._groups.setdefault(id(op.alpha), (op.alpha, []))[1].append(op)

    def state_dict(self) -> dict[str, Any]:
        """The searcher's state (see :meth:`Runner.state_dict`) plus the REINFORCE baseline."""
        return {**super().state_dict(), "baseline": self.baseline}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.baseline = None if state["baseline"] is None else float(state["baseline"])

    # ------------------------------------------------------------------ sampling
    def sample_architecture(self) -> OrderedDict[str, int]:
        """One path per choice drawn from its probabilities: ``label -> candidate index``."""
        return OrderedDict(
            (label, int(self.rng.choice(len(op.ops), p=op.probabilities())))
            for label, op in self.choices.items()
        )

    def sample_gates(self, probs: np.ndarray) -> GateDraw:
        """Draws the pair ``(i, j)`` without replacement from ``probs``, then the active path of
        the two from their renormalised probabilities."""
        n = len(probs)
        i = int(self.rng.choice(n, p=probs))
        rest = np.array(probs, dtype=np.float64)
        rest[i] = 0.0
        if not rest.sum() > 0:  # every other probability underflowed: any other path
            rest = np.ones(n)
            rest[i] = 0.0
        j = int(self.rng.choice(n, p=rest / rest.sum()))
        q_i = probs[i] / (probs[i] + probs[j])
        active = i if self.rng.random_sample() < q_i else j
        return i, j, active

    @contextlib.contextmanager
    def use_architecture(self, sample: Mapping[str, int]) -> Iterator[None]:
        """Graphs built in the block run only candidate ``sample[label]`` of every choice."""
        index = {id(op): int(sample[label]) for label, op in self.choices.items()}

        def rule(op: MixedOp, *inputs: Any) -> nn.Variable:
            op.active_index = index[id(op)]
            return op.ops[op.active_index](*inputs)

        with self.use_rule(rule):
            yield

    # ------------------------------------------------------------------ weight step
    def train_step(self, batch: Batch, phase: str) -> dict[str, float]:
        """Trains the weights of one sampled path per choice (same path for every mini-batch)."""
        opt = self.optimizers[phase]
        opt.zero_grad()
        with self.use_architecture(self.sample_architecture()):
            metrics = self.accumulate(batch, cache=False, key="train")
        opt.update(self._phase_iteration(phase))
        return metrics

    # ------------------------------------------------------------------ architecture step
    def arch_step(self, batch: Batch) -> dict[str, float]:
        """One update of the logits with the configured estimator."""
        if self.options.estimator == "reinforce":
            return self.reinforce_step(batch)
        return self.gradient_step(batch)

    def gradient_step(self, batch: Batch) -> dict[str, float]:
        """Binary-gate gradient, ``valid`` optimizer update, then the rescaling of the pairs."""
        draws = OrderedDict(
            (key, self.sample_gates(softmax(alpha.d)))
            for key, (alpha, _) in self._groups.items()
            if alpha.size > 1 and alpha.need_grad
        )
        opt = self.optimizers["valid"]
        opt.zero_grad()
        metrics = self.gate_gradient(batch, draws)
        regularized = self.hardware_gradient(metrics)
        old = {key: np.array(self._groups[key][0].d, copy=True) for key in draws}
        opt.update()
        for key, (i, j, _) in draws.items():
            alpha = self._groups[key][0]
            before, after = old[key].reshape(-1), np.array(alpha.d, dtype=np.float64).reshape(-1)
            pair = [i, j]
            offset = _logsumexp(before[pair]) - _logsumexp(after[pair])
            # With a hardware term the other logits keep their update (see the module docstring).
            value = np.array(after if regularized else before, dtype=np.float64)
            value[pair] = after[pair] + offset
            alpha.d = value.reshape(alpha.shape)
        return metrics

    def gate_gradient(self, batch: Batch, draws: Mapping[int, GateDraw]) -> dict[str, float]:
        """Writes the binary-gate gradient of the logits for the given draws into ``alpha.g``.

        Args:
            batch: the architecture batch (mini-batches).
            draws: ``id(alpha) -> (i, j, active)`` for each architecture parameter updated
                (parameters not in ``draws`` run their argmax path and get no gradient).

        Returns:
            The batch's mean ``loss`` and ``error`` (of the active paths).
        """
        gates: dict[int, nn.Variable] = {}
        for key, (i, j, active) in draws.items():
            gate = nn.Variable((2,), need_grad=True)
            gate.d = np.array([active == i, active == j], dtype=np.float32)
            gate.grad.zero()
            gates[key] = gate

        def rule(op: MixedOp, *inputs: Any) -> nn.Variable:
            key = id(op.alpha)
            if key not in draws:
                op.active_index = int(np.argmax(op.alpha.d.reshape(-1)))
                return op.ops[op.active_index](*inputs)
            i, j, active = draws[key]
            op.active_index = active
            out = None
            for slot, index in enumerate((i, j)):
                y = op.ops[index](*inputs)
                g = F.reshape(gates[key][slot : slot + 1], (1,) * y.ndim)
                out = F.mul2(y, g) if out is None else out + F.mul2(y, g)
            return out

        with self.use_rule(rule), self.frozen(self.model.get_net_parameters()):
            metrics = self.accumulate(batch, cache=False, key="arch")
        for key, (i, j, _) in draws.items():
            alpha = self._groups[key][0]
            alpha.g = pair_gradient(alpha.d, (i, j), gates[key].g).astype(np.float32)
        return metrics

    # ------------------------------------------------------------------ REINFORCE
    def hardware_gradient(self, metrics: dict[str, float]) -> bool:
        """Turns ``alpha.g`` (the binary-gate gradient of the cross-entropy ``CE``, written by
        :meth:`gate_gradient`) into the gradient of the regularised loss ``L(CE, E)``:
        ``dL/dCE * alpha.g + dL/dE * dE/dalpha`` (both factors from nnabla's backward through
        the regularizers' expression, with ``CE`` the batch's mean loss in ``metrics``).

        Adds ``loss_regularized`` and ``expected_<label>`` to ``metrics``.

        Returns:
            False (nothing done) when no regularizer has a gradient-mode term.
        """
        regs = [r for r in self.regularizers.values() if r.in_gradient]
        if not regs:
            return False
        ce = nn.Variable((), need_grad=True)
        ce.d = metrics["loss"]
        total, expected = apply_regularizers(ce, self.model, regs)
        params = [alpha for alpha, _ in self._groups.values() if alpha.need_grad]
        ce_grads = [np.array(alpha.g, copy=True) for alpha in params]
        for alpha in params:
            alpha.grad.zero()
        ce.grad.zero()
        total.forward()
        metrics["loss_regularized"] = float(total.d)
        metrics.update({f"expected_{label}": float(e.d) for label, e in expected.items()})
        total.backward(clear_buffer=True)
        scale = float(ce.g)  # dL/dCE
        for alpha, g in zip(params, ce_grads):
            alpha.g = alpha.g + scale * g
        return True

    def reward_factor(self, sample: Mapping[str, int]) -> float:
        """Multiplies the accuracy of ``sample`` (``label -> index``) to form its reward:
        ``prod min(1, bound / value) ** weight`` over the regularizers (``value``: the estimate
        of ``sample``); 1.0 without regularizers."""
        factor = 1.0
        for reg in self.regularizers.values():
            if reg.weight != 0.0:
                factor *= reg.reward_factor(reg.value(self.model, sample))
        return factor

    def reinforce_step(self, batch: Batch) -> dict[str, float]:
        """Samples ``num_samples`` architectures, rewards them, updates the baseline and logits.

        With several data-parallel processes every rank draws all the samples (their RNGs
        agree) and evaluates its share of them (``rank, rank + size, ...``) on the whole
        architecture batch (:meth:`~nnabla_nas.runner.runner.Runner.whole_batch`); the rewards
        are gathered, so every rank forms the same gradient.
        """
        samples = [self.sample_architecture() for _ in range(self.options.num_samples)]
        batch = self.whole_batch(batch, self.cfg.mini_batch_valid)
        measured: dict[int, tuple[float, float, float]] = {}
        for s in range(self.comm.rank, len(samples), self.comm.size):
            with self.use_architecture(samples[s]):
                m = self.accumulate(batch, cache=False, key="arch", backward=False)
            reward = (1.0 - m["error"]) * float(self.reward_factor(samples[s]))
            measured[s] = (reward, m["loss"], m["error"])
        if self.comm.size > 1:
            for part in self.comm.all_gather(measured):
                measured.update(part)
        measured_order = range(len(samples))
        rewards, losses, errors = (list(v) for v in zip(*(measured[s] for s in measured_order)))
        mean_reward = float(np.mean(rewards))
        decay = self.options.baseline_decay
        if self.baseline is None:
            self.baseline = mean_reward
        else:
            self.baseline = decay * self.baseline + (1.0 - decay) * mean_reward
        opt = self.optimizers["valid"]
        opt.zero_grad()
        for alpha, grad in self.reinforce_gradient(samples, rewards, self.baseline).values():
            alpha.g = grad.reshape(alpha.shape).astype(np.float32)
        opt.update()
        return {
            "reward": mean_reward,
            "baseline": float(self.baseline),
            "loss": float(np.mean(losses)),
            "error": float(np.mean(errors)),
        }

    def reinforce_gradient(
        self, samples: list[Mapping[str, int]], rewards: list[float], baseline: float
    ) -> OrderedDict[int, tuple[nn.Variable, np.ndarray]]:
        """``d/dalpha of -mean_s (R_s - b) log p(sample_s)`` for every architecture parameter.

        Returns:
            ``id(alpha) -> (alpha, gradient of shape (n,))`` (float64) for the trainable ones.
        """
        grads: OrderedDict[int, tuple[nn.Variable, np.ndarray]] = OrderedDict()
        label_of = {id(op): label for label, op in self.choices.items()}
        for key, (alpha, ops) in self._groups.items():
            if not alpha.need_grad:
                continue
            p = softmax(alpha.d)
            grad = np.zeros_like(p)
            for sample, reward in zip(samples, rewards):
                for op in ops:
                    score = -p.copy()  # d log p_k / d alpha = onehot_k - p
                    score[sample[label_of[id(op)]]] += 1.0
                    grad -= (reward - baseline) * score
            grads[key] = (alpha, grad / len(samples))
        return grads
