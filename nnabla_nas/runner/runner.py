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
of one batch (gradients averaged over the batch), :meth:`Runner.log_scalars`.

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
import logging
import math
import os
import signal
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import nnabla as nn
import numpy as np

from ..config import ExperimentConfig
from ..contrib.model import Model
from ..data import DataLoader
from ..errors import CheckpointError, ConfigError, Interrupted, NonFiniteError, OutputError
from ..optimizer import Optimizer, initial_learning_rate, make_scheduler
from ..utils.io import atomic_write_json
from .checkpoint import CheckpointStore, rng_state, set_rng_state

logger = logging.getLogger(__name__)

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
    ) -> None:
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
        self._writers_opened = 0
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
        from ..config import OptimizerConfig

        section = self.cfg.optimizer.get(name)
        if section is None and name == "warmup":
            section = self.cfg.optimizer.get("train")  # warm up like the training proper
        if section is None:
            # The architecture keeps a constant rate by default; weights follow cosine decay.
            section = OptimizerConfig(solver=_DEFAULT_SOLVERS[name])
        solver = dict(section.solver)
        solver_name = solver.pop("name")
        init_lr = initial_learning_rate(solver_name, solver)
        default = "cosine" if name in ("train", "warmup") else None
        scheduler = make_scheduler(
            section.lr_scheduler,
            init_lr=float(init_lr),
            max_iter=max(1, max_iter),
            iter_per_epoch=max(1, per_epoch),
            default=default,
            key=f"optimizer.{name}.lr_scheduler",
        )
        return Optimizer(
            params,
            solver_name,
            solver,
            grad_clip=section.grad_clip,
            weight_decay=section.weight_decay,
            lr_scheduler=scheduler,
            key=f"optimizer.{name}",
        )

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

    def log_scalars(self, tag: str, values: dict[str, float], step: int) -> None:
        """Writes ``values`` to TensorBoard under ``tag/``."""
        for k, v in values.items():
            self.writer.add_scalar(f"{tag}/{k}", v, step)

    @property
    def writer(self) -> Any:
        """The TensorBoard writer (opened on first use; closed at every checkpoint, see
        :meth:`save_checkpoint`, so that every event before a checkpoint is on disk)."""
        if self._writer is None:
            from tensorboardX import SummaryWriter

            # A unique file per writer: two writers opened in the same second must not share one.
            suffix = f".{os.getpid()}.{self._writers_opened}"
            self._writers_opened += 1
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

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, loader: DataLoader, key: str) -> dict[str, float]:
        """Mean loss and error of the model over ``loader`` (inference mode)."""
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
        loss_v = loss_sum / max(count, 1)
        if not math.isfinite(loss_v):
            raise self._non_finite(f"the {key} loss (evaluation) became {loss_v}")
        return {"loss": loss_v, "error": err_sum / max(count, 1)}

    # ------------------------------------------------------------------ the loop
    def _phase_iteration(self, phase: str) -> int:
        steps = len(self.data.train)
        if phase == "warmup":
            return self.iteration
        return self.iteration - self.cfg.warmup * steps

    def _arch_batches(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        epoch = 0
        while True:
            self.data.arch.set_epoch(epoch)
            yield from self.data.arch
            epoch += 1

    def run(self) -> dict[str, Any]:
        """Runs warm-up and the epochs; writes weights, results and TensorBoard logs."""
        cfg = self.cfg
        start = time.time()
        total = cfg.warmup + cfg.epoch
        steps = len(self.data.train)
        arch_iter = self._arch_batches() if self.search and cfg.epoch > 0 else None
        best: dict[str, float] | None = None
        last: dict[str, float] = {}
        logger.info(
            "%s: %d warm-up + %d epochs of %d steps (batch %d in mini-batches of %d)",
            type(self).__name__, cfg.warmup, cfg.epoch, steps, cfg.batch_size_train,
            cfg.mini_batch_train,
        )  # fmt: skip
        from tqdm import tqdm

        for epoch in range(self.epoch, total):
            self.epoch = epoch
            phase = "warmup" if epoch < cfg.warmup else "train"
            self.model.apply(training=True)
            self.data.train.set_epoch(epoch)
            sums: dict[str, float] = {}
            bar = tqdm(
                self.data.train, total=steps, leave=False, desc=f"epoch {epoch + 1}/{total}",
                disable=None, dynamic_ncols=True,
            )  # fmt: skip
            for i, (x, y) in enumerate(bar):
                # Kept for architecture steps that also need the weight batch (DARTS 2nd order).
                self.current_train_batch = self.split(x, y, cfg.mini_batch_train)
                metrics = self.train_step(self.current_train_batch, phase)
                metrics["lr"] = self.optimizers[phase].get_learning_rate()
                if phase == "train" and arch_iter is not None:
                    xa, ya = next(arch_iter)
                    arch = self.arch_step(self.split(xa, ya, cfg.mini_batch_valid))
                    metrics.update({f"arch_{k}": v for k, v in arch.items()})
                self.iteration += 1
                for k, v in metrics.items():
                    sums[k] = sums.get(k, 0.0) + v
                self.log_scalars(phase, metrics, self.iteration)
                if (i + 1) % cfg.print_frequency == 0 or i + 1 == steps:
                    text = " ".join(f"{k} {v / (i + 1):.4f}" for k, v in sums.items())
                    logger.info("epoch %d/%d (%s) step %d/%d: %s", epoch + 1, total, phase,
                                i + 1, steps, text)  # fmt: skip
            bar.close()
            valid = self.evaluate(self.data.valid, "valid")
            test = self.evaluate(self.data.test, "test")
            epoch_metrics = {f"train_{k}": v / steps for k, v in sums.items() if k != "lr"}
            epoch_metrics.update({f"valid_{k}": v for k, v in valid.items()})
            epoch_metrics.update({f"test_{k}": v for k, v in test.items()})
            self.history.append({"epoch": epoch + 1, **epoch_metrics})
            self.log_scalars("epoch", epoch_metrics, epoch + 1)
            logger.info(
                "epoch %d/%d done: train loss %.4f error %.4f | valid loss %.4f error %.4f | "
                "test loss %.4f error %.4f",
                epoch + 1, total, epoch_metrics["train_loss"], epoch_metrics["train_error"],
                valid["loss"], valid["error"], test["loss"], test["error"],
            )  # fmt: skip
            last = epoch_metrics
            if best is None or valid["error"] <= best["valid_error"]:
                best = {"epoch": epoch + 1, **epoch_metrics}
                if not self.search:
                    self.save_weights()
            self.on_epoch_end(epoch, epoch_metrics)
            self.writer.flush()
        if self.search:
            self.save_weights()
        summary = {
            "algorithm": type(self).__name__,
            "search_space": cfg.network.search_space,
            "epochs": total,
            "warmup_epochs": cfg.warmup,
            "steps": self.iteration,
            "wall_time_s": round(time.time() - start, 3),
            "final": last,
            "best": best,
            "num_parameters": int(self.model.num_params(only_active=self.search)),
            "history": self.history,
            **self.results(),
        }
        atomic_write_json(self.output / "results.json", summary)
        self.writer.close()
        return summary

    def save_weights(self) -> None:
        """Writes the network weights to ``weights.h5`` atomically."""
        self.model.save_parameters(self.output / "weights.h5", self.model.get_net_parameters())


_DEFAULT_SOLVERS = {
    "train": {"name": "Momentum", "lr": 0.1},
    "warmup": {"name": "Momentum", "lr": 0.1},
    "valid": {"name": "Adam", "alpha": 0.001, "beta1": 0.5, "beta2": 0.999},
}


def options_to_dict(options: Any) -> dict[str, Any]:
    """The JSON form of an algorithm's options."""
    return dataclasses.asdict(options) if dataclasses.is_dataclass(options) else {}


__all__ = ["Runner", "DataBundle", "NoOptions", "options_to_dict"]
