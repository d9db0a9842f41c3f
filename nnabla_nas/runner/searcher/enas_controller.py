"""The ENAS controller: an LSTM that samples a space's decisions in order (Pham et al.,
"Efficient Neural Architecture Search via Parameter Sharing", ICML 2018, sections 2.2-2.4).

What a space offers (:mod:`nnabla_nas.contrib.decisions`): one
:class:`~nnabla_nas.contrib.decisions.Decision` per label, with a ``kind``. The controller runs
one LSTM step per decision, fed with the previous step's feedback (``g_emb``, a learned vector, at
the start):

- ``op``: logits ``W_soft h`` over the candidates (one softmax and one embedding per set of
  candidate names, shared by every decision with the same names); feedback: the chosen
  candidate's embedding.
- ``input``: content-based attention over the anchors of the candidate nodes,
  ``u_j = v . tanh(W_1 anchor_j + W_2 h)``; feedback: the chosen node's anchor.
- ``skip``: the consecutive skip decisions of one node share one step (one query ``h``); each is
  an independent Bernoulli with ``P(present) = sigmoid(v . tanh(W_1 anchor_src + W_2 h))``,
  written as the two logits ``[0, u]``; feedback: the mean of the chosen anchors, divided by
  ``1 + count`` as the reference code does (zero when none).
- A node that a later decision takes as a source gets an *anchor*: one more LSTM step after its
  last decision, whose output ``h`` (and ``W_1 h``) is kept; the next step is then fed ``g_emb``.
  A source node without decisions (a stem, a cell's input) gets its anchor from a step fed
  ``g_emb`` when it is first needed.

Every logit vector ``u`` becomes ``c * tanh(u / T)`` (temperature ``T``, tanh constant ``c``;
operation logits use ``c / op_tanh_reduce``) before the softmax. The whole sequence is one static
nnabla graph, built once, whose inputs are a one-hot vector per decision: sampling forwards one
step's probabilities at a time, draws with the ``numpy.random.RandomState`` passed in (one
uniform draw per decision, in order) and fills the one-hot in. A :class:`ControllerSample` holds
the graph's ``log_prob`` (sum over the decisions), ``entropy`` (sum of every decision's exact
entropy) and ``skip_penalty`` (mean over the skip decisions of ``KL(Bernoulli(p) ||
Bernoulli(skip_target))``): nn.Variables differentiable in the controller's parameters, holding
that architecture's values until the controller evaluates another one (:meth:`~EnasController.
sample`, :meth:`~EnasController.score` or :meth:`~EnasController.loss`).

The REINFORCE loss (:meth:`EnasController.loss`) is ``-(R - b) * log_prob - entropy_weight *
entropy + skip_weight * skip_penalty``: descending it raises the log-probability of architectures
better than the baseline ``b``, raises the entropy and pulls every skip probability towards
``skip_target``. ``b`` is a :class:`~.reinforce.MovingAverageBaseline` (``baseline_decay``).

State: the controller holds only its parameters (``get_parameters()``, initialised uniformly in
``[-init_range, init_range]`` from the RandomState given to the constructor): no RNG, no
baseline. A searcher owns and must checkpoint the controller's parameters, its solver's state
(Adam in the paper), the baseline's ``state_dict()`` and the sampling RandomState's
``get_state()``; restoring these four makes the next samples and updates identical.

Defaults (:class:`EnasControllerConfig`): the paper's temperature 5.0, tanh constant 2.5, skip
target 0.4, skip weight 0.8, initialisation in [-0.1, 0.1] and LSTM of 100 units; the reference
code's baseline decay 0.99 and entropy weight 1e-4 (its CIFAR-10 scripts). The paper trains the
controller with Adam at a learning rate of 0.00035 (the searcher's optimizer section).

Not implemented: the paper adds the entropy to the reward (``R + lambda * H``, multiplying the
log-probability); here it is a direct term of the loss with its exact gradient. The reference
code's fixed bias towards the convolutions in the micro controller (``b_soft``), its zero-valued
anchors of cell inputs and its critic option are not reproduced.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable, Mapping, Sequence

import nnabla as nn
import numpy as np

from ...contrib.decisions import Decision, check_decisions, describe_decisions
from ...module import Module, ModuleList, Parameter
from .enas_config import EnasControllerConfig
from .enas_graph import ControllerGraph, LSTMCell, OpHead, build_graph

__all__ = ["ControllerSample", "EnasController", "EnasControllerConfig"]

logger = logging.getLogger(__name__)


@dataclass
class ControllerSample:
    """One architecture drawn (or scored) by the controller.

    Attributes:
        architecture: ``label -> candidate index``, in decision order.
        log_prob: scalar nn.Variable, the sum of the decisions' log-probabilities.
        entropy: scalar nn.Variable, the sum of the decisions' entropies.
        skip_penalty: scalar nn.Variable, the mean KL of the skip decisions (0 without any).
        probabilities: ``label -> the candidates' probabilities`` (numpy) as sampled.
        skip_count: skip connections made; ``skip_rate``: their share of the skip decisions.
    """

    architecture: OrderedDict[str, int]
    log_prob: nn.Variable
    entropy: nn.Variable
    skip_penalty: nn.Variable
    probabilities: OrderedDict[str, np.ndarray]
    skip_count: int
    skip_rate: float


class EnasController(Module):
    """The ENAS controller for a list of decisions (see the module docstring).

    Args:
        decisions: the space's decisions, in order (:func:`describe_decisions` of a model).
        cfg: the constants (default: the paper's).
        rng: initialises the parameters (default ``RandomState(0)``); sampling uses the
            RandomState given to :meth:`sample`.

    Raises:
        ConfigError: an impossible constant. ValueError: decisions a controller cannot follow.
    """

    def __init__(
        self,
        decisions: Sequence[Decision],
        cfg: EnasControllerConfig | None = None,
        rng: np.random.RandomState | None = None,
    ) -> None:
        cfg = EnasControllerConfig() if cfg is None else cfg
        cfg.check()
        decisions = list(decisions)
        if not decisions:
            raise ValueError("the space has no decisions for the controller to sample")
        check_decisions(decisions)
        self.cfg = cfg
        self.specs = tuple(decisions)
        rng = np.random.RandomState(0) if rng is None else rng
        r, size = cfg.init_range, cfg.lstm_size

        def init(shape: tuple) -> np.ndarray:
            return rng.uniform(-r, r, shape)

        self.lstm = ModuleList(LSTMCell(size, init) for _ in range(cfg.lstm_layers))
        self.g_emb = Parameter((1, size), initializer=init((1, size)))
        self.head_of: dict[tuple[str, ...], int] = {}
        heads = []
        for d in decisions:
            if d.kind == "op" and d.names not in self.head_of:
                self.head_of[d.names] = len(heads)
                heads.append(OpHead(size, len(d.names), init))
        self.heads = ModuleList(heads)
        if any(d.kind != "op" for d in decisions):
            self.w_attn1 = Parameter((size, size), initializer=init((size, size)))
            self.w_attn2 = Parameter((size, size), initializer=init((size, size)))
            self.v_attn = Parameter((size, 1), initializer=init((size, 1)))
        self.anchored = {s for d in decisions for s in d.sources}
        self._num_skips = sum(d.kind == "skip" for d in decisions)

    @classmethod
    def for_model(
        cls, model: Any, cfg: EnasControllerConfig | None = None, rng: Any = None
    ) -> EnasController:
        """The controller of a space's decisions (:func:`describe_decisions`)."""
        return cls(describe_decisions(model), cfg, rng)

    # ------------------------------------------------------------------ sampling
    def sample(self, rng: np.random.RandomState) -> ControllerSample:
        """Draws one architecture with ``rng`` (one draw per decision, in order)."""
        return self._decode(lambda p: _draw(rng, p))

    def greedy(self) -> ControllerSample:
        """The greedy decoding: at every step the most probable candidate (the first on ties),
        fed back as a sample would be. The architecture whose every decision is the mode of its
        conditional distribution; not necessarily the most probable architecture overall."""
        return self._decode(lambda p: int(np.argmax(p)))

    def _decode(self, pick: Callable[[np.ndarray], int]) -> ControllerSample:
        sampler = self._graph().sampler
        for group, probs, sink in zip(sampler.groups, sampler.group_probs, sampler.group_sinks):
            sink.forward()
            for d, p in zip(group, probs):
                self._set_choice(d, pick(p.d.reshape(-1)))
        return self._result()

    def score(self, architecture: Mapping[str, int]) -> ControllerSample:
        """The log-probability, entropy and skip penalty of a given architecture.

        Raises:
            KeyError: a label is missing. ValueError: an index is out of range.
        """
        for d in self.specs:
            index = int(architecture[d.label])
            if not 0 <= index < len(d.names):
                raise ValueError(f"{d.label}: candidate {index} of {len(d.names)}")
            self._set_choice(d, index)
        return self._result()

    def loss(
        self, sample: ControllerSample | Mapping[str, int], reward: float, baseline: float
    ) -> nn.Variable:
        """``-(reward - baseline) * log_prob - entropy_weight * entropy + skip_weight *
        skip_penalty`` for ``sample``'s architecture (a sample, or ``label -> index``): a
        scalar nn.Variable, already forwarded (call ``backward()``; gradients accumulate into
        the parameters' ``.g``)."""
        graph = self._graph()
        arch = sample.architecture if isinstance(sample, ControllerSample) else sample
        for d in self.specs:
            self._set_choice(d, arch[d.label])
        graph.advantage.d = float(reward) - float(baseline)
        graph.loss.forward()
        return graph.loss

    def _set_choice(self, d: Decision, index: int) -> None:
        onehot = np.zeros((1, len(d.names)), np.float32)
        onehot[0, index] = 1.0
        self._graph().choices[d.label].d = onehot
        self._chosen[d.label] = index

    def _result(self) -> ControllerSample:
        graph = self._graph()
        graph.result.forward()
        arch = OrderedDict((d.label, self._chosen[d.label]) for d in self.specs)
        probs = OrderedDict((k, v.d.reshape(-1).astype(np.float64)) for k, v in graph.probs.items())
        count = sum(arch[d.label] for d in self.specs if d.kind == "skip")
        rate = count / self._num_skips if self._num_skips else 0.0
        return ControllerSample(
            arch, graph.log_prob, graph.entropy, graph.penalty, probs, count, rate
        )

    def _graph(self) -> ControllerGraph:
        """The controller's static graphs, built once (:func:`~.enas_graph.build_graph`): the
        full graph and the sampling graph, on the same one-hot inputs."""
        graph = self.__dict__.get("_graph_cache")
        if graph is None:
            graph = build_graph(self)
            graph.sampler = build_graph(self, graph.choices)
            self.__dict__["_graph_cache"] = graph
            self._chosen: dict[str, int] = {}
        return graph


def _draw(rng: np.random.RandomState, probs: np.ndarray) -> int:
    """``rng.choice(len(probs), p=probs)`` without its checks: one uniform draw, the same
    stream and result."""
    cdf = np.cumsum(probs, dtype=np.float64)
    cdf /= cdf[-1]
    return int(cdf.searchsorted(rng.random_sample(), side="right"))
