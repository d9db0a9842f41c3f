"""The ``train`` evaluator: every trial trains its child network from scratch.

A trial ``k`` of architecture ``a`` and seed ``s`` (the driver's
:func:`~nnabla_nas.trials.driver.trial_seed`) is exactly this Trainer run, in the folder
``OUTPUT/trials/<k>/`` (``k`` on four digits)::

    genotype = Genotype(space_name, space.genotype(a))             # also trials/<k>/arch.h5
    nn.random.seed(s)
    child = SPACES.get(space_name)(space_config, genotype=genotype, rng=RandomState(s))
    Trainer(child, data, "OUTPUT/trials/<k>", loop=LoopOptions(epochs=trial_epochs, ...),
            optimizers=experiment_optimizers, seed=s).run()

``data`` are the loaders of the search split (:class:`~nnabla_nas.trials.setting.DataSetting`:
``train_portion`` of the training set for the weights, the rest for validation, split and
ordered by the experiment's seed, the same for every trial), made once per worker process.
The trial reports the Trainer's best validation epoch (the weights it keeps in
``trials/<k>/weights.h5``): ``valid_acc`` (the metric, a fraction), ``valid_error``,
``valid_loss``, ``train_loss``, ``train_error``, ``best_epoch``, ``epochs`` and the child's
``params``. The Trainer evaluates the test set every epoch into the trial's own
``results.json``, as it always does; none of it enters the trial's record, the strategy or
TensorBoard: the experiment reports the test accuracy of its best trial only, at the end
(:meth:`TrainEvaluator.report`).

The trial folder
    ``trial.json`` (what the trial is: number, genotype, seed, the evaluator's settings; the
    process of the latest attempt), ``arch.h5`` (retrainable with ``-a Trainer``), and the
    Trainer's outputs (``config.json``, ``log.txt``, ``tensorboard/``, ``results.json``,
    ``weights.h5``). The Trainer's ``checkpoint/`` is RESUMABLE while the trial runs: a trial
    retried after its worker died (or resubmitted by a resumed driver) continues from the last
    epoch checkpoint, bit for bit the run it continues; a trial whose ``results.json`` is
    complete is not trained again. The checkpoint is REMOVED once the trial is done (the
    folder keeps ``weights.h5``). A lock file serialises the attempts of one trial (a dead
    worker's lock is released by the system; an attempt that outlived its driver finishes
    first). On several machines the output folder must be on a shared file system.

Not implemented: early stopping of trials (successive halving, Hyperband), weight sharing
between trials, one GPU per worker (every worker uses the experiment's ``device_id``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import numpy as np

from ..errors import ConfigError
from ..parsing import parse_dataclass, to_dict
from ..utils.io import atomic_write_json
from ..utils.lock import FolderLock, lock_folder
from .evaluator import Evaluator
from .record import TrialRecord, TrialRequest
from .setting import DataSetting, TrialSetting
from .space import SearchSpace

if TYPE_CHECKING:  # pragma: no cover
    from ..runner.options import LoopOptions

__all__ = ["TrainEvaluator", "TrainEvaluatorConfig", "trial_folder"]

logger = logging.getLogger(__name__)

#: The figures of a trial (numbers).
FIGURES = ["valid_acc", "valid_error", "valid_loss", "train_loss", "train_error", "best_epoch",
           "epochs", "params"]  # fmt: skip


def trial_folder(output: str | os.PathLike, trial: int) -> Path:
    """``OUTPUT/trials/<trial>`` (four digits at least, so that the folders sort in order)."""
    return Path(output) / "trials" / f"{int(trial):04d}"


@dataclass
class TrainEvaluatorConfig:
    """Keys of the ``train`` evaluator (``trials.evaluator``).

    Attributes:
        trial_epochs: epochs each trial trains its child network for (after the experiment's
            ``warmup`` epochs, if any).
    """

    trial_epochs: int = 1

    def check(self) -> None:
        """Refuses ``trial_epochs`` below 1."""
        if self.trial_epochs < 1:
            raise ConfigError(f"must be >= 1, got {self.trial_epochs}", "trial_epochs")


def _locked(folder: Path) -> FolderLock:
    """The trial folder's lock (:mod:`nnabla_nas.utils.lock`, waiting for another worker that
    still holds it); the Trainer's loop takes the same lock again (re-entrant)."""
    folder.mkdir(parents=True, exist_ok=True)
    return lock_folder(folder, wait=True)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


