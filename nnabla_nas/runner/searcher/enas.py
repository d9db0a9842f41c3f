"""ENAS (Pham, Guan, Zoph, Le and Dean, "Efficient Neural Architecture Search via Parameter
Sharing", ICML 2018) as a searcher, for any space with choices: the ENAS spaces' operation,
input and skip decisions (:mod:`nnabla_nas.contrib.decisions`), and any other space as a
sequence of operation decisions (mobilenet, darts/pnas, zoph).

The controller (:mod:`.enas_controller`): an LSTM that samples the decisions in order; its
parameters are :meth:`EnasSearcher.parameters` (checkpointed with the model's) and the ``valid``
optimizer trains them (the paper: Adam, learning rate 0.00035: set ``optimizer.valid``).

Weight step (the shared weights ``w``)
    One architecture sampled from the controller per step (the paper's ``M = 1``), the same
    for every mini-batch; only its path is built and trained, with the phase's optimizer
    (warm-up epochs included, with the untrained controller).

Controller phases (``theta``), alternating as in the paper
    The paper trains ``w`` for a pass over the training data, then ``theta`` for a fixed
    number of steps (2000), ``w`` fixed. Here the loop's architecture step, called after every
    weight step, starts a phase every ``controller_every`` calls (0: at the last step of every
    epoch) and runs ``controller_steps`` updates in it. A phase needs that many architecture
    batches at once: the searcher reads them from the architecture split itself, in the order
    the loop would (its own position, checkpointed); the batch the loop hands over is not
    used. Each update samples ``num_samples`` architectures, rewards each on one batch
    (forward only, training mode: batch statistics, as the reference code's reward; the
    running statistics are restored after the phase), ``R = (1 - error) * hardware factor``
    (:mod:`.reward`: ``regularizer`` sections, AutoGluon's ``(reference / latency) ** w`` by
    default), moves the moving-average baseline ``b <- decay b + (1 - decay) R`` once per
    sample (starting at the first reward) and descends the mean over the samples of the
    controller's loss ``-(R - b) log p - entropy_weight * H + skip_weight * KL`` (entropy bonus,
    macro skip penalty; temperature and tanh constant in the logits: the controller's keys).

Export, evaluation and the final architecture
    Until the end, every epoch exports the controller's greedy decoding (every decision its
    most probable candidate given the previous ones), with the *marginal* probability of
    every candidate estimated from ``marginal_samples`` architectures drawn at the export
    (from a generator of their own: exporting draws nothing from the search's generator);
    the loop evaluates that architecture with its batch-norm statistics recalibrated
    (:mod:`.recalibration`). After the last controller phase of the run, as in the paper,
    ``num_final_samples`` architectures are sampled from the trained controller, each scored on
    the whole architecture split (:mod:`.candidates`: recalibrated statistics, inference mode;
    the paper scores each on one validation mini-batch), and the best is the result: it is
    exported and evaluated from then on. ``results.json`` lists them (``final_candidates``,
    ``best_final_candidate``) and every controller phase's mean reward, error, baseline,
    entropy and skip rate (``controller_phases``).

State (exact resume): the controller's parameters and the ``valid`` optimizer's state (with the
model's), the searcher's RandomState (every architecture drawn), the baseline, the reading
position in the architecture split, the updates done and the final selection.

Data-parallel processes: every rank samples the same architectures (same generator, same
controller); the samples of an update are split across the ranks (each rewards its share on
the whole batch, gathered), the rewards gathered, so every rank forms the same gradient; the
final candidates are split likewise.

Not implemented: the paper adds the entropy to the reward (here a term of the loss with its
exact gradient, see :mod:`.enas_controller`); its recurrent cells (Penn Treebank) and the
reference code's critic; rewards on the validation set proper (the architecture split is a part
of the training set, as for every searcher here).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterator, Mapping

import nnabla as nn
import numpy as np

from ...module import use_architecture
from ..algorithm import RunContext
from ..batches import ArchBatches
from ..steps import Batch
from .base import Searcher
from .candidates import CandidateEvaluator, best_index, records_table
from .enas_config import EnasConfig
from .enas_controller import EnasController
from .export import ArchExport
from .recalibration import preserved_statistics
from .reinforce import MovingAverageBaseline
from .reward import HardwareReward

__all__ = ["EnasConfig", "EnasSearcher"]

logger = logging.getLogger(__name__)


@dataclass
class _Position:
    """The searcher's reading position in the architecture split (for :class:`ArchBatches`)."""

    arch_position: tuple[int, int] = (0, 0)


