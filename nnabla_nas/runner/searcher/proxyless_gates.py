"""ProxylessNAS' gradient estimator through binary gates (Cai et al. 2019, section 3.2.1), and the
chain rule that adds a differentiable hardware term to it.

Per decision, two distinct paths ``i, j`` are drawn from ``p = softmax(logits)`` without
replacement (:func:`~.sampling.sample_pair`), their probabilities renormalised over the pair
(``q = softmax(logits_i, logits_j)``) and the active one drawn from ``q``. The forward is
``g_i * op_i(x) + g_j * op_j(x)`` with gates ``g`` (the one-hot of the active path,
``need_grad``), so ``dL/dg`` exists for both paths; ``dL/dlogits_k = sum_l dL/dg_l * q_l *
(delta_kl - q_k)`` for ``k, l`` in the pair, zero elsewhere (:func:`pair_gradient`).

What the estimator is: ``dL/dg_l`` is the first-order (Taylor) estimate of the loss of path ``l``,
exact when the loss is linear in the choice's output. For such a loss the update is the exact
gradient of the pair's expected loss ``sum_pair q_l L_l`` whatever gate is active; with two
candidates that is the exact gradient of ``E_{path~p}[L]``; with ``n`` candidates at uniform
``p`` its expectation is ``n / (2 (n - 1))`` times that gradient. In general it is a biased
estimate: the paper's approximation.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from typing import Any, Mapping

import nnabla as nn
import nnabla.functions as F
import numpy as np

from ...estimator.regularizer import apply_regularizers
from ...module import MixedOp, softmax
from ..steps import Batch
from .sampling import GateDraw

logger = logging.getLogger(__name__)

#: Regularizers already warned about mul#log below 1 unit (once per label and process).
_WARNED_LOG_UNIT: set[str] = set()

__all__ = [
    "draw_gates",
    "gate_gradient",
    "hardware_gradient",
    "logsumexp",
    "pair_distribution",
    "pair_gradient",
    "rescale_pairs",
]


def pair_gradient(logits: np.ndarray, pair: tuple[int, int], gate_grad: np.ndarray) -> np.ndarray:
    """The binary-gate gradient of the logits: zero except on the pair.

    ``grad_k = sum_l gate_grad_l * q_l * (delta_kl - q_k)`` for ``k, l`` in the pair, with ``q``
    the softmax of the pair's two logits.

    Args:
        logits: the logits, any shape with ``n`` elements.
        pair: the two distinct indices ``(i, j)``.
        gate_grad: ``(dL/dg_i, dL/dg_j)``.
    """
    flat = np.asarray(logits, dtype=np.float64).reshape(-1)
    q = softmax(flat[list(pair)])
    dg = np.asarray(gate_grad, dtype=np.float64).reshape(2)
    local = q * dg - q * float(np.dot(q, dg))  # sum_l dg_l q_l (delta_kl - q_k)
    grad = np.zeros_like(flat)
    grad[list(pair)] = local
    return grad.reshape(np.shape(logits))


def logsumexp(values: np.ndarray) -> float:
    """``log sum exp(values)``, computed stably (float64)."""
    m = float(np.max(values))
    return m + float(np.log(np.exp(np.asarray(values, dtype=np.float64) - m).sum()))


def gate_gradient(searcher: Any, batch: Batch, draws: Mapping[str, GateDraw]) -> dict[str, float]:
    """Writes the binary-gate gradient of the logits for the given draws into their ``.g``.

    Args:
        searcher: the :class:`~.proxyless.ProxylessNasSearcher` (its logits, rules, context).
        batch: the architecture batch (mini-batches).
        draws: ``label -> (i, j, active)`` for each decision updated (decisions not in
            ``draws`` run their argmax path and get no gradient).

    Returns:
        The batch's mean ``loss`` and ``error`` (of the active paths).
    """
    logits = searcher.logits
    gates: dict[str, nn.Variable] = {}
    for label, (i, j, active) in draws.items():
        gate = nn.Variable((2,), need_grad=True)
        gate.d = np.array([active == i, active == j], dtype=np.float32)
        gate.grad.zero()
        gates[label] = gate

    def rule(op: MixedOp, *inputs: Any) -> nn.Variable:
        label = logits.label_of(op)
        if label not in draws:
            op.active_index = int(np.argmax(logits.params[label].d.reshape(-1)))
            return op.ops[op.active_index](*inputs)
        i, j, active = draws[label]
        op.active_index = active
        out = None
        for slot, index in enumerate((i, j)):
            y = op.ops[index](*inputs)
            g = F.reshape(gates[label][slot : slot + 1], (1,) * y.ndim)
            out = F.mul2(y, g) if out is None else out + F.mul2(y, g)
        return out

    with searcher.use_rule(rule), searcher.frozen(searcher.model.get_net_parameters()):
        metrics = searcher.ctx.steps.accumulate(batch, cache=False, key="arch")
    for label, (i, j, _) in draws.items():
        param = logits.params[label]
        param.g = pair_gradient(param.d, (i, j), gates[label].g).astype(np.float32)
    return metrics


def pair_distribution(logits: Any, draws: Mapping[str, GateDraw]) -> OrderedDict[str, nn.Variable]:
    """``label -> probabilities`` (``nn.Variable`` of shape ``(n,)``, differentiable in the
    logits) for the hardware term: for a drawn decision the pair's renormalised probabilities
    ``softmax(logits_i, logits_j)`` at ``i, j`` and zero elsewhere (so the other logits get no
    gradient), as the reference implementation computes the expected latency; the full softmax
    for a decision that is not drawn (one candidate, or frozen)."""
    out: OrderedDict[str, nn.Variable] = OrderedDict()
    for label, param in logits.params.items():
        flat = F.reshape(param, (param.size,))
        if label in draws:
            i, j, _ = draws[label]
            mask = np.full(param.size, -1e30, dtype=np.float32)
            mask[[i, j]] = 0.0
            flat = flat + nn.Variable.from_numpy_array(mask)
        out[label] = F.softmax(flat, axis=0)
    return out


def hardware_gradient(
    searcher: Any, metrics: dict[str, float], draws: Mapping[str, GateDraw]
) -> bool:
    """Turns the logits' ``.g`` (the binary-gate gradient of the cross-entropy ``CE``, written by
    :func:`gate_gradient`) into the gradient of the regularised loss ``L(CE, E)``:
    ``dL/dCE * g + dL/dE * dE/dlogits`` (both factors from nnabla's backward through the
    regularizers' expression, with ``CE`` the batch's mean loss in ``metrics`` and ``E`` the
    expected estimates under :func:`pair_distribution` of ``draws``: only the pairs' logits get
    a gradient).

    Adds ``loss_regularized`` and ``expected_<label>`` (over the pairs) to ``metrics``.

    Returns:
        False (nothing done) when no regularizer has a gradient-mode term.
    """
    regs = [r for r in searcher.ctx.regularizers.values() if r.in_gradient]
    if not regs:
        return False
    ce = nn.Variable((), need_grad=True)
    ce.d = metrics["loss"]
    logits = searcher.logits
    total, expected = apply_regularizers(ce, searcher.model, regs, pair_distribution(logits, draws))
    params = [p for p in logits.params.values() if p.need_grad]
    ce_grads = [np.array(p.g, copy=True) for p in params]
    for p in params:
        p.grad.zero()
    ce.grad.zero()
    total.forward()
    metrics["loss_regularized"] = float(total.d)
    metrics.update({f"expected_{label}": float(e.d) for label, e in expected.items()})
    for reg in regs:
        value = metrics.get(f"expected_{reg.label}", 2.0)
        if reg.loss_type == "mul#log" and value <= 1.0 and reg.label not in _WARNED_LOG_UNIT:
            _WARNED_LOG_UNIT.add(reg.label)
            logger.warning(
                "regularizer.%s: the expected value %.4g is at or below 1 unit, where mul#log "
                "(ln E / ln ref) is floored: the hardware gradient is zero and the cross-entropy "
                "one shrinks; give bound/ref_latency in a smaller unit",
                reg.label,
                value,
            )
    total.backward(clear_buffer=True)
    scale = float(ce.g)  # dL/dCE
    for p, g in zip(params, ce_grads):
        p.g = p.g + scale * g
    return True


def rescale_pairs(
    logits: Any, draws: Mapping[str, GateDraw], old: Mapping[str, np.ndarray]
) -> None:
    """After the update, shifts each pair's two logits by ``log sum_pair exp(old) - log
    sum_pair exp(new)``: the pair's total probability, hence every other path's probability,
    is unchanged; the other logits are restored to ``old`` (an optimizer with momentum moves
    them even with a zero gradient)."""
    for label, (i, j, _) in draws.items():
        param = logits.params[label]
        before = old[label].reshape(-1)
        after = np.array(param.d, dtype=np.float64).reshape(-1)
        pair = [i, j]
        offset = logsumexp(before[pair]) - logsumexp(after[pair])
        value = np.array(before, dtype=np.float64)
        value[pair] = after[pair] + offset
        param.d = value.reshape(param.shape)


def draw_gates(logits: Any, rng: np.random.RandomState) -> OrderedDict[str, GateDraw]:
    """A pair and an active path for every trainable decision with more than one candidate."""
    from .sampling import sample_pair

    return OrderedDict(
        (label, sample_pair(softmax(p.d), rng))
        for label, p in logits.params.items()
        if p.size > 1 and p.need_grad
    )
