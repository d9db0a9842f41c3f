"""The loop, written once: epochs, warm-up, accumulation, evaluation, exports, checkpoints.

One iteration: nnabla's generator is reseeded from ``(seed, iteration)``; the algorithm's weight
step on a batch of the weight split (the ``warmup`` optimizer during warm-up epochs, then
``train``); for searchers after warm-up, its architecture step on the next batch of the
architecture split. After each epoch: evaluation of the algorithm's network on the validation and
test loaders (as ``eval_every``, ``eval_examples`` and ``test_at_end`` schedule), the hardware
estimates of its exported architecture, the exports (searchers:
``arch.h5``, ``arch.png``, ...; the Trainer keeps the best-validation ``weights.h5``) and a
checkpoint. Resuming, faults and data parallelism: ``docs/resume.rst``, ``docs/distributed.rst``.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import nnabla as nn
import numpy as np

from ..optimizer import make_optimizer, optimizer_section
from ..utils.io import atomic_write_json
from ..utils.lock import lock_folder
from .algorithm import Algorithm, RunContext
from .background import BackgroundWriter, spare_core
from .batches import ArchBatches, epoch_batches
from .checkpoint import CheckpointStore
from .faults import Faults
from .hardware import HardwareReport
from .monitor import Monitor, Progress, log_to_file, readable
from .snapshots import check_parameters_finite, load_checkpoint, save_checkpoint
from .state import RunState
from .steps import Steps

__all__ = ["Loop"]

logger = logging.getLogger(__name__)


class Loop:
    """Runs an :class:`~nnabla_nas.runner.algorithm.Algorithm` (see the module docstring)."""

    def __init__(self, algo: Algorithm) -> None:
        self.algo = algo
        self.model, self.data, self.comm = algo.model, algo.data, algo.comm
        self.options = algo.loop_options
        self.output = algo.output
        self.state = RunState()
        self.faults = Faults(self.output, lambda: self.state.position)
        self.steps = Steps(self.model, self.comm, self.options.aux_weight, self.faults.non_finite)
        self.monitor = Monitor(self.output, self.comm)
        self.checkpoints = CheckpointStore(self.output / "checkpoint")
        self.writer = BackgroundWriter(spare_core(self.comm.size))  # checkpoints (rank 0)
        self.faults.settle_writes = self.writer.settle
        shape = self.options.input_shape or next(iter(self.data.valid))[0].shape[1:]
        self.input_shape = tuple(int(s) for s in shape)
        self.hardware = HardwareReport(algo.regularizers, self.input_shape)
        self.steps_per_epoch = len(self.data.train)
        self._session_start = time.time()
        self.arch_batches = ArchBatches(self.data.arch, self.state) if algo.search else None
        self.optimizers = self._weight_optimizers()
        self.ctx = RunContext(
            self.model, self.data, self.optimizers, self.steps, self.comm,
            dict(algo.regularizers), self.options, self.input_shape, self.phase_iteration,
        )  # fmt: skip
        arch = algo.setup(self.ctx)
        if algo.search and arch:
            self.optimizers["valid"] = self._optimizer("valid", arch, self.options.epochs)
        for opt in self.optimizers.values():  # no parameter changes while a checkpoint is written
            opt.before_update = self.writer.wait
        if self.comm.size > 1:  # every rank starts from rank 0's network
            params = list(self.model.get_parameters().values()) + list(algo.parameters().values())
            self.comm.broadcast_parameters(params)
        self.exporter = None
        if algo.search:
            from .searcher.export import Exporter

            self.exporter = Exporter(self.model, self.output, self.input_shape, self.monitor,
                                     self.comm, type(algo).__name__)  # fmt: skip

    # ------------------------------------------------------------------ set-up
    def _optimizer(self, name: str, params: Any, epochs: int) -> Any:
        steps = self.steps_per_epoch
        section = optimizer_section(name, self.algo.optimizer_configs)
        return make_optimizer(name, section, params, epochs * steps, steps, self.comm)

    def _weight_optimizers(self) -> dict[str, Any]:
        weights = self.model.get_net_parameters(grad_only=True)
        opts = {"train": self._optimizer("train", weights, self.options.epochs)}
        if self.options.warmup > 0:
            opts["warmup"] = self._optimizer("warmup", weights, self.options.warmup)
        return opts

    def phase_iteration(self, phase: str) -> int:
        """The iteration the optimizer of ``phase`` schedules its learning rate at."""
        if phase == "warmup":
            return self.state.iteration
        return self.state.iteration - self.options.warmup * self.steps_per_epoch

    def sync_statistics(self) -> None:
        """Averages the parameters that are not trained (batch-norm running statistics) over the
        data-parallel processes, so that every rank evaluates and saves the same network."""
        if self.comm.size > 1:
            stats = [p for p in self.model.get_net_parameters().values() if not p.need_grad]
            self.comm.average_parameters(stats)

    def elapsed(self) -> float:
        """Wall time of the run so far, previous sessions included."""
        return self.state.elapsed + time.time() - self._session_start

    # ------------------------------------------------------------------ checkpoints
    def save_checkpoint(self) -> Any:
        """Writes a checkpoint of the current position in the background (see
        :mod:`.snapshots` and :mod:`.background`); returns its folder."""
        return save_checkpoint(self)

    def resume(self) -> bool:
        """Loads the last checkpoint of the output folder (see :mod:`.snapshots`)."""
        self.writer.wait()
        return load_checkpoint(self)

    # ------------------------------------------------------------------ the loop
    def run(self) -> dict[str, Any]:
        """Runs warm-up and the epochs from the current position; writes weights, results,
        TensorBoard logs and checkpoints; returns the results."""
        opts, algo = self.options, self.algo
        self._session_start = time.time()
        if self.comm.is_main:  # a run started from Python: the folder and config.json
            self.output.mkdir(parents=True, exist_ok=True)
            if not (self.output / "config.json").exists():
                atomic_write_json(self.output / "config.json", algo.config_dict())
        handler = log_to_file(self.output) if self.comm.is_main else None
        total, steps = opts.total_epochs, self.steps_per_epoch
        batch = getattr(self.data.train, "batch_size", 0) * self.comm.size
        logger.info("%s: %d warm-up + %d epochs of %d steps (batch %d in mini-batches of %d)",
                    type(algo).__name__, opts.warmup, opts.epochs, steps, batch,
                    opts.mini_batch_train or batch)  # fmt: skip
        if self.comm.size > 1:
            logger.info("data-parallel on %d processes: each takes %d examples of every batch",
                        self.comm.size, batch // self.comm.size)  # fmt: skip
        lock = None
        try:
            if self.comm.is_main:
                lock = lock_folder(self.output)  # (re-entrant: the command line holds it too)
                self.checkpoints.prepare()
                params = self.model.get_parameters().values()
                self.faults.check_free_space(sum(int(np.prod(p.shape)) for p in params))
                if not algo.search:  # a fixed network's own files (e.g. a random graph)
                    self.model.export_files(self.output, {})
            with self.faults.stop_on_signals():
                while self.state.epoch < total:
                    self._run_epoch(total, steps)
                summary = self._finish(total)
        except OSError as err:
            raise self.faults.output_error(err) from err
        finally:
            self.writer.close()  # (after a failure: a write's own error is logged)
            if lock is not None:
                lock.release()
            with contextlib.suppress(Exception):  # the events so far, also after a failure
                self.monitor.close()
            if self.arch_batches is not None:
                self.arch_batches.reset()
            if handler is not None:
                logging.getLogger("nnabla_nas").removeHandler(handler)
                handler.close()
        return summary

    def _finish(self, total: int) -> dict[str, Any]:
        """The final outputs after the last checkpoint: a searcher's weights, ``results.json``.
        A signal meanwhile stops the run after the file being written (no temporary file is
        left; ``--resume`` writes them again)."""
        self.writer.wait()  # the last checkpoint on disk first
        self.faults.check_output()
        export = self.algo.export()
        if self.algo.search:
            self.save_weights()
            self._stop_on_signal()
        summary = self._summary(total, export)
        self.monitor.write_results(summary)
        self.monitor.close()
        self._stop_on_signal()
        return summary

    def _stop_on_signal(self) -> None:
        self._agree_on_stop()
        if self.faults.stop_signal is not None:
            self.interrupt()

    def _summary(self, total: int, export: Any) -> dict[str, Any]:
        state, algo = self.state, self.algo
        return {
            "algorithm": type(algo).__name__,
            "search_space": getattr(self.model, "space_name", ""),
            "epochs": total,
            "warmup_epochs": self.options.warmup,
            "steps": state.iteration,
            "wall_time_s": round(self.elapsed(), 3),
            "final": state.last,
            "best": state.best,
            "num_parameters": int(
                self.model.num_params(export.architecture if algo.search else None)
            ),
            "history": state.history,
            "hardware": state.hardware,
            **(self.exporter.results(export) if self.exporter is not None else {}),
            **algo.results(export),
        }

    def _seed_step(self) -> None:
        # nnabla's global generator (dropout masks, F.rand/F.randn with seed=-1) has no state that
        # can be read and saved: it is reseeded from (seed, iteration) before every step, so a
        # resumed run draws the masks of the uninterrupted one.
        seq = np.random.SeedSequence([self.algo.seed, self.state.iteration])
        nn.random.set_function_seed(int(seq.generate_state(1)[0] % (2**31 - 1)))

    def _run_epoch(self, total: int, steps: int) -> None:
        """The rest of epoch ``state.epoch`` from ``state.step``, its evaluation, exports and
        checkpoint."""
        from tqdm import tqdm

        opts, algo, state = self.options, self.algo, self.state
        epoch = state.epoch
        phase = "warmup" if epoch < opts.warmup else "train"
        self.model.apply(training=True)
        self.model.set_progress(epoch / total)
        mini_t, mini_v = opts.mini_batch_train, opts.mini_batch_valid
        sums = state.epoch_sums
        bar = tqdm(total=steps, initial=state.step, leave=False, desc=f"epoch {epoch + 1}/{total}",
                   disable=None if self.comm.is_main else True, dynamic_ncols=True)  # fmt: skip
        for i, (x, y) in epoch_batches(self.data.train, epoch, state.step):
            self._seed_step()
            batch = self.steps.split(x, y, mini_t or len(x))
            metrics = algo.train_step(batch, phase)
            metrics["lr"] = self.optimizers[phase].get_learning_rate()
            if phase == "train" and algo.search:
                xa, ya = self.arch_batches.next()
                arch = algo.arch_step(self.steps.split(xa, ya, mini_v or len(xa)), batch)
                metrics.update({f"arch_{k}": v for k, v in arch.items()})
            if self.comm.size > 1:  # the ranks' shards together: the whole batch's metrics
                metrics = self.comm.all_reduce_dict(metrics)
                self._agree_on_stop()
            state.iteration += 1
            state.step = i + 1
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + v
            self.monitor.scalars(phase, metrics, state.iteration)
            if state.step % opts.print_frequency == 0 or state.step == steps:
                logger.info("epoch %d/%d (%s) step %d/%d: %s", epoch + 1, total, phase,
                            state.step, steps, self._step_text(sums, metrics))  # fmt: skip
            bar.update(1)
            if self.faults.stop_signal is not None:
                bar.close()
                self.interrupt()
            if opts.checkpoint_every and state.iteration % opts.checkpoint_every == 0:
                self.save_checkpoint()
        bar.close()
        self._end_epoch(epoch, total, steps)

    def _step_text(self, sums: dict[str, float], metrics: dict[str, float]) -> str:
        """The step line's figures: the epoch's means so far, but the current learning rate."""
        return " ".join(f"{k} {readable(metrics[k])}" if k == "lr" else
                        f"{k} {v / self.state.step:.4f}" for k, v in sums.items())  # fmt: skip

    def evaluations(self, epoch: int, total: int) -> dict[str, dict[str, float]]:
        """The end-of-epoch evaluations that ``eval_every``, ``eval_examples`` and
        ``test_at_end`` ask for after ``epoch``: ``{"valid": ..., "test": ...}``, each
        ``{"loss", "error"}`` (none, one or both), with a progress bar (rank 0, on a terminal)."""
        opts, out = self.options, {}
        enabled = None if self.comm.is_main else False
        for name, wanted in zip(("valid", "test"), opts.evaluates(epoch)):
            if wanted:
                self.sync_statistics()
                loader = Progress(getattr(self.data, name), f"epoch {epoch + 1}/{total} {name}",
                                  enabled)  # fmt: skip
                out[name] = self.steps.evaluate(
                    loader, name, opts.mini_batch_valid, self.algo.evaluating, opts.eval_examples
                )
        return out

    def _end_epoch(self, epoch: int, total: int, steps: int) -> None:
        state, algo = self.state, self.algo
        self.writer.wait()  # (a mid-epoch checkpoint) the files keep their order
        evaluated = self.evaluations(epoch, total)
        metrics = {f"train_{k}": v / steps for k, v in state.epoch_sums.items() if k != "lr"}
        for name, values in evaluated.items():
            metrics.update({f"{name}_{k}": v for k, v in values.items()})
        check_parameters_finite(self)  # before anything of the epoch is written
        export = algo.export()
        hardware = self.hardware.estimate(self.model, export.architecture if algo.search else None)
        if hardware:
            self.monitor.scalars("hardware", hardware, epoch + 1)
        state.hardware = hardware
        state.history.append({"epoch": epoch + 1, **metrics, **hardware})
        self.monitor.scalars("epoch", metrics, epoch + 1)
        parts = [f"{name} loss {v['loss']:.4f} error {v['error']:.4f}" for name, v in
                 [("train", {"loss": metrics["train_loss"], "error": metrics["train_error"]}),
                  *evaluated.items()]]  # fmt: skip
        logger.info("epoch %d/%d done: %s", epoch + 1, total, " | ".join(parts))
        state.last = metrics
        valid = evaluated.get("valid")
        if valid is not None and (
            state.best is None or valid["error"] <= state.best["valid_error"]
        ):
            state.best = {"epoch": epoch + 1, **metrics}
            if not algo.search:
                self.save_weights()
        if self.exporter is not None:
            self.exporter.epoch_end(export, epoch + 1, metrics, hardware)
        self.monitor.write_layout()
        state.epoch, state.step, state.epoch_sums = epoch + 1, 0, {}
        self.save_checkpoint()
        self._agree_on_stop()
        if self.faults.stop_signal is not None:
            self.interrupt()

    # ------------------------------------------------------------------ stopping and saving
    def _agree_on_stop(self) -> None:
        # A signal reaches the ranks at different steps: all stop at the first step after any
        # rank got one (a rank stopping alone would leave the others waiting forever).
        if self.comm.size > 1:
            signum = int(self.comm.all_reduce(float(self.faults.stop_signal or 0), "max"))
            if signum and self.faults.stop_signal is None:
                self.faults.stop_signal = signum

    def interrupt(self) -> None:
        """Stops after a signal: a checkpoint of this position (unless written already), then
        :class:`~nnabla_nas.errors.Interrupted`."""
        self.writer.wait()
        saved = self.faults.saved
        if saved is None or saved[0] != self.state.position:
            self.save_checkpoint()
            self.writer.wait()  # its files on disk, or its write's error is the run's
        self.monitor.close()
        raise self.faults.interrupted()

    def save_weights(self) -> None:
        """Writes the network weights to ``weights.h5`` atomically (rank 0; the batch-norm
        statistics averaged over the processes first)."""
        self.sync_statistics()
        if self.comm.is_main:
            self.model.save_parameters(self.output / "weights.h5", self.model.get_net_parameters())