def _generator(*key: int) -> np.random.RandomState:
    return np.random.RandomState(np.random.SeedSequence(list(key)).generate_state(4))


class EnasSearcher(Searcher):
    """ENAS (see the module docstring); options: :class:`~.enas_config.EnasConfig`."""

    Config = EnasConfig

    def setup(self, ctx: RunContext) -> OrderedDict[str, nn.Variable]:
        super().setup(ctx)
        opts = self.options
        #: The controller (its parameters initialised from a seed-derived generator).
        self.controller = EnasController.for_model(
            self.model, opts.controller(), _generator(self.seed, 2)
        )
        self._params = OrderedDict(
            (f"enas_controller/{k}", p) for k, p in self.controller.get_parameters().items()
        )
        self.baseline = MovingAverageBaseline(opts.baseline_decay)
        reward = HardwareReward(ctx.regularizers, self.model, opts.hardware_reward, ctx.comm)
        self.evaluator = CandidateEvaluator(ctx, opts.bn_recalibration_batches, reward)
        self.position = _Position()
        self.reader = ArchBatches(ctx.data.arch, self.position)
        self.updates = 0
        self.arch_calls = 0
        self.phases: list[dict[str, float]] = []
        #: The final selection: the chosen architecture, every record, the best one's index.
        self.final: OrderedDict[str, int] | None = None
        self.final_records: list[dict[str, Any]] = []
        self.final_best: int | None = None
        self._marginals: tuple[int, Any] | None = None
        return self._params

    def parameters(self) -> OrderedDict[str, nn.Variable]:
        """The controller's parameters (keys ``enas_controller/...``)."""
        return self._params

    # ------------------------------------------------------------------ weight step
    def train_step(self, batch: Batch, phase: str) -> dict[str, float]:
        """Trains the path of one architecture sampled from the controller."""
        arch = self.controller.sample(self.rng).architecture
        opt = self.ctx.optimizers[phase]
        opt.zero_grad()
        with use_architecture(self.model, arch):
            metrics = self.ctx.steps.accumulate(batch, cache=False, key="train")
        opt.update(self.ctx.phase_iteration(phase))
        return metrics

    # ------------------------------------------------------------------ controller
    def arch_step(self, batch: Batch, weight_batch: Batch) -> dict[str, float]:
        """A controller phase every ``controller_every`` calls; the final selection after the
        last call of the run. Returns nothing (a phase's figures go to the log and results)."""
        self.arch_calls += 1
        steps = len(self.ctx.data.train)
        if self.arch_calls % (self.options.controller_every or steps) == 0:
            self.train_controller()
        if self.arch_calls == self.ctx.options.epochs * steps:
            self.select_final()
        return {}

    def rewards(self, archs: list[Mapping[str, int]], batch: Batch) -> list[tuple[float, float]]:
        """``(reward, error)`` of each architecture on ``batch`` (the ranks' shares gathered)."""
        ctx = self.ctx
        measured = {}
        for s in range(self.comm.rank, len(archs), self.comm.size):
            with use_architecture(self.model, archs[s]):
                m = ctx.steps.accumulate(batch, cache=False, key="controller", backward=False)
            measured[s] = ((1.0 - m["error"]) * self.evaluator.reward.factor(archs[s]), m["error"])
        if self.comm.size > 1:
            for part in self.comm.all_gather(measured):
                measured.update(part)
        return [measured[s] for s in range(len(archs))]

    def controller_update(self, batch: Batch) -> dict[str, float]:
        """One update of the controller on ``batch`` (see the module docstring)."""
        archs, figures = [], []
        for _ in range(self.options.num_samples):
            sample = self.controller.sample(self.rng)  # its figures hold until the next one
            archs.append(sample.architecture)
            figures.append((float(sample.entropy.d), sample.skip_rate))
        measured = self.rewards(archs, batch)
        opt = self.ctx.optimizers["valid"]
        opt.zero_grad()
        for arch, (reward, _) in zip(archs, measured):
            baseline = self.baseline.update(reward)
            self.controller.loss(arch, reward, baseline).backward(1.0 / len(archs))
        opt.update()
        self.updates += 1
        return {
            "reward": float(np.mean([r for r, _ in measured])),
            "error": float(np.mean([e for _, e in measured])),
            "baseline": float(self.baseline.value),
            "entropy": float(np.mean([h for h, _ in figures])),
            "skip_rate": float(np.mean([k for _, k in figures])),
        }

    def train_controller(self) -> dict[str, float]:
        """A phase of ``controller_steps`` updates, each on the next architecture batch."""
        ctx, mini = self.ctx, self.ctx.options.mini_batch_valid
        sums: dict[str, float] = {}
        with preserved_statistics(self.model):
            for _ in range(self.options.controller_steps):
                x, y = self.reader.next()
                local = ctx.steps.split(x, y, mini or len(x))
                figures = self.controller_update(ctx.steps.whole_batch(local, mini or len(x)))
                for k, v in figures.items():
                    sums[k] = sums.get(k, 0.0) + v
        phase = {k: v / self.options.controller_steps for k, v in sums.items()}
        phase["baseline"] = float(self.baseline.value)
        self.phases.append({"updates": self.updates, **phase})
        logger.info("controller phase %d (%d updates): %s", len(self.phases), self.updates,
                    " ".join(f"{k} {v:.4f}" for k, v in phase.items()))  # fmt: skip
        return phase

    def select_final(self) -> None:
        """Samples ``num_final_samples`` architectures; the best on the architecture split is
        the result."""
        self.reader.reset()  # no controller phase after this one
        drawn = [self.controller.sample(self.rng).architecture for _ in
                 range(self.options.num_final_samples)]  # fmt: skip
        unique = list({tuple(a.values()): a for a in drawn}.values())
        self.final_records = self.evaluator.evaluate(unique)
        self.final_best = best_index(self.final_records)
        self.final = OrderedDict(unique[self.final_best])
        logger.info("final selection: %d distinct of %d sampled, best #%d\n%s", len(unique),
                    len(drawn), self.final_best, records_table(self.final_records))  # fmt: skip

    # ------------------------------------------------------------------ export
    def architecture(self) -> OrderedDict[str, int]:
        """The final architecture once selected, else the controller's greedy decoding."""
        if self.final is not None:
            return OrderedDict(self.final)
        return self.controller.greedy().architecture

    def marginals(self) -> OrderedDict[str, np.ndarray] | None:
        """Every candidate's marginal probability under the controller, estimated from
        ``marginal_samples`` draws of a generator seeded by the updates done (the same
        numbers at every call between two updates); None when ``marginal_samples`` is 0."""
        n = self.options.marginal_samples
        if n == 0:
            return None
        if self._marginals is None or self._marginals[0] != self.updates:
            rng = _generator(self.seed, 3, self.updates)
            counts = OrderedDict((d.label, np.zeros(len(d.names))) for d in self.controller.specs)
            for _ in range(n):
                for label, index in self.controller.sample(rng).architecture.items():
                    counts[label][index] += 1.0
            self._marginals = (self.updates, OrderedDict((k, c / n) for k, c in counts.items()))
        return OrderedDict((k, v.copy()) for k, v in self._marginals[1].items())

    def evaluating(self) -> Iterator[None]:
        """The exported architecture, its batch-norm statistics recalibrated."""
        return self.evaluator.network(self.architecture())

    def export(self) -> ArchExport:
        """The greedy decoding (the final architecture once selected) and the estimated
        marginals."""
        return ArchExport(self.architecture(), self.marginals())

    def results(self, export: ArchExport) -> dict[str, Any]:
        return {
            "controller_phases": [dict(p) for p in self.phases],
            "controller_updates": self.updates,
            "final_candidates": [dict(r) for r in self.final_records],
            "best_final_candidate": self.final_best,
        }

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            **self.baseline.state_dict(),
            "arch_position": list(self.position.arch_position),
            "updates": self.updates,
            "arch_calls": self.arch_calls,
            "phases": [dict(p) for p in self.phases],
            "final": None if self.final is None else dict(self.final),
            "final_records": [dict(r) for r in self.final_records],
            "final_best": self.final_best,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.baseline.load_state_dict(state)
        self.position.arch_position = tuple(int(v) for v in state["arch_position"])
        self.reader.reset()  # the next batch from the restored position
        self.updates = int(state["updates"])
        self.arch_calls = int(state["arch_calls"])
        self.phases = [dict(p) for p in state["phases"]]
        final = state["final"]
        self.final = None if final is None else OrderedDict((k, int(v)) for k, v in final.items())
        self.final_records = [dict(r) for r in state["final_records"]]
        self.final_best = state["final_best"]
        self._marginals = None
