"""One-shot random search: the baseline any NAS result must beat (Li and Talwalkar, "Random
Search and Reproducibility for Neural Architecture Search", UAI 2019; Bender et al.,
"Understanding and Simplifying One-Shot Architecture Search", ICML 2018), with the single-path
training of Guo et al. ("Single Path One-Shot NAS with Uniform Sampling", ECCV 2020) or the
strict fairness of FairNAS (Chu et al., ICCV 2021). For any space with choices.

Weight step
    One path per decision (:mod:`.random_schedule`: ``sampling: "uniform"``, or ``"fair"``:
    every candidate of a decision once per round of ``n`` steps), the same for every
    mini-batch of the batch; only that path is built and trained, with the phase's optimizer
    (warm-up epochs included).

Candidates and when they are evaluated
    ``num_candidates`` distinct architectures are drawn uniformly once, at the start, from a
    generator of their own (``seed``-derived: the same set for the whole run, on every rank,
    and after a resume). They are evaluated (:mod:`.candidates`: batch-norm statistics
    recalibrated on ``bn_recalibration_batches`` weight-split batches, then scored on the whole
    architecture split; ``score = (1 - error) * hardware factor`` of :mod:`.reward`) after the
    last weight step of the last epoch and, with ``evaluate_every: k``, also after every
    ``k``-th epoch (counted after warm-up), to follow the ranking as the supernet trains. The
    architecture split drives nothing else here: the architecture step of the loop is a no-op
    between evaluations. The best candidate of the latest evaluation is exported and evaluated
    by the loop (with its recalibrated statistics); before the first evaluation, candidate 0
    stands in (the ``arch.h5`` of those epochs is a random draw, not a result).

Results (``results.json``): ``candidates``, every candidate's record (architecture by name,
score, validation error and loss, hardware factor, parameters, FLOPs, memory, each
regularizer's estimate) in draw order; ``best_candidate``, the exported one's index;
``candidates_epoch``, the epoch of that evaluation. The candidates are split across
data-parallel processes.

Not implemented: FairNAS' accumulation of the gradients of all ``n`` paths of a round on one
batch before a single update (here each step of a round is its own update on its own batch);
evolutionary search over the trained supernet (SPOS' second stage; the multi-trial ``supernet``
evaluator covers search over a saved supernet).
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Iterator

import numpy as np

from ...errors import ConfigError
from ...module import choice_groups, use_architecture
from ..algorithm import RunContext
from ..steps import Batch
from .base import Searcher
from .candidates import CandidateEvaluator, best_index, records_table
from .export import ArchExport
from .random_schedule import SCHEDULES, draw_candidates
from .reward import FORMS, HardwareReward

__all__ = ["RandomSearchConfig", "RandomSearcher"]

logger = logging.getLogger(__name__)


@dataclass
class RandomSearchConfig:
    """The ``searcher`` section for ``RandomSearcher``.

    Attributes:
        sampling: the weight steps' paths: ``"uniform"`` (single-path one-shot) or ``"fair"``
            (FairNAS' strict fairness).
        num_candidates: architectures drawn and evaluated (all of them when the space has no
            more).
        bn_recalibration_batches: weight-split batches each candidate's batch-norm statistics
            are recalibrated on before it is scored (0: the supernet's, as they are).
        evaluate_every: also evaluate the candidates after every ``k``-th epoch (0: after the
            last one only).
        hardware_reward: how the ``regularizer`` section enters the score: ``"ratio"``
            (``(reference / value) ** weight``) or ``"bound"`` (``min(1, bound / value) **
            weight``); see :mod:`.reward`.
    """

    sampling: str = "uniform"
    num_candidates: int = 100
    bn_recalibration_batches: int = 10
    evaluate_every: int = 0
    hardware_reward: str = "ratio"

    def check(self) -> None:
        """Raises ConfigError (naming the key) on an invalid value."""
        if self.sampling not in SCHEDULES:
            raise ConfigError(
                f"unknown sampling {self.sampling!r}; valid: {', '.join(SCHEDULES)}", "sampling"
            )
        if self.num_candidates < 1:
            raise ConfigError(f"must be >= 1, got {self.num_candidates}", key="num_candidates")
        for key in ("bn_recalibration_batches", "evaluate_every"):
            if getattr(self, key) < 0:
                raise ConfigError(f"must be >= 0, got {getattr(self, key)}", key=key)
        if self.hardware_reward not in FORMS:
            raise ConfigError(
                f"unknown form {self.hardware_reward!r}; valid: {', '.join(FORMS)}",
                key="hardware_reward",
            )


class RandomSearcher(Searcher):
    """One-shot random search (see the module docstring); options: :class:`RandomSearchConfig`."""

    Config = RandomSearchConfig

    def setup(self, ctx: RunContext) -> OrderedDict:
        super().setup(ctx)
        sizes = OrderedDict((k, len(ops[0].ops)) for k, ops in choice_groups(self.model).items())
        #: The paths of the weight steps.
        self.schedule = SCHEDULES[self.options.sampling](sizes, self.rng)
        draws = np.random.RandomState(np.random.SeedSequence([self.seed, 1]).generate_state(4))
        #: The architectures evaluated (``label -> index``), in draw order.
        self.candidates = draw_candidates(sizes, self.options.num_candidates, draws)
        reward = HardwareReward(ctx.regularizers, self.model, self.options.hardware_reward,
                                ctx.comm)  # fmt: skip
        self.evaluator = CandidateEvaluator(ctx, self.options.bn_recalibration_batches, reward)
        #: The records of the latest evaluation, the best one's index and that epoch.
        self.records: list[dict[str, Any]] = []
        self.best = 0
        self.evaluated_epoch: int | None = None
        self.arch_calls = 0
        logger.info("random search: %d candidates, %s sampling of the paths",
                    len(self.candidates), self.options.sampling)  # fmt: skip
        return OrderedDict()

    def train_step(self, batch: Batch, phase: str) -> dict[str, float]:
        """Trains the path the schedule gives (the same for every mini-batch)."""
        opt = self.ctx.optimizers[phase]
        opt.zero_grad()
        with use_architecture(self.model, self.schedule.next()):
            metrics = self.ctx.steps.accumulate(batch, cache=False, key="train")
        opt.update(self.ctx.phase_iteration(phase))
        return metrics

    def arch_step(self, batch: Batch, weight_batch: Batch) -> dict[str, float]:
        """Evaluates the candidates after the last step of a scheduled epoch; else nothing."""
        self.arch_calls += 1
        steps = len(self.ctx.data.train)
        if self.arch_calls % steps:
            return {}
        epoch, every = self.arch_calls // steps, self.options.evaluate_every
        if epoch == self.ctx.options.epochs or (every and epoch % every == 0):
            self.evaluate_candidates(epoch + self.ctx.options.warmup)
        return {}

    def evaluate_candidates(self, epoch: int) -> None:
        """Scores every candidate; the best is exported from now on."""
        self.records = self.evaluator.evaluate(self.candidates)
        self.best = best_index(self.records)
        self.evaluated_epoch = epoch
        logger.info("candidates evaluated after epoch %d: best #%d of %d\n%s", epoch, self.best,
                    len(self.records), records_table(self.records))  # fmt: skip

    def evaluating(self) -> Iterator[None]:
        """The exported candidate, its batch-norm statistics recalibrated."""
        return self.evaluator.network(self.candidates[self.best])

    def export(self) -> ArchExport:
        """The best candidate of the latest evaluation (no probabilities)."""
        return ArchExport(OrderedDict(self.candidates[self.best]))

    def results(self, export: ArchExport) -> dict[str, Any]:
        return {
            "candidates": [dict(r) for r in self.records],
            "best_candidate": self.best if self.records else None,
            "candidates_epoch": self.evaluated_epoch,
        }

    def state_dict(self) -> dict[str, Any]:
        return {
            **super().state_dict(),
            "schedule": self.schedule.state_dict(),
            "records": [dict(r) for r in self.records],
            "best": self.best,
            "evaluated_epoch": self.evaluated_epoch,
            "arch_calls": self.arch_calls,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.schedule.load_state_dict(state["schedule"])
        self.records = [dict(r) for r in state["records"]]
        self.best = int(state["best"])
        self.evaluated_epoch = state["evaluated_epoch"]
        self.arch_calls = int(state["arch_calls"])
