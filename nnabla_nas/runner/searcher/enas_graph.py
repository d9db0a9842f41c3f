"""The layers of the ENAS controller and its static nnabla graph (:mod:`.enas_controller`
describes the computation; this module builds it).

The graph takes one one-hot ``(1, n)`` vector per decision as input. :func:`build_graph` makes
either the full graph (log-probability, entropy, skip penalty and the REINFORCE loss) or the
sampling graph: the same computation cut after every LSTM step's probabilities (unlinked
variables sharing the data), so that a sampler forwards one step at a time, reads the step's
probabilities, draws, fills the step's one-hot in and goes on.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import TYPE_CHECKING, Any, Callable, Sequence

import nnabla as nn
import nnabla.functions as F
import numpy as np

from ...contrib.decisions import Decision
from ...module import Module, Parameter

if TYPE_CHECKING:  # pragma: no cover
    from .enas_controller import EnasController

__all__ = ["ControllerGraph", "LSTMCell", "OpHead", "build_graph"]


class LSTMCell(Module):
    """``[i, f, o, g] = [x, h] W`` (no bias); ``c' = sigmoid(f) c + sigmoid(i) tanh(g)``,
    ``h' = sigmoid(o) tanh(c')``."""

    def __init__(self, size: int, init: Callable[[tuple], np.ndarray]) -> None:
        self.size = int(size)
        self.w = Parameter((2 * size, 4 * size), initializer=init((2 * size, 4 * size)))

    def call(self, x: nn.Variable, h: nn.Variable, c: nn.Variable) -> tuple[Any, Any]:
        z = F.reshape(F.affine(F.concatenate(x, h, axis=1), self.w), (1, 4, self.size))
        i, f, o, g = F.split(z, axis=1)
        c = F.sigmoid(f) * c + F.sigmoid(i) * F.tanh(g)
        return F.sigmoid(o) * F.tanh(c), c


class OpHead(Module):
    """The softmax weights and candidate embeddings of one set of candidate names."""

    def __init__(self, size: int, n: int, init: Callable[[tuple], np.ndarray]) -> None:
        self.w_soft = Parameter((size, n), initializer=init((size, n)))
        self.w_emb = Parameter((n, size), initializer=init((n, size)))


class ControllerGraph:
    """The controller's static graph (see :func:`build_graph`).

    Attributes:
        choices: ``label -> (1, n)`` one-hot input of every decision.
        probs: ``label -> (1, n)`` probabilities of every decision.
        groups: the decisions of each LSTM step (the skips of a node share one step).
        group_probs, group_sinks: each step's probabilities, and one variable that forwards them.
        sampler: the sampling graph on the same ``choices`` (full graph only).
        log_prob, entropy, penalty, result, advantage, loss: the full graph's outputs
            (``result`` forwards the first three and every probability; ``advantage`` is the
            input ``R - b`` of ``loss``).
    """

    def __init__(self) -> None:
        self.choices: OrderedDict[str, nn.Variable] = OrderedDict()
        self.probs: OrderedDict[str, nn.Variable] = OrderedDict()
        self.groups: list[list[Decision]] = []
        self.group_probs: list[list[nn.Variable]] = []
        self.group_sinks: list[nn.Variable] = []
        self.result: Any = None
        self.sampler: Any = None
        self.log_prob: Any = None
        self.entropy: Any = None
        self.penalty: Any = None
        self.advantage: Any = None
        self.loss: Any = None


def scale_logits(ctrl: EnasController, logits: nn.Variable, op: bool) -> nn.Variable:
    """``c * tanh(u / T)`` (operation logits: ``c / op_tanh_reduce``); either part off when its
    constant is None."""
    cfg = ctrl.cfg
    if cfg.temperature is not None:
        logits = logits / cfg.temperature
    if cfg.tanh_constant is not None:
        c = cfg.tanh_constant / (cfg.op_tanh_reduce if op else 1.0)
        logits = c * F.tanh(logits)
    return logits


def build_graph(
    ctrl: EnasController, choices: OrderedDict[str, nn.Variable] | None = None
) -> ControllerGraph:
    """The full graph of ``ctrl`` (``choices`` None: new one-hot inputs) or its sampling graph
    on the full graph's ``choices``."""
    size, specs, cut = ctrl.cfg.lstm_size, ctrl.specs, choices is not None
    g = ControllerGraph()
    g.choices = choices or OrderedDict((d.label, nn.Variable((1, len(d.names)))) for d in specs)
    zeros = nn.Variable.from_numpy_array(np.zeros((1, size), np.float32))
    state = [(zeros, zeros) for _ in ctrl.lstm]
    anchors: dict[str, tuple[nn.Variable, nn.Variable]] = {}
    log_probs, entropies, kls = [], [], []
    target = np.log([1.0 - ctrl.cfg.skip_target, ctrl.cfg.skip_target]).reshape(1, 2)
    log_target = nn.Variable.from_numpy_array(target.astype(np.float32))

    def step(x: nn.Variable) -> nn.Variable:
        for layer, cell in enumerate(ctrl.lstm):
            x, c = cell(x, *state[layer])
            state[layer] = (x, c)
        return x

    def anchor(node: str, x: nn.Variable) -> None:
        h = step(x)
        anchors[node] = (h, F.affine(h, ctrl.w_attn1))

    def decide(d: Decision, logits: nn.Variable) -> nn.Variable:
        logp = F.log_softmax(logits, axis=1)
        p = F.exp(logp)
        log_probs.append(F.sum(logp * g.choices[d.label]))
        entropies.append(-F.sum(p * logp))
        g.probs[d.label] = p
        return logp

    x, i = ctrl.g_emb, 0
    while i < len(specs):
        d = specs[i]
        run = [d]
        while d.kind == "skip" and i + len(run) < len(specs):  # one query for the node's skips
            nxt = specs[i + len(run)]
            if nxt.kind != "skip" or nxt.node != d.node:
                break
            run.append(nxt)
        for s in dict.fromkeys(s for r in run for s in r.sources):  # in order
            if s not in anchors:
                anchor(s, ctrl.g_emb)
        h = step(x)
        if d.kind == "op":
            head = ctrl.heads[ctrl.head_of[d.names]]
            decide(d, scale_logits(ctrl, F.affine(h, head.w_soft), op=True))
        elif d.kind == "input":
            keys = _cat([anchors[s][1] for s in d.sources], axis=0)
            u = F.affine(F.tanh(keys + F.affine(h, ctrl.w_attn2)), ctrl.v_attn)
            decide(d, scale_logits(ctrl, F.reshape(u, (1, -1)), op=False))
        else:
            query = F.affine(h, ctrl.w_attn2)
            for r in run:
                u = F.affine(F.tanh(anchors[r.sources[0]][1] + query), ctrl.v_attn)
                logits = scale_logits(ctrl, F.concatenate(0.0 * u, u, axis=1), op=False)
                logp = decide(r, logits)
                kls.append(F.sum(F.exp(logp) * (logp - log_target)))
        g.groups.append(run)
        g.group_probs.append([g.probs[r.label] for r in run])
        g.group_sinks.append(_sink(g.group_probs[-1]))
        if cut:  # what follows depends on this step's draws: the next segment
            state = [(_unlinked(h), _unlinked(c)) for h, c in state]
            anchors = {k: (_unlinked(a), _unlinked(b)) for k, (a, b) in anchors.items()}
        if d.kind == "op":
            x = F.affine(g.choices[d.label], ctrl.heads[ctrl.head_of[d.names]].w_emb)
        else:
            values = _cat([anchors[s][0] for r in run for s in r.sources], axis=0)
            if d.kind == "input":
                x = F.affine(g.choices[d.label], values)
            else:
                masks = [F.slice(g.choices[r.label], (0, 1), (1, 2)) for r in run]
                mask = _cat(masks, axis=1)
                x = F.affine(mask, values) / (1.0 + F.sum(mask, axis=1, keepdims=True))
        i += len(run)
        if (i >= len(specs) or specs[i].node != d.node) and d.node in ctrl.anchored:
            anchor(d.node, x)
            x = ctrl.g_emb
    if cut:
        return g
    g.log_prob = _add(log_probs)
    g.entropy = _add(entropies)
    g.penalty = _add(kls) / float(len(kls)) if kls else F.sum(0.0 * g.log_prob)
    g.result = _sink([g.log_prob, g.entropy, g.penalty, *g.probs.values()])
    g.advantage = nn.Variable(())
    bonus, penalty = ctrl.cfg.entropy_weight * g.entropy, ctrl.cfg.skip_weight * g.penalty
    g.loss = -g.advantage * g.log_prob - bonus + penalty
    return g


def _unlinked(variable: nn.Variable) -> nn.Variable:
    return variable.get_unlinked_variable(need_grad=False)


def _add(variables: Sequence[nn.Variable]) -> nn.Variable:
    return F.add_n(*variables) if len(variables) > 1 else variables[0]


def _cat(variables: Sequence[nn.Variable], axis: int) -> nn.Variable:
    return F.concatenate(*variables, axis=axis) if len(variables) > 1 else variables[0]


def _sink(variables: Sequence[nn.Variable]) -> nn.Variable:
    return F.sink(*variables) if len(variables) > 1 else variables[0]
