"""The loop, written once: epochs, warm-up, accumulation, clipping, logging, TensorBoard, outputs.

Every algorithm is a subclass of :class:`Runner` that implements a few hooks:

- :meth:`Runner.train_step` -- one weight update on a batch of the weight split (the default
  trains every network weight on the model as it stands: that is the :class:`Trainer`);
- :meth:`Runner.arch_step` -- one architecture update on a batch of the architecture split
  (searchers only; called after each weight step once warm-up is over);
- :meth:`Runner.eval_mode` -- a context in which the model is evaluated (a searcher evaluates
  its current best architecture);
- :meth:`Runner.on_epoch_end` -- exports (genotype, drawing, summaries).

Services for the hooks: :meth:`Runner.accumulate` runs forward and backward over the mini-batches
of one batch (gradients averaged over the batch), :meth:`Runner.log_scalars`,
:meth:`Runner.whole_batch` (the batch of all the data-parallel processes).

Data-parallel processes (``mpirun -n N``, ``docs/distributed.rst``): ``self.comm`` (a
:class:`~nnabla_nas.distributed.Communicator`) broadcasts rank 0's parameters when the algorithm
is built; every optimizer averages the gradients before its update; the loop averages the step
metrics, sums the evaluation over the ranks' shards and averages the batch-norm statistics
before evaluating and saving (:meth:`Runner.sync_statistics`); only rank 0 writes files. An
algorithm needs nothing more as long as its random draws come from ``self.rng`` (identical on
every rank) and its updates go through its optimizers.

Checkpoints and resuming (``docs/resume.rst``): after every epoch (and every
``checkpoint_every`` iterations) the loop writes ``OUTPUT/checkpoint/`` (see
:mod:`~nnabla_nas.runner.checkpoint`): the model's parameters and :meth:`Runner.state_dict`
(every optimizer, the position in the data, ``self.rng``, history, best metrics). An algorithm
with state of its own extends :meth:`Runner.state_dict` / :meth:`Runner.load_state_dict` through
``super()``. :meth:`Runner.resume` loads the last checkpoint; the resumed run then computes
exactly what the uninterrupted run would have, because every random draw comes from a state that
is saved (``self.rng``, which every choice's ``rng`` is bound to; the loaders' orders, pure
functions of ``(seed, epoch)``) or reseeded from ``(seed, iteration)`` before every step
(nnabla's global generator: dropout masks, ``F.rand`` with ``seed=-1``).

Faults: a NaN/Inf loss raises :class:`~nnabla_nas.errors.NonFiniteError` before anything is
written; an OSError while writing becomes :class:`~nnabla_nas.errors.OutputError` (the files
written before are intact: every write is atomic); SIGINT/SIGTERM finish the current step, write
a checkpoint and raise :class:`~nnabla_nas.errors.Interrupted`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import itertools
import logging
import math
import os
import re
import shutil
import signal
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping

import nnabla as nn
import numpy as np

from ..config import ExperimentConfig
from ..contrib.model import Model
from ..data import DataLoader
from ..distributed import Communicator, SingleProcess
from ..errors import CheckpointError, ConfigError, Interrupted, NonFiniteError, OutputError
from ..optimizer import Optimizer, make_optimizer, optimizer_section
from ..utils.io import atomic_write_json
from .checkpoint import CheckpointStore, remove_temporaries, rng_state, set_rng_state

logger = logging.getLogger(__name__)

_WRITER_IDS = itertools.count()  # TensorBoard event files opened by this process

Batch = list  # a list of mini-batches [(x, y), ...] forming one update
GraphBuilder = Callable[[nn.Variable], Any]


@dataclass
class DataBundle:
    """The loaders a run uses.

    Attributes:
        train: the weight split (searchers) or training part (Trainer), augmented.
        arch: the architecture split (searchers only), augmented like ``train``.
        valid: evaluation loader for the validation metric (searchers: the architecture split;
            Trainer: the held-out validation part of the training set).
        test: evaluation loader on the test set.
    """

    train: DataLoader
    valid: DataLoader
    test: DataLoader
    arch: DataLoader | None = None


@dataclass
class NoOptions:
    """An algorithm without options of its own (the ``searcher`` section must be empty)."""


class Runner:
    """Base of every algorithm: owns the loop, the optimizers and the output folder.

    Args:
        model: the network (a search space or a fixed network).
        config: the parsed experiment file.
        data: the loaders.
        output: the output folder (created by the CLI).
        options: the algorithm's own options (its ``Config`` dataclass, from ``searcher``).
        seed: seed of the algorithm's own random draws (sampling of paths, ...) and of nnabla's
            global generator at every step.
        regularizers: the hardware constraints (``regularizer`` section), label ->
            :class:`~nnabla_nas.estimator.regularizer.Regularizer`; their estimates (and the
            default FLOPs and memory ones) are reported every epoch (:meth:`estimate_hardware`).
        comm: the data-parallel processes (:mod:`nnabla_nas.distributed`; default one process):
            the initial parameters are broadcast from rank 0, the gradients averaged before
            every update, the metrics reduced, and only rank 0 writes files
            (docs/distributed.rst).
    """

    #: The algorithm's own options (the ``searcher`` section of the experiment file).
    Config: type = NoOptions
    #: Searchers split the training data and update the architecture.
    search: bool = False

    def __init__(
        self,
        model: Model,
        config: ExperimentConfig,
        data: DataBundle,
        output: str | Path,
        options: Any = None,
        seed: int = 0,
        regularizers: Mapping[str, Any] | None = None,
        comm: Communicator | None = None,
    ) -> None:
        self.comm = comm if comm is not None else SingleProcess()
        self.model = model
        self.cfg = config
        self.data = data
        self.output = Path(output)
        self.options = options if options is not None else self.Config()
        self.seed = int(seed)
        self.rng = np.random.RandomState(seed)
        # Every choice samples from the runner's RNG, which checkpoints save, never from a
        # RandomState of its own (possibly unseeded: MixedOp(rng=None)).
        for op in getattr(self.model, "choices", dict)().values():
            op.rng = self.rng
        self.iteration = 0  # weight updates done so far (all phases)
        self.epoch = 0  # the epoch in progress (= epochs completed)
        self.step = 0  # weight updates done in the epoch in progress
        self._graphs: dict[Any, tuple] = {}
        self._writer = None
        self.history: list[dict[str, float]] = []
        self.best: dict[str, float] | None = None  # the epoch with the lowest validation error
        self.last: dict[str, float] = {}  # the last epoch's metrics
        self.current_train_batch: Batch = []
        self.checkpoints = CheckpointStore(self.output / "checkpoint")
        self._epoch_sums: dict[str, float] = {}  # sums of the step metrics of the epoch so far
        self._arch_position = (0, 0)  # (epoch of the architecture loader, batches used in it)
        self._arch_iter: Iterator | None = None
        self._elapsed = 0.0  # wall time of previous sessions (resumed runs)
        self._session_start = time.time()
        self._stop_signal: int | None = None
        self._saved: tuple[tuple[int, int, int], Path] | None = None  # last checkpoint written
        self.regularizers = dict(regularizers or {})
        self.estimators = self._hardware_estimators()
        self.hardware: dict[str, float] = {}  # the last epoch's estimates (estimate_hardware)
        if self.comm.size > 1:  # every rank starts from rank 0's network
            self.comm.broadcast_parameters(self.model.get_parameters().values())
        self.optimizers = self.make_optimizers()

    # ------------------------------------------------------------------ optimizers
    def make_optimizers(self) -> dict[str, Optimizer]:
        """Builds ``train``/``warmup`` over the weights and, for searchers, ``valid`` over the
        architecture parameters, from the experiment file's ``optimizer`` sections."""
        steps = len(self.data.train)
        weights = self.model.get_net_parameters(grad_only=True)
        opts = {"train": self._optimizer("train", weights, self.cfg.epoch * steps, steps)}
        if self.cfg.warmup > 0:
            opts["warmup"] = self._optimizer("warmup", weights, self.cfg.warmup * steps, steps)
        if self.search:
            arch = self.model.get_arch_parameters()
            opts["valid"] = self._optimizer("valid", arch, self.cfg.epoch * steps, steps)
        return opts

    def _optimizer(self, name: str, params: dict, max_iter: int, per_epoch: int) -> Optimizer:
        section = optimizer_section(name, self.cfg.optimizer)
        return make_optimizer(name, section, params, max_iter, per_epoch, communicator=self.comm)

    # ------------------------------------------------------------------ services
    def split(self, x: np.ndarray, y: np.ndarray, mini: int) -> Batch:
        """Splits one batch into mini-batches of ``mini`` examples."""
        return [(x[i : i + mini], y[i : i + mini]) for i in range(0, len(x), mini)]

    def graph(self, key: Any, shape: tuple, build: GraphBuilder, cache: bool) -> tuple:
        """The graph ``(x, y, outputs, loss, error)`` for inputs of ``shape``.

        ``build(x)`` returns the model's outputs. With ``cache`` the graph is kept under ``key``
        and reused (static networks); otherwise it is built anew (sampled paths).
        """
        full_key = (key, shape)
        if cache and full_key in self._graphs:
            return self._graphs[full_key]
        x = nn.Variable(shape)
        y = nn.Variable((shape[0], 1))
        outputs = build(x)
        loss = self.model.loss(outputs, y, aux_weight=self.cfg.aux_weight)
        logits = outputs[0] if isinstance(outputs, tuple) else outputs
        error = self.model.error(logits, y)
        loss.persistent = True
        error.persistent = True
        g = (x, y, outputs, loss, error)
        if cache:
            self._graphs[full_key] = g
        return g

    def accumulate(
        self,
        batch: Batch,
        build: GraphBuilder | None = None,
        cache: bool = False,
        key: Any = "train",
        backward: bool = True,
    ) -> dict[str, float]:
        """Forward (and backward) over every mini-batch of ``batch``.

        Gradients accumulate in the parameters' ``.g`` and are averaged over the whole batch
        (each mini-batch's mean loss is back-propagated with weight ``len(mini) / len(batch)``),
        so an update on ``batch_size`` examples in ``k`` passes equals one pass on all of them.
        The caller zeroes the gradients before and updates after.

        Returns:
            the batch's mean ``loss`` and ``error``.
        """
        build = build or self.model
        total = sum(len(x) for x, _ in batch)
        loss_sum = err_sum = 0.0
        for x, y in batch:
            gx, gy, _, loss, error = self.graph(key, x.shape, build, cache)
            gx.d, gy.d = x, y
            nn.forward_all([loss, error], clear_no_need_grad=backward)
            if backward:
                loss.backward(len(x) / total, clear_buffer=True)
            loss_sum += float(loss.d) * len(x)
            err_sum += float(error.d) * len(x)
        loss_v = loss_sum / total
        if not math.isfinite(loss_v):
            raise self._non_finite(f"the {key} loss became {loss_v}")
        return {"loss": loss_v, "error": err_sum / total}

    def whole_batch(self, batch: Batch, mini: int) -> Batch:
        """The batch of all the data-parallel processes, on every one of them.

        Each process holds every ``size``-th example of a batch (see
        :class:`~nnabla_nas.data.DataLoader`'s shards): the shards are gathered and interleaved
        back into the order of one process, then split into mini-batches of ``mini``. For an
        algorithm that splits its work otherwise than by examples (REINFORCE's samples). With
        one process, ``batch`` itself.
        """
        size = self.comm.size
        if size == 1:
            return batch
        shards = self.comm.all_gather(batch)
        xs = [np.concatenate([x for x, _ in shard]) for shard in shards]
        ys = [np.concatenate([y for _, y in shard]) for shard in shards]
        x = np.empty((sum(map(len, xs)), *xs[0].shape[1:]), xs[0].dtype)
        y = np.empty((len(x), *ys[0].shape[1:]), ys[0].dtype)
        for rank in range(size):  # equal shards: rank r holds positions r, r + size, ...
            x[rank::size], y[rank::size] = xs[rank], ys[rank]
        return self.split(x, y, mini)

    def log_scalars(self, tag: str, values: dict[str, float], step: int) -> None:
        """Writes ``values`` to TensorBoard under ``tag/``."""
        for k, v in values.items():
            self.writer.add_scalar(f"{tag}/{k}", v, step)

    @property
    def writer(self) -> Any:
        """The TensorBoard writer (opened on first use; closed at every checkpoint, see
        :meth:`save_checkpoint`, so that every event before a checkpoint is on disk). Ranks
        other than 0 get a writer that drops everything."""
        if not self.comm.is_main:
            return _NULL_WRITER
        if self._writer is None:
            from tensorboardX import SummaryWriter

            # A unique file per writer: two writers opened in the same second (e.g. a run and its
            # resume in one process) must not share one, so the counter is the process's.
            suffix = f".{os.getpid()}.{next(_WRITER_IDS):06d}"  # padded: readers sort by name
            self._writer = SummaryWriter(
                str(self.output / "tensorboard"), flush_secs=10, filename_suffix=suffix
            )
        return self._writer

    def _close_writer(self) -> None:
        # Closing drains tensorboardX's queue (flush() does not): the events are all on disk.
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    # ------------------------------------------------------------------ hooks
    def train_step(self, batch: Batch, phase: str) -> dict[str, float]:
        """One weight update on ``batch`` with the optimizer of ``phase`` (train or warmup)."""
        opt = self.optimizers[phase]
        opt.zero_grad()
        metrics = self.accumulate(batch, cache=not self.search, key="train")
        opt.update(self._phase_iteration(phase))
        return metrics

    def arch_step(self, batch: Batch) -> dict[str, float]:
        """One architecture update (searchers)."""
        raise NotImplementedError(f"{type(self).__name__} does not update an architecture")

    @contextlib.contextmanager
    def eval_mode(self) -> Iterator[None]:
        """The model as it is evaluated (searchers: their current best architecture)."""
        yield

    def on_epoch_end(self, epoch: int, metrics: dict[str, float]) -> None:
        """Called after each epoch's evaluation (exports, summaries)."""

    def results(self) -> dict[str, Any]:
        """Algorithm-specific entries of ``results.json``."""
        return {}

    # ------------------------------------------------------------------ hardware estimates
    def _hardware_estimators(self) -> dict[str, Any]:
        """The regularizers' estimators, plus FLOPs/parameters and memory when not among them."""
        from ..estimator import FlopsEstimator, MemoryEstimator

        estimators = {label: reg.estimator for label, reg in self.regularizers.items()}
        for label, cls in (("flops", FlopsEstimator), ("memory", MemoryEstimator)):
            if label not in estimators and not any(type(e) is cls for e in estimators.values()):
                estimators[label] = cls(self.cfg.input_shape)
        return estimators

    def estimate_hardware(self, step: int) -> dict[str, float]:
        """Every estimator's figures for the evaluated (argmax) architecture, as
        ``<label>_<figure>`` (``latency_ms``, ``flops_macs``, ``memory_total_bytes``, ...):
        logged, written to TensorBoard under ``hardware/`` and kept in :attr:`hardware`.

        A default estimator (not a regularizer) that cannot handle the network is dropped with
        a warning."""
        figures: dict[str, float] = {}
        for label, est in list(self.estimators.items()):
            try:
                values = est.details(self.model)
            except (ValueError, TypeError, RuntimeError) as err:
                if label in self.regularizers:
                    raise
                logger.warning("the %s estimate is not reported: %s", label, err)
                del self.estimators[label]
                continue
            figures.update({f"{label}_{k}": float(v) for k, v in values.items()})
        if figures:
            self.log_scalars("hardware", figures, step)
            logger.info("hardware estimates of the evaluated architecture: %s",
                        ", ".join(f"{k} {v:.6g}" for k, v in figures.items()))  # fmt: skip
        self.hardware = figures
        return figures

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, loader: DataLoader, key: str) -> dict[str, float]:
        """Mean loss and error of the model over ``loader`` (inference mode); with several
        processes, over all their shards (the batch-norm statistics averaged first)."""
        self.sync_statistics()
        training = self.model.training
        self.model.apply(training=False)
        try:
            with self.eval_mode():
                loss_sum = err_sum = 0.0
                count = 0
                built: dict = {}
                mini = self.cfg.mini_batch_valid
                for x, y in loader:
                    for xm, ym in self.split(x, y, mini):
                        g = built.get(xm.shape)
                        if g is None:
                            g = built[xm.shape] = self.graph(key, xm.shape, self.model, False)
                        gx, gy, _, loss, error = g
                        gx.d, gy.d = xm, ym
                        nn.forward_all([loss, error], clear_buffer=True)
                        loss_sum += float(loss.d) * len(xm)
                        err_sum += float(error.d) * len(xm)
                        count += len(xm)
        finally:
            self.model.apply(training=training)
        if self.comm.size > 1:  # each rank evaluated its shard
            loss_sum, err_sum, count = self.comm.all_reduce(
                np.array([loss_sum, err_sum, count]), "sum"
            )
        loss_v = loss_sum / max(count, 1)
        if not math.isfinite(loss_v):
            raise self._non_finite(f"the {key} loss (evaluation) became {loss_v}", done=True)
        return {"loss": loss_v, "error": err_sum / max(count, 1)}

    # ------------------------------------------------------------------ the loop
    def _phase_iteration(self, phase: str) -> int:
        steps = len(self.data.train)
        if phase == "warmup":
            return self.iteration
        return self.iteration - self.cfg.warmup * steps

    def _arch_batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        # Endless architecture batches from the saved position: (epoch of the architecture
        # loader, batches of that epoch already used).
        epoch, used = self._arch_position
        if used >= len(self.data.arch):
            epoch, used = epoch + 1, 0
        while True:
            for i, batch in self._epoch_batches(self.data.arch, epoch, used):
                self._arch_position = (epoch, i + 1)
                yield batch
            epoch, used = epoch + 1, 0

    def _next_arch_batch(self) -> tuple[np.ndarray, np.ndarray]:
        if self._arch_iter is None:
            self._arch_iter = self._arch_batches()
        return next(self._arch_iter)

    @staticmethod
    def _epoch_batches(
        loader: DataLoader, epoch: int, start: int
    ) -> Iterator[tuple[int, tuple[np.ndarray, np.ndarray]]]:
        """``(i, batch)`` for the batches ``start, start + 1, ...`` of ``loader``'s ``epoch``.

        The batches before ``start`` (used before a resume) are drawn and dropped: drawing them
        advances the epoch's augmentation generator, so batch ``i`` is the uninterrupted one.
        """
        loader.set_epoch(epoch)
        for i, batch in enumerate(loader):
            if i >= start:
                yield i, batch

    def _seed_step(self) -> None:
        # nnabla's global generator (dropout masks, F.rand/F.randn with seed=-1) has no state that
        # can be read and saved: it is reseeded from (seed, iteration) before every step, so a
        # resumed run draws the masks of the uninterrupted one.
        state = np.random.SeedSequence([self.seed, self.iteration]).generate_state(1)[0]
        nn.random.set_function_seed(int(state % (2**31 - 1)))

    def run(self) -> dict[str, Any]:
        """Runs warm-up and the epochs from the current position (the start, or the checkpoint
        :meth:`resume` loaded); writes weights, results, TensorBoard logs and checkpoints.

        Raises:
            NonFiniteError: a loss became NaN or Inf (nothing is written after the last good
                step).
            OutputError: an output could not be written (disk full, folder not writable).
            Interrupted: SIGINT or SIGTERM arrived; the current step was finished and a
                checkpoint written.
        """
        cfg = self.cfg
        self._session_start = time.time()
        total = cfg.warmup + cfg.epoch
        steps = len(self.data.train)
        logger.info(
            "%s: %d warm-up + %d epochs of %d steps (batch %d in mini-batches of %d)",
            type(self).__name__, cfg.warmup, cfg.epoch, steps, cfg.batch_size_train,
            cfg.mini_batch_train,
        )  # fmt: skip
        if self.comm.size > 1:
            logger.info("data-parallel on %d processes: each takes %d examples of every batch",
                        self.comm.size, cfg.batch_size_train // self.comm.size)  # fmt: skip
        try:
            if self.comm.is_main:
                self.checkpoints.prepare()
                self._check_free_space()
            with self._stop_on_signals():
                while self.epoch < total:
                    self._run_epoch(total, steps)
            if self.search:
                self.save_weights()
            summary = {
                "algorithm": type(self).__name__,
                "search_space": cfg.network.search_space,
                "epochs": total,
                "warmup_epochs": cfg.warmup,
                "steps": self.iteration,
                "wall_time_s": round(self._elapsed + time.time() - self._session_start, 3),
                "final": self.last,
                "best": self.best,
                "num_parameters": int(self.model.num_params(only_active=self.search)),
                "history": self.history,
                "hardware": self.hardware,
                **self.results(),
            }
            if self.comm.is_main:
                atomic_write_json(self.output / "results.json", summary)
            self._close_writer()
        except OSError as err:
            raise self._output_error(err) from err
        finally:
            with contextlib.suppress(Exception):  # the events so far, also after a failure
                self._close_writer()
            if self._arch_iter is not None:
                self._arch_iter.close()  # stops a prefetch thread
                self._arch_iter = None
        return summary

    def _run_epoch(self, total: int, steps: int) -> None:
        """The rest of epoch ``self.epoch`` from step ``self.step``, its evaluation, exports and
        checkpoint."""
        from tqdm import tqdm

        cfg = self.cfg
        epoch = self.epoch
        phase = "warmup" if epoch < cfg.warmup else "train"
        self.model.apply(training=True)
        sums = self._epoch_sums
        bar = tqdm(
            total=steps, initial=self.step, leave=False, desc=f"epoch {epoch + 1}/{total}",
            disable=None if self.comm.is_main else True, dynamic_ncols=True,
        )  # fmt: skip
        for i, (x, y) in self._epoch_batches(self.data.train, epoch, self.step):
            self._seed_step()
            # Kept for architecture steps that also need the weight batch (DARTS 2nd order).
            self.current_train_batch = self.split(x, y, cfg.mini_batch_train)
            metrics = self.train_step(self.current_train_batch, phase)
            metrics["lr"] = self.optimizers[phase].get_learning_rate()
            if phase == "train" and self.search:
                xa, ya = self._next_arch_batch()
                arch = self.arch_step(self.split(xa, ya, cfg.mini_batch_valid))
                metrics.update({f"arch_{k}": v for k, v in arch.items()})
            if self.comm.size > 1:  # the ranks' shards together: the whole batch's metrics
                metrics = self.comm.all_reduce_dict(metrics)
                self._agree_on_stop()
            self.iteration += 1
            self.step = i + 1
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v
            self.log_scalars(phase, metrics, self.iteration)
            if self.step % cfg.print_frequency == 0 or self.step == steps:
                text = " ".join(f"{k} {v / self.step:.4f}" for k, v in sums.items())
                logger.info("epoch %d/%d (%s) step %d/%d: %s", epoch + 1, total, phase,
                            self.step, steps, text)  # fmt: skip
            bar.update(1)
            if self._stop_signal is not None:
                bar.close()
                self._interrupt()
            if cfg.checkpoint_every and self.iteration % cfg.checkpoint_every == 0:
                self.save_checkpoint()
        bar.close()
        valid = self.evaluate(self.data.valid, "valid")
        test = self.evaluate(self.data.test, "test")
        epoch_metrics = {f"train_{k}": v / steps for k, v in sums.items() if k != "lr"}
        epoch_metrics.update({f"valid_{k}": v for k, v in valid.items()})
        epoch_metrics.update({f"test_{k}": v for k, v in test.items()})
        hardware = self.estimate_hardware(epoch + 1)
        self.history.append({"epoch": epoch + 1, **epoch_metrics, **hardware})
        self.log_scalars("epoch", epoch_metrics, epoch + 1)
        logger.info(
            "epoch %d/%d done: train loss %.4f error %.4f | valid loss %.4f error %.4f | "
            "test loss %.4f error %.4f",
            epoch + 1, total, epoch_metrics["train_loss"], epoch_metrics["train_error"],
            valid["loss"], valid["error"], test["loss"], test["error"],
        )  # fmt: skip
        self.last = epoch_metrics
        if self.best is None or valid["error"] <= self.best["valid_error"]:
            self.best = {"epoch": epoch + 1, **epoch_metrics}
            if not self.search:
                self.save_weights()
        self.on_epoch_end(epoch, epoch_metrics)
        self.epoch, self.step, self._epoch_sums = epoch + 1, 0, {}
        self.save_checkpoint()
        self._agree_on_stop()
        if self._stop_signal is not None:
            self._interrupt()

    def _agree_on_stop(self) -> None:
        # A signal reaches the ranks at different steps: all stop at the first step after any
        # rank got one (a rank stopping alone would leave the others waiting forever).
        if self.comm.size > 1:
            signum = int(self.comm.all_reduce(float(self._stop_signal or 0), "max"))
            if signum and self._stop_signal is None:
                self._stop_signal = signum

    def sync_statistics(self) -> None:
        """Averages the network's parameters that are not trained (batch-norm running
        statistics) over the data-parallel processes. Each process updates them from its own
        shard, so they drift apart; this runs before evaluating and saving, so that every rank
        evaluates and saves the same network. Free with one process."""
        if self.comm.size > 1:
            stats = [p for p in self.model.get_net_parameters().values() if not p.need_grad]
            self.comm.average_parameters(stats)

    # ------------------------------------------------------------------ checkpoints
    def state_dict(self) -> dict[str, Any]:
        """The run's state apart from the model's parameters (which checkpoints save beside it).

        Values are nested dicts (string keys), lists, numbers, strings, None and numpy arrays.
        An algorithm with state of its own adds it through ``super()``::

            def state_dict(self):
                return {**super().state_dict(), "baseline": self.baseline}

            def load_state_dict(self, state):
                super().load_state_dict(state)
                self.baseline = state["baseline"]
        """
        return {
            "algorithm": type(self).__name__,
            "steps_per_epoch": len(self.data.train),
            "epoch": self.epoch,
            "step": self.step,
            "iteration": self.iteration,
            "arch_position": list(self._arch_position),
            "epoch_sums": dict(self._epoch_sums),
            "rng": rng_state(self.rng),
            "optimizers": {name: opt.state_dict() for name, opt in self.optimizers.items()},
            "history": [dict(h) for h in self.history],
            "best": None if self.best is None else dict(self.best),
            "last": dict(self.last),
            "hardware": dict(self.hardware),
            "elapsed": self._elapsed + time.time() - self._session_start,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restores a :meth:`state_dict` (of the same algorithm on the same data).

        Raises:
            CheckpointError: the state is of another algorithm, other data or other optimizers.
        """
        if state["algorithm"] != type(self).__name__:
            raise CheckpointError(
                f"the checkpoint was written by {state['algorithm']}, not {type(self).__name__}"
            )
        steps = len(self.data.train)
        if state["steps_per_epoch"] != steps:
            raise CheckpointError(
                f"the checkpoint was written with {state['steps_per_epoch']} steps per epoch; "
                f"the data now gives {steps}: the dataset or the batch size changed"
            )
        if set(state["optimizers"]) != set(self.optimizers):
            raise CheckpointError(
                f"the checkpoint has the optimizers {sorted(state['optimizers'])}, this run "
                f"{sorted(self.optimizers)}"
            )
        for name, opt in self.optimizers.items():
            opt.load_state_dict(state["optimizers"][name])
        set_rng_state(self.rng, state["rng"])
        self.epoch, self.step = int(state["epoch"]), int(state["step"])
        self.iteration = int(state["iteration"])
        self._arch_position = (int(state["arch_position"][0]), int(state["arch_position"][1]))
        self._arch_iter = None
        self._epoch_sums = {k: float(v) for k, v in state["epoch_sums"].items()}
        self.history = [dict(h) for h in state["history"]]
        self.best = None if state["best"] is None else dict(state["best"])
        self.last = dict(state["last"])
        self.hardware = dict(state["hardware"])
        self._elapsed = float(state["elapsed"])
        self._session_start = time.time()

    def save_checkpoint(self) -> Path:
        """Writes a checkpoint of the current position into ``OUTPUT/checkpoint/``; returns its
        folder. The TensorBoard writer is closed first (its events are then all on disk; the next
        event opens a new file) and the size of every event file is recorded.

        With several processes rank 0 writes it (every rank holds the same state) and the
        others return the checkpoint folder.

        Raises:
            NonFiniteError: a parameter holds NaN or Inf (nothing is written).
        """
        self.sync_statistics()
        position = (self.epoch, self.step, self.iteration)
        params = OrderedDict(
            (k, np.array(v.d, copy=True)) for k, v in self.model.get_parameters().items()
        )
        for key, value in params.items():
            if not np.all(np.isfinite(value)):
                raise self._non_finite(f"parameter {key} holds NaN or Inf", done=True)
        if not self.comm.is_main:
            self._saved = (position, self.checkpoints.folder)
            return self.checkpoints.folder
        self._close_writer()
        state = {"runner": self.state_dict(), "tensorboard": self._event_files()}
        info = {"epoch": self.epoch, "step": self.step, "iteration": self.iteration}
        path = self.checkpoints.save(state, params, info)
        self._saved = (position, path)
        logger.debug("checkpoint %s written", path)
        return path

    def resume(self) -> bool:
        """Loads the last checkpoint of the output folder: :meth:`run` then continues from it.

        Event files written after the checkpoint are cut back to their size at the checkpoint
        (TensorBoard shows no step twice). Without a checkpoint (the run stopped before its
        first one) the run starts from the beginning.

        Returns:
            True when a checkpoint was loaded.

        Raises:
            CheckpointError: the checkpoint is unreadable or belongs to another run.
            ConfigError: ``epoch`` is now smaller than the epochs the checkpoint has done.
        """
        info = loaded = None
        if self.comm.is_main:  # rank 0 reads the checkpoint, every rank loads it
            info = self.checkpoints.latest()
            self.checkpoints.cleanup()
            remove_temporaries(self.output)
            loaded = None if info is None else self.checkpoints.load(info)
        info, loaded = self.comm.broadcast((info, loaded))
        if info is None:
            logger.warning(
                "no checkpoint in %s yet: the run starts again from the beginning",
                self.checkpoints.folder,
            )
            self._restore_event_files({})
            return False
        saved, params = loaded
        state = saved["runner"]
        done = int(state["epoch"]) - self.cfg.warmup
        if done > self.cfg.epoch:
            raise ConfigError(
                f"the checkpoint {info['path']} has done {done} epochs after warm-up; "
                f"epoch must be at least {done} to resume it, got {self.cfg.epoch}",
                key="epoch",
            )
        own = self.model.get_parameters()
        missing = [k for k in own if k not in params]
        if missing or len(params) != len(own):
            raise CheckpointError(
                f"the checkpoint {info['path']} holds other parameters than this network "
                f"(e.g. missing {missing[:3]}): it belongs to another network"
            )
        self.model.set_parameters(params)
        self.load_state_dict(state)
        self._restore_event_files(saved["tensorboard"])
        self._saved = ((self.epoch, self.step, self.iteration), Path(info["path"]))
        logger.info("resumed from %s (%s)", info["path"], self._describe(self._saved[0]))
        return True

    def _event_files(self) -> dict[str, int]:
        folder = self.output / "tensorboard"
        if not folder.is_dir():
            return {}
        return {
            p.relative_to(folder).as_posix(): p.stat().st_size
            for p in sorted(folder.rglob("events.out.tfevents.*"))
        }

    def _restore_event_files(self, sizes: dict[str, int]) -> None:
        # Events after the checkpoint are dropped by cutting the files back: TensorBoard's own
        # purge_step cannot be used, because per-epoch tags count epochs, not iterations.
        folder = self.output / "tensorboard"
        if not self.comm.is_main or not folder.is_dir():
            return
        for path in sorted(folder.rglob("events.out.tfevents.*")):
            size = sizes.get(path.relative_to(folder).as_posix())
            if size is None:
                path.unlink()
            elif path.stat().st_size > size:
                os.truncate(path, size)

    def last_checkpoint_text(self) -> str:
        """Where the last good checkpoint is, for messages."""
        if self._saved is None:
            return "no checkpoint was written yet"
        return f"the last good checkpoint is {self._saved[1]} ({self._describe(self._saved[0])})"

    @staticmethod
    def _describe(position: tuple[int, int, int]) -> str:
        epoch, step, iteration = position
        if step == 0:
            return f"after epoch {epoch}, iteration {iteration}"
        return f"epoch {epoch + 1}, step {step}, iteration {iteration}"

    # ------------------------------------------------------------------ faults
    def _non_finite(self, what: str, done: bool = False) -> NonFiniteError:
        # ``done``: found after the step self.iteration counts (evaluation, checkpoint), not
        # during the next one.
        if not done:
            where = f"iteration {self.iteration + 1} (epoch {self.epoch + 1}, step {self.step + 1})"
        elif self.step == 0:
            where = f"iteration {self.iteration} (end of epoch {self.epoch})"
        else:
            where = f"iteration {self.iteration} (epoch {self.epoch + 1}, step {self.step})"
        return NonFiniteError(
            f"{what} at {where}: the run stops without writing anything more; "
            f"{self.last_checkpoint_text()}; the output files hold the values of the last "
            "completed epoch. Lower the learning rate or set a grad_clip and start again."
        )

    def _check_free_space(self) -> None:
        # A checkpoint holds the parameters and up to two solver states per weight; two coexist
        # while a new one is written. Better refused now than after hours.
        size = sum(int(np.prod(p.shape)) * 4 for p in self.model.get_parameters().values())
        need = 2 * 3 * size + 2 * size + (1 << 20)
        free = shutil.disk_usage(self.output).free
        if free < need:
            raise OutputError(
                f"the disk of {self.output} has {free / 1e6:.1f} MB free; this run's checkpoints "
                f"and weights need about {need / 1e6:.1f} MB: free some space or choose another -o",
                output=None,
            )

    def _output_error(self, err: OSError) -> OutputError:
        reason = err.strerror or str(err)
        # A temporary file of an atomic write stands for the file it was to replace.
        target = str(err.filename or "a file")
        target = re.sub(r"/\.([^/]+)\.[^./]+\.tmp(\.[^./]*)?$", r"/\1", target)
        hint = {
            errno.ENOSPC: "the disk is full: free some space",
            errno.EDQUOT: "the disk quota is exceeded: free some space",
            errno.EROFS: "the output folder is on a read-only file system",
            errno.EACCES: "the output folder is not writable: fix its permissions",
            errno.EPERM: "the output folder is not writable: fix its permissions",
        }.get(err.errno, "fix the cause")
        return OutputError(
            f"writing {target} failed at iteration {self.iteration} ({reason}); the files "
            f"written before are intact and {self.last_checkpoint_text()}; {hint}, then resume",
            output=str(self.output),
        )

    @contextlib.contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """SIGINT and SIGTERM set a flag: the loop finishes its step, writes a checkpoint and
        raises Interrupted. A second signal acts at once (the previous handler is back)."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous: dict[int, Any] = {}

        def handler(signum: int, frame: Any) -> None:
            signal.signal(signum, previous[signum])
            if self._stop_signal is None:
                self._stop_signal = signum
                logger.warning(
                    "%s received: finishing the current step and writing a checkpoint "
                    "(send it again to stop at once)",
                    signal.Signals(signum).name,
                )

        for signum in (signal.SIGINT, signal.SIGTERM):
            previous[signum] = signal.signal(signum, handler)
        try:
            yield
        finally:
            for signum, old in previous.items():
                signal.signal(signum, old)

    def _interrupt(self) -> None:
        signum = self._stop_signal
        assert signum is not None
        position = (self.epoch, self.step, self.iteration)
        if self._saved is not None and self._saved[0] == position:
            path = self._saved[1]
        else:
            path = self.save_checkpoint()
        self._close_writer()
        raise Interrupted(
            f"stopped by {signal.Signals(signum).name} ({self._describe(position)}); "
            f"checkpoint written to {path}",
            signum,
            output=str(self.output),
        )

    def save_weights(self) -> None:
        """Writes the network weights to ``weights.h5`` atomically (rank 0; the batch-norm
        statistics averaged over the processes first)."""
        self.sync_statistics()
        if self.comm.is_main:
            self.model.save_parameters(self.output / "weights.h5", self.model.get_net_parameters())


class _NullWriter:
    """The TensorBoard writer of the ranks other than 0: every call does nothing."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


_NULL_WRITER = _NullWriter()


def options_to_dict(options: Any) -> dict[str, Any]:
    """The JSON form of an algorithm's options."""
    return dataclasses.asdict(options) if dataclasses.is_dataclass(options) else {}


__all__ = ["Runner", "DataBundle", "NoOptions", "options_to_dict"]
