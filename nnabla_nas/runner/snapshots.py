"""Saving and resuming a whole run through :class:`~nnabla_nas.runner.checkpoint.CheckpointStore`.

A checkpoint holds every parameter of the model and of the algorithm (logits, a controller) in
``params.h5``, and in ``state.json``: the run's position and history, every optimizer's state, the
algorithm's state (RNGs, baselines), the exporter's and the TensorBoard files' sizes.

Checkpoints written before the redesign of the loop (format 1 of ``state.json``: the algorithm's
RNG and its state at the top level of ``runner``) are read too.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CheckpointError, ConfigError
from .checkpoint import remove_temporaries
from .state import describe

__all__ = ["load_checkpoint", "save_checkpoint"]

logger = logging.getLogger(__name__)

#: Keys of ``state["runner"]`` that are the loop's (the rest belongs to the algorithm).
_LOOP_KEYS = frozenset({
    "algorithm", "steps_per_epoch", "epoch", "step", "iteration", "arch_position", "epoch_sums",
    "optimizers", "history", "best", "last", "hardware", "elapsed", "algorithm_state",
    "exporter", "previous_argmax",
})  # fmt: skip


def _all_parameters(loop: Any) -> OrderedDict[str, Any]:
    params = OrderedDict(loop.model.get_parameters())
    for key, var in loop.algo.parameters().items():
        if key in params and params[key] is not var:
            raise CheckpointError(f"the algorithm's parameter {key!r} clashes with the model's")
        params[key] = var
    return params


def save_checkpoint(loop: Any) -> Path:
    """Writes a checkpoint of the loop's current position; returns its folder. The TensorBoard
    writer is closed first (its events are then all on disk) and every event file's size is
    recorded. With several processes rank 0 writes (every rank holds the same state).

    Raises:
        NonFiniteError: a parameter holds NaN or Inf (nothing is written).
    """
    loop.sync_statistics()
    position = loop.state.position
    params = OrderedDict((k, np.array(v.d, copy=True)) for k, v in _all_parameters(loop).items())
    loop.faults.check_finite(params)
    if not loop.comm.is_main:
        loop.faults.saved = (position, loop.checkpoints.folder)
        return loop.checkpoints.folder
    loop.monitor.flush()  # every event so far on disk: its size goes in the checkpoint
    runner = {
        "algorithm": type(loop.algo).__name__,
        "steps_per_epoch": loop.steps_per_epoch,
        **loop.state.to_dict(loop.elapsed()),
        "optimizers": {name: opt.state_dict() for name, opt in loop.optimizers.items()},
        "algorithm_state": loop.algo.state_dict(),
    }
    if loop.exporter is not None:
        runner["exporter"] = loop.exporter.state_dict()
    state = {"runner": runner, "tensorboard": loop.monitor.event_files()}
    info = {"epoch": position[0], "step": position[1], "iteration": position[2]}
    path = loop.checkpoints.save(state, params, info)
    loop.faults.saved = (position, path)
    logger.debug("checkpoint %s written", path)
    return path


def _split_old_layout(runner: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The algorithm's and the exporter's state of a checkpoint, old layout included."""
    if "algorithm_state" in runner:
        return runner["algorithm_state"], runner.get("exporter")
    algo = {k: v for k, v in runner.items() if k not in _LOOP_KEYS}
    if "previous_argmax" not in runner:
        return algo, None
    return algo, {"previous_argmax": runner["previous_argmax"]}


def _check_compatible(loop: Any, runner: dict[str, Any], where: str) -> None:
    name = type(loop.algo).__name__
    if runner["algorithm"] != name:
        raise CheckpointError(f"the checkpoint was written by {runner['algorithm']}, not {name}")
    if runner["steps_per_epoch"] != loop.steps_per_epoch:
        raise CheckpointError(
            f"the checkpoint was written with {runner['steps_per_epoch']} steps per epoch; "
            f"the data now gives {loop.steps_per_epoch}: the dataset or the batch size changed"
        )
    if set(runner["optimizers"]) != set(loop.optimizers):
        raise CheckpointError(
            f"the checkpoint has the optimizers {sorted(runner['optimizers'])}, this run "
            f"{sorted(loop.optimizers)}"
        )
    done = int(runner["epoch"]) - loop.options.warmup
    if done > loop.options.epochs:
        raise ConfigError(
            f"the checkpoint {where} has done {done} epochs after warm-up; "
            f"epoch must be at least {done} to resume it, got {loop.options.epochs}",
            key="epoch",
        )


def load_checkpoint(loop: Any) -> bool:
    """Loads the last checkpoint of the output folder: the loop's ``run`` then continues from it.

    Event files written after the checkpoint are cut back to their size at the checkpoint
    (TensorBoard shows no step twice). Without a checkpoint (the run stopped before its first
    one) the run starts from the beginning.

    Returns:
        True when a checkpoint was loaded.

    Raises:
        CheckpointError: the checkpoint is unreadable or belongs to another run.
        ConfigError: ``epoch`` is now smaller than the epochs the checkpoint has done.
    """
    info = loaded = None
    if loop.comm.is_main:  # rank 0 reads the checkpoint, every rank loads it
        info = loop.checkpoints.latest()
        loop.checkpoints.cleanup()
        remove_temporaries(loop.output)
        loaded = None if info is None else loop.checkpoints.load(info)
    info, loaded = loop.comm.broadcast((info, loaded))
    if info is None:
        logger.warning("no checkpoint in %s yet: the run starts again from the beginning",
                       loop.checkpoints.folder)  # fmt: skip
        loop.monitor.restore_event_files({})
        return False
    saved, params = loaded
    runner = saved["runner"]
    _check_compatible(loop, runner, info["path"])
    own = _all_parameters(loop)
    missing = [k for k in own if k not in params]
    if missing or len(params) != len(own):
        raise CheckpointError(
            f"the checkpoint {info['path']} holds other parameters than this network "
            f"(e.g. missing {missing[:3]}): it belongs to another network"
        )
    for key, var in own.items():
        if tuple(var.shape) != tuple(np.shape(params[key])):
            raise CheckpointError(f"the checkpoint's {key!r} has shape {np.shape(params[key])}")
        var.d = params[key]
    for name, opt in loop.optimizers.items():
        opt.load_state_dict(runner["optimizers"][name])
    algo_state, exporter_state = _split_old_layout(runner)
    loop.algo.load_state_dict(algo_state)
    if loop.exporter is not None and exporter_state is not None:
        loop.exporter.load_state_dict(exporter_state)
    loop.state.load(runner)
    if loop.arch_batches is not None:
        loop.arch_batches.reset()
    loop.monitor.restore_event_files(saved["tensorboard"])
    loop.faults.saved = (loop.state.position, Path(info["path"]))
    logger.info("resumed from %s (%s)", info["path"], describe(loop.state.position))
    return True