class TrainEvaluator(Evaluator):
    """Trains each trial's child network from scratch (see the module docstring).

    Args:
        space_name: the search space's registry name.
        space_config: the space's ``Config`` (the supernet's keys; the child is built from them
            and the trial's genotype).
        data: the loaders' settings (the search split).
        trial_epochs: epochs per trial.
        loop: the loop's options of a trial (``epochs`` is replaced by ``trial_epochs``,
            ``input_shape`` by the data's).
        optimizers: ``{"train"|"warmup": OptimizerConfig or dict}`` (the experiment's
            ``optimizer`` sections; missing ones get the Trainer's defaults).
        context: nnabla's extension on the workers (``cpu``, ``cudnn``; None: cpu).
        type_config: ``float`` or ``half`` (None: float).
        device_id: the GPU of ``cudnn`` (None: 0).
        output: the experiment's output folder (``run_experiment`` sets it).

    Raises:
        ConfigError: an unknown space, or a bad option (naming its key).
    """

    kind = "train"
    Config = TrainEvaluatorConfig

    def __init__(
        self,
        space_name: str,
        space_config: Any,
        data: DataSetting,
        trial_epochs: int = 1,
        loop: LoopOptions | None = None,
        optimizers: Mapping[str, Any] | None = None,
        context: str | None = None,
        type_config: str | None = None,
        device_id: int | None = None,
        output: str | os.PathLike | None = None,
    ) -> None:
        from ..contrib import SPACES
        from ..optimizer import OptimizerConfig
        from ..runner.options import LoopOptions

        self.space_name = SPACES.canonical(space_name, key="network.search_space")
        self.space_config = space_config
        self.data = data
        TrainEvaluatorConfig(trial_epochs).check()
        self.trial_epochs = int(trial_epochs)
        self.loop = dataclasses.replace(loop or LoopOptions(), epochs=self.trial_epochs,
                                        input_shape=tuple(data.input_shape))  # fmt: skip
        self.loop.check()
        self.optimizers = {
            name: section if isinstance(section, OptimizerConfig)
            else parse_dataclass(OptimizerConfig, dict(section), f"optimizer.{name}")
            for name, section in (optimizers or {}).items()
        }  # fmt: skip
        self.context, self.type_config, self.device_id = context, type_config, device_id
        self.output = Path(output) if output is not None else None

    @classmethod
    def from_setting(cls, config: TrainEvaluatorConfig, setting: TrialSetting) -> TrainEvaluator:
        """The evaluator of an experiment file (``trials.evaluator``: ``trial_epochs``)."""
        return cls(setting.space_name, setting.space_config, setting.data, config.trial_epochs,
                   setting.loop, setting.optimizers, setting.context, setting.type_config,
                   setting.device_id)  # fmt: skip

    # ------------------------------------------------------------------ the interface
    @property
    def metric(self) -> str:
        return "valid_acc"

    def metrics(self) -> list[str]:
        return list(FIGURES)

    def describe(self) -> dict[str, Any]:
        loop = dataclasses.asdict(self.loop)
        for key in ("print_frequency", "checkpoint_every"):  # logging and checkpoints only
            del loop[key]
        return {
            "kind": self.kind,
            "space": self.space_name,
            "network": to_dict(self.space_config),
            "data": self.data.describe(),
            "trial_epochs": self.trial_epochs,
            "loop": loop,
            "optimizers": {k: to_dict(v) for k, v in self.optimizers.items()},
            "context": self.context or "cpu",
            "type_config": self.type_config or "float",
        }

    def check(self, space: SearchSpace) -> None:
        """Refuses a space whose child networks cannot be trained on the data: another space
        than the evaluator's, a dataset that is missing or gives fewer examples than a batch,
        a child that does not run on ``input_shape`` or has fewer outputs than the classes.
        Loads the data and runs the first architecture's child on two examples, in the driver.
        """
        if space.name.lower() != self.space_name.lower():
            raise ConfigError(f"the train evaluator builds {self.space_name!r} networks, not "
                              f"the space {space.name!r}", "network.search_space")  # fmt: skip
        splits = self.data.splits()
        bundle = self.data.loaders(splits)
        x = next(iter(bundle.valid))[0][:2]
        architecture = space.architecture(0)
        outputs = self._child_outputs(space.genotype(architecture), x)
        if outputs < splits.num_classes:
            key = next((f"network.{k}" for k in ("num_classes", "n_classes")
                        if hasattr(self.space_config, k)), "network")  # fmt: skip
            classes = splits.num_classes
            raise ConfigError(f"the child networks have {outputs} outputs but "
                              f"{self.data.dataset} has {classes} classes", key)  # fmt: skip

    def _child_outputs(self, genotype: Mapping[str, str], x: np.ndarray) -> int:
        import nnabla as nn

        model = self.child(genotype, 0)
        try:
            with nn.auto_forward(False):
                model.apply(training=False)
                out = model(nn.Variable.from_numpy_array(x))
                logits = out[0] if isinstance(out, (tuple, list)) else out
                logits.forward(clear_buffer=True)
        except (RuntimeError, ValueError) as err:
            shape = list(x.shape[1:])
            raise ConfigError(f"the child network {dict(genotype)} does not run on inputs of "
                              f"shape {shape}: {err}", "input_shape") from None  # fmt: skip
        finally:
            nn.clear_parameters()
        return int(logits.shape[1])

    def use_output(self, folder: Path) -> None:
        self.output = Path(folder)

    def load(self) -> Any:
        """The loaders (made once per worker process); selects nnabla's context. In a worker
        process whose logging nobody set up, a trial logs to its own ``log.txt`` and only its
        warnings to the worker's console."""
        import nnabla as nn
        from nnabla.ext_utils import get_extension_context

        log = logging.getLogger("nnabla_nas")
        if not log.handlers:
            console = logging.StreamHandler()
            console.setLevel(logging.WARNING)
            log.addHandler(console)
            log.propagate = False

        ctx = get_extension_context(self.context or "cpu", device_id=str(self.device_id or 0),
                                    type_config=self.type_config or "float")  # fmt: skip
        nn.set_default_context(ctx)
        return self.data.loaders()

    def child(self, genotype: Mapping[str, str], seed: int) -> Any:
        """The fixed network of ``genotype`` (``label -> candidate``), its weights drawn from
        ``RandomState(seed)``."""
        from ..contrib import SPACES
        from ..genotype import Genotype

        space = SPACES.get(self.space_name)
        rng = np.random.RandomState(seed)
        return space(self.space_config, genotype=Genotype(self.space_name, genotype), rng=rng)

    def evaluate(self, request: TrialRequest, resources: Any) -> dict[str, Any]:
        if self.output is None:
            raise RuntimeError("the train evaluator has no output folder (run_experiment sets "
                               "it; or call use_output)")  # fmt: skip
        folder = trial_folder(self.output, request.trial)
        with _locked(folder):
            described = json.loads(json.dumps(self.describe()))
            what = {"trial": request.trial, "genotype": dict(request.genotype),
                    "seed": request.seed, "evaluator": described}  # fmt: skip
            previous = _read_json(folder / "trial.json")
            if previous is not None and {k: previous.get(k) for k in what} != what:
                logger.warning("%s holds another trial: starting it afresh", folder)
                for path in folder.iterdir():
                    if path.name != ".lock":
                        shutil.rmtree(path) if path.is_dir() else path.unlink()
                previous = None
            results = _read_json(folder / "results.json") if previous is not None else None
            if results is not None and "best" in results:
                logger.info("trial %d: %s holds its finished run; not trained again",
                            request.trial, folder)  # fmt: skip
            else:
                attempt = {"attempt": request.attempt, "pid": os.getpid(),
                           "host": socket.gethostname()}  # fmt: skip
                atomic_write_json(folder / "trial.json", {**what, **attempt})
                results = self._train(request, resources, folder)
            shutil.rmtree(folder / "checkpoint", ignore_errors=True)
        return self.figures(results)

    def _train(self, request: TrialRequest, data: Any, folder: Path) -> dict[str, Any]:
        from ..runner.monitor import log_to_file

        handler = log_to_file(folder)  # the trial's own log.txt, resume messages included
        try:
            return self._run_trainer(request, data, folder)
        finally:
            if handler is not None:
                logging.getLogger("nnabla_nas").removeHandler(handler)
                handler.close()

    def _run_trainer(self, request: TrialRequest, data: Any, folder: Path) -> dict[str, Any]:
        import nnabla as nn

        from ..genotype import Genotype, save_genotype
        from ..runner.trainer import Trainer

        extra = {"trial": request.trial, "seed": request.seed}
        save_genotype(folder / "arch.h5", Genotype(self.space_name, request.genotype, {}, extra))
        nn.clear_parameters()
        nn.random.seed(request.seed)
        model = self.child(request.genotype, request.seed)
        trainer = Trainer(model, data, folder, loop=self.loop, optimizers=self.optimizers,
                          seed=request.seed)  # fmt: skip
        checkpoints = folder / "checkpoint"
        if checkpoints.is_dir() and any(checkpoints.iterdir()) and trainer.resume():
            logger.info("trial %d continues from its checkpoint in %s", request.trial, folder)
        try:
            return trainer.run()
        finally:
            nn.clear_parameters()

    @staticmethod
    def figures(results: Mapping[str, Any]) -> dict[str, Any]:
        """A trial's figures from its Trainer ``results.json`` (its best validation epoch)."""
        best = results["best"]
        return {
            "valid_acc": 1.0 - float(best["valid_error"]),
            "valid_error": float(best["valid_error"]),
            "valid_loss": float(best["valid_loss"]),
            "train_loss": float(best["train_loss"]),
            "train_error": float(best["train_error"]),
            "best_epoch": int(best["epoch"]),
            "epochs": int(results["epochs"]),
            "params": int(results["num_parameters"]),
        }

    def report(self, best: TrialRecord) -> dict[str, Any]:
        """The best trial's test figures at its best validation epoch (the weights its
        ``weights.h5`` holds), read from its ``results.json``."""
        if self.output is None:
            return {}
        path = trial_folder(self.output, best.trial) / "results.json"
        results = _read_json(path)
        if results is None or "best" not in results:
            logger.warning("%s is not readable here (a folder not shared with the workers?): "
                           "the best trial's test accuracy is not reported", path)  # fmt: skip
            return {}
        epoch = results["best"]
        return {"test_acc": 1.0 - float(epoch["test_error"]), "test_error":
                float(epoch["test_error"]), "test_loss": float(epoch["test_loss"]),
                "epoch": int(epoch["epoch"]), "folder": str(path.parent)}  # fmt: skip
