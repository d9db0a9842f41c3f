"""Scoring architectures of a supernet with its shared weights: what random search
(:mod:`.random_search`) and ENAS's final selection (:mod:`.enas`) share.

A candidate (``label -> candidate index``) is scored on the whole architecture split (the
run's validation loader ``data.valid``, without augmentation) in inference mode, after its
batch-norm statistics are recalibrated (:mod:`.recalibration`) on the first
``recalibration_batches`` batches of the weight split's epoch 0 (augmented as in training: the
same batches for every candidate, so that they are compared on equal terms). The supernet's
statistics come back afterwards. Its record (:meth:`CandidateEvaluator.evaluate`)::

    {"architecture": {label: candidate name}, "score": (1 - valid_error) * hardware factor,
     "valid_error": ..., "valid_loss": ..., "reward_factor": ..., "params": ...,
     "flops_macs": ..., "memory_total_bytes": ..., "<regularizer>_<figure>": ...}

with the hardware factor of :mod:`.reward` and the figures the loop reports every epoch (FLOPs,
memory and every regularizer's estimator: add a ``regularizer`` section with ``weight`` 0 to
have, e.g., the latency listed without changing the score).

Data-parallel processes split the candidates (rank ``r`` scores ``r, r + size, ...``): each
needs the whole data, so the recalibration batches are gathered once (every rank then
recalibrates on the same examples), and the architecture split is gathered once too and kept
in memory (its float32 images; with one process the loader is read as it is); the records are
gathered, so every rank holds all of them and picks the same best.
"""

from __future__ import annotations

import contextlib
import logging
from typing import Any, Iterator, Mapping, Sequence

import nnabla as nn
import numpy as np

from ...module import use_architecture
from ..hardware import HardwareReport
from .recalibration import recalibrated
from .reward import HardwareReward

__all__ = ["CandidateEvaluator", "best_index", "records_table"]

logger = logging.getLogger(__name__)


def best_index(records: Sequence[Mapping[str, Any]]) -> int:
    """The index of the record of highest ``score`` (the first on ties)."""
    return int(np.argmax([r["score"] for r in records]))


def records_table(records: Sequence[Mapping[str, Any]], top: int = 5) -> str:
    """The ``top`` records by score as text lines (for the log)."""
    order = sorted(range(len(records)), key=lambda i: -records[i]["score"])[:top]
    return "\n".join(
        f"  #{i}: score {records[i]['score']:.4f} valid error {records[i]['valid_error']:.4f} "
        f"params {records[i]['params']}"
        for i in order
    )


class CandidateEvaluator:
    """Scores architectures (see the module docstring).

    Args:
        ctx: the run's context (model, data, steps, comm, regularizers, options).
        recalibration_batches: weight-split batches the batch-norm statistics are recalibrated
            on (0: the supernet's statistics are used as they are).
        reward: the hardware factor of the score.
    """

    def __init__(self, ctx: Any, recalibration_batches: int, reward: HardwareReward) -> None:
        self.ctx = ctx
        self.recalibration_batches = int(recalibration_batches)
        self.reward = reward
        self.hardware = HardwareReport(ctx.regularizers, ctx.input_shape)
        self._recalibration: list[tuple[np.ndarray, np.ndarray]] | None = None
        self._valid: tuple[np.ndarray, np.ndarray] | None = None

    # ------------------------------------------------------------------ data
    def recalibration_data(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The recalibration batches (whole batches on every rank; read once, then kept).
        Collective with several processes: every rank calls it at the same point."""
        if self._recalibration is None:
            loader, comm = self.ctx.data.train, self.ctx.comm
            local = []
            if self.recalibration_batches > 0:
                loader.set_epoch(0)
                batches = iter(loader)
                try:
                    for _ in range(min(self.recalibration_batches, len(loader))):
                        local.append(next(batches))
                finally:
                    if hasattr(batches, "close"):  # stops a prefetch thread
                        batches.close()
            if comm.size > 1:
                steps = self.ctx.steps
                local = [steps.whole_batch([b], len(b[0]) * comm.size)[0] for b in local]
            self._recalibration = local
        return self._recalibration

    def _validation_batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        mini, comm = self.ctx.options.mini_batch_valid, self.ctx.comm
        if comm.size == 1:
            for x, y in self.ctx.data.valid:
                yield from self.ctx.steps.split(x, y, mini or len(x))
            return
        x, y = self.validation_data()
        step = mini or max(1, getattr(self.ctx.data.valid, "batch_size", len(x)) * comm.size)
        yield from self.ctx.steps.split(x, y, step)

    def validation_data(self) -> tuple[np.ndarray, np.ndarray]:
        """The whole architecture split ``(x, y)`` (several processes: gathered once, then
        kept; collective)."""
        if self._valid is None:
            parts = [(np.asarray(x), np.asarray(y)) for x, y in self.ctx.data.valid]
            shard = (np.concatenate([x for x, _ in parts]), np.concatenate([y for _, y in parts]))
            shards = self.ctx.comm.all_gather(shard) if self.ctx.comm.size > 1 else [shard]
            self._valid = (
                np.concatenate([x for x, _ in shards]),
                np.concatenate([y for _, y in shards]),
            )
        return self._valid

    # ------------------------------------------------------------------ networks
    @contextlib.contextmanager
    def network(self, architecture: Mapping[str, int]) -> Iterator[None]:
        """The network of ``architecture`` with its recalibrated statistics (those of the
        supernet again after the block)."""
        model = self.ctx.model
        with use_architecture(model, architecture):
            if self.recalibration_batches <= 0:
                yield
                return
            mini = self.ctx.options.mini_batch_train
            with recalibrated(model, self.recalibration_data(), mini):
                yield

    def score(self, architecture: Mapping[str, int]) -> dict[str, Any]:
        """The record of one architecture, evaluated by this process alone."""
        model, steps = self.ctx.model, self.ctx.steps
        training = model.training
        model.apply(training=False)
        loss_sum = err_sum = 0.0
        count = 0
        try:
            with self.network(architecture):
                graphs: dict[tuple, Any] = {}
                for x, y in self._validation_batches():
                    graph = graphs.get(x.shape)
                    if graph is None:
                        graph = graphs[x.shape] = steps.graph("candidate", x.shape, model, False)
                    gx, gy, _, loss, error = graph
                    gx.d, gy.d = x, y
                    nn.forward_all([loss, error], clear_buffer=True)
                    loss_sum += float(loss.d) * len(x)
                    err_sum += float(error.d) * len(x)
                    count += len(x)
        finally:
            model.apply(training=training)
        error = err_sum / max(count, 1)
        factor = self.reward.factor(architecture)
        return {
            "architecture": dict(model.genotype(architecture)),
            "score": (1.0 - error) * factor,
            "valid_error": error,
            "valid_loss": loss_sum / max(count, 1),
            "reward_factor": factor,
            "params": int(model.num_params(architecture)),
            **self.hardware.estimate(model, architecture, log=False),
        }

    def evaluate(self, architectures: Sequence[Mapping[str, int]]) -> list[dict[str, Any]]:
        """The records of ``architectures``, in order (split across the processes; every rank
        returns all of them)."""
        comm = self.ctx.comm
        if self.recalibration_batches > 0:
            self.recalibration_data()
        if comm.size > 1:
            self.validation_data()
        mine = {i: self.score(architectures[i]) for i in range(comm.rank, len(architectures),
                                                                 comm.size)}  # fmt: skip
        if comm.size > 1:
            for part in comm.all_gather(mine):
                mine.update(part)
        return [mine[i] for i in range(len(architectures))]
