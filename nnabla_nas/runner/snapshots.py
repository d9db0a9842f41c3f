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
from .checkpoint import (
    CheckpointStore,
    check_state,
    decode_state,
    encode_state,
    remove_temporaries,
)
from .state import describe

__all__ = [
    "check_compatible",
    "check_parameters_finite",
    "check_resumable",
    "load_checkpoint",
    "save_checkpoint",
]

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


def check_parameters_finite(loop: Any) -> None:
    """Raises NonFiniteError when a parameter of the model or of the algorithm holds NaN or
    Inf: called before anything of an epoch is exported, so that no bad value replaces a good
    file."""
    loop.faults.check_finite({k: v.d for k, v in _all_parameters(loop).items()})


def save_checkpoint(loop: Any) -> Path:
    """Writes a checkpoint of the loop's current position; returns its folder. The TensorBoard
    writer is flushed first (its events are then all on disk) and every event file's size is
    recorded. With several processes rank 0 writes (every rank holds the same state).

    Everything is copied here; the files are written by ``loop.writer`` in the background
    (:mod:`.background`: the optimizers' next update waits for them) and ``loop.faults.saved``
    names the checkpoint once they are complete.

    Raises:
        NonFiniteError: a parameter holds NaN or Inf (nothing is written).
        OutputError: the output folder was deleted or moved during the run.
    """
    loop.faults.check_output()
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
    # A copy the run cannot change while the files are written in the background.
    state = decode_state(*encode_state(state))
    info = {"epoch": position[0], "step": position[1], "iteration": position[2]}
    loop.writer.wait()  # the previous checkpoint is complete: the next folder's name is known
    folder = loop.checkpoints.next_folder(info)

    def write() -> None:
        path = loop.checkpoints.save(state, params, info)
        loop.faults.saved = (position, path)
        logger.debug("checkpoint %s written", path)

    loop.writer.submit(write)
    return folder


def _split_old_layout(runner: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The algorithm's and the exporter's state of a checkpoint, old layout included."""
    if "algorithm_state" in runner:
        return runner["algorithm_state"], runner.get("exporter")
    algo = {k: v for k, v in runner.items() if k not in _LOOP_KEYS}
    if "previous_argmax" not in runner:
        return algo, None
    return algo, {"previous_argmax": runner["previous_argmax"]}


def check_compatible(
    runner: dict[str, Any],
    where: str,
    algorithm: str,
    steps_per_epoch: int,
    warmup: int,
    epochs: int,
    optimizers: Any = None,
) -> None:
    """Checks that the ``runner`` state of the checkpoint ``where`` can continue in a run of
    ``algorithm`` with these steps per epoch, warm-up and epochs (and optimizer names).

    Raises:
        CheckpointError: another algorithm, other data or other optimizers.
        ConfigError: at ``epoch``, fewer epochs than the checkpoint has done.
    """
    if runner["algorithm"] != algorithm:
        raise CheckpointError(
            f"the checkpoint {where} was written by {runner['algorithm']}, not {algorithm}"
        )
    if runner["steps_per_epoch"] != steps_per_epoch:
        raise CheckpointError(
            f"the checkpoint {where} was written with {runner['steps_per_epoch']} steps per "
            f"epoch; the data now gives {steps_per_epoch}: the dataset or the batch size changed"
        )
    if optimizers is not None and set(runner["optimizers"]) != set(optimizers):
        raise CheckpointError(
            f"the checkpoint {where} has the optimizers {sorted(runner['optimizers'])}, this run "
            f"{sorted(optimizers)}"
        )
    done = int(runner["epoch"]) - warmup
    if done > epochs:
        raise ConfigError(
            f"the checkpoint {where} has done {done} epochs after warm-up; "
            f"epoch must be at least {done} to resume it, got {epochs}",
            key="epoch",
        )


def check_resumable(
    output: Path, algorithm: str, steps_per_epoch: int, warmup: int, epochs: int
) -> None:
    """Checks, reading only, that the last checkpoint of ``output`` (if any) is readable and
    can continue in this run: a resume is then refused before anything is written (the loop's
    :func:`load_checkpoint` repeats the checks that need the network).

    Raises:
        ConfigError: a damaged checkpoint (one line naming the file), another algorithm or
            data (at ``--resume``), or fewer epochs than done (at ``epoch``).
    """
    store = CheckpointStore(Path(output) / "checkpoint")
    try:
        info = store.latest()
        if info is None:
            return
        saved, _ = store.load(info, check_state)
        check_compatible(saved["runner"], info["path"], algorithm, steps_per_epoch, warmup, epochs)
    except CheckpointError as err:
        raise ConfigError(
            f"{err}; this run cannot be resumed from it: restore the checkpoint, or start "
            "afresh with --overwrite",
            key="--resume",
        ) from None


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
        loaded = None if info is None else loop.checkpoints.load(info, check_state)
    info, loaded = loop.comm.broadcast((info, loaded))
    if info is None:
        logger.warning("no checkpoint in %s yet: the run starts again from the beginning",
                       loop.checkpoints.folder)  # fmt: skip
        loop.monitor.restore_event_files({})
        return False
    saved, params = loaded
    runner = saved["runner"]
    check_compatible(runner, info["path"], type(loop.algo).__name__, loop.steps_per_epoch,
                     loop.options.warmup, loop.options.epochs, loop.optimizers)  # fmt: skip
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
