"""Multi-trial search from the command line (``docs/trials.rst``)::

    nnabla-nas --search -a EvolutionSearcher -f examples/mnist_trials.json -o log/trials
    nnabla-nas ... --workers 4                      # a local Dask cluster of 4 worker processes
    nnabla-nas ... --scheduler tcp://HOST:8786      # an existing Dask cluster
    nnabla-nas --resume -o log/trials               # continue an interrupted experiment

``-a`` names a strategy (``RandomTrials``, ``EvolutionSearcher``, ``TpeTrials``); the
experiment file's ``trials`` section gives the budget and the evaluator, ``searcher`` the
strategy's options, ``regularizer`` the hardware constraints, and the rest (network, data,
optimizer) what the ``train`` evaluator trains. Everything is checked, the data loaded and one
child network run, and the scheduler reached, before the first file is written; the output
folder then holds ``config.json`` and ``log.txt`` besides the experiment's files.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from ..config import ExperimentConfig, parse_dataclass
from ..errors import ConfigError, GenotypeError
from ..utils.io import atomic_write_json

__all__ = ["is_strategy", "route", "run_trials"]

logger = logging.getLogger("nnabla_nas")

#: What an experiment leaves in its output folder (besides a one-shot run's files).
EXPERIMENT_FILES = ("experiment.json", "trials.jsonl", "trials", "pareto.png", "arch.png")
#: Keys a resume may change: the budget, logging, where the same data lives, the GPU.
RESUMABLE = ("trials.budget", "print_frequency", "checkpoint_every", "data_dir", "device_id")


def strategy_names() -> list[str]:
    """The registered multi-trial strategies (for ``--help``)."""
    from ..trials import STRATEGIES

    return STRATEGIES.names()


def is_strategy(algorithm: str) -> bool:
    """Whether ``-a`` names a multi-trial strategy."""
    from ..trials import STRATEGIES

    return algorithm in STRATEGIES


def route(
    args: argparse.Namespace, raw: dict[str, Any], algorithm: str, saved: Path | None
) -> dict[str, Any] | None:
    """Runs a multi-trial search when ``-a`` names a strategy (its results); None for another
    algorithm, after refusing what only a multi-trial search uses (the ``trials`` section,
    ``--workers``, ``--scheduler``)."""
    if is_strategy(algorithm):
        return run_trials(args, raw, algorithm, saved)
    hint = f"a multi-trial strategy ({', '.join(strategy_names())})"
    if raw.get("trials") is not None:
        raise ConfigError(f"only {hint} reads it; remove it or pick a strategy with -a",
                          "trials")  # fmt: skip
    for flag in ("workers", "scheduler"):
        if getattr(args, flag, None) is not None:
            raise ConfigError(f"only {hint} runs on Dask workers", f"--{flag}")
    return None


def _connect_timeout() -> float:
    """Dask's ``distributed.comm.timeouts.connect`` in seconds (``DASK_DISTRIBUTED__COMM__
    TIMEOUTS__CONNECT=5s`` changes how long an unreachable ``--scheduler`` is waited for)."""
    try:
        import dask
        import distributed  # noqa: F401 - registers its configuration
        from dask.utils import parse_timedelta
    except ImportError:  # the trials extra is missing: run_experiment says so
        return 10.0
    return float(parse_timedelta(dask.config.get("distributed.comm.timeouts.connect"), "s"))


def _prepare(output: Path, overwrite: bool, resume: bool) -> list[Path]:
    """Refuses a folder holding a previous run or experiment (unless ``overwrite`` or
    ``resume``); returns what ``overwrite`` removes once the experiment starts."""
    from . import RUN_FILES

    if output.exists() and not output.is_dir():
        raise ConfigError(f"{output} exists and is not a folder", key="-o")
    previous = [output / n for n in (*RUN_FILES, *EXPERIMENT_FILES) if (output / n).exists()]
    if previous and not (overwrite or resume):
        raise ConfigError(f"{output} holds a previous run ({', '.join(p.name for p in previous)});"
                          " continue it with --resume, choose another -o, or pass --overwrite "
                          "to start afresh", key="-o")  # fmt: skip
    return previous if overwrite else []


def _check_resume(saved: Path, resolved: dict[str, Any], strategy_cls: Any) -> None:
    """Refuses a resume whose configuration differs from the saved one (resolved with this
    version's defaults) in another key than :data:`RESUMABLE`."""
    from ..resume import config_differences
    from . import _resolved_saved
    from .output import read_saved_config

    before = _resolved_saved(saved, read_saved_config(saved), strategy_cls)
    before.pop("epoch", None)
    differ = [k for k in config_differences(before, resolved)
              if not any(k == s or k.startswith(s + ".") for s in RESUMABLE)]  # fmt: skip
    if differ:
        raise ConfigError(f"the experiment in {saved.parent} was started with other values of "
                          f"{', '.join(differ)}; only {', '.join(RESUMABLE)} may change",
                          "--resume")  # fmt: skip


def _space(cfg: ExperimentConfig, model: Any) -> Any:
    from ..trials import SearchSpace

    if not model.choices():
        if not getattr(model, "searchable", True):
            raise ConfigError(f"the {cfg.network.search_space} space is a fixed network with "
                              "nothing to search; train it with -a Trainer", "-a")  # fmt: skip
        raise ConfigError(f"this {cfg.network.search_space} network has no choice to search; "
                          "add candidates", "network")  # fmt: skip
    return SearchSpace.from_model(model, cfg.network.search_space)


def _objective(cfg: ExperimentConfig, model: Any, metric: str) -> tuple[Any, Any]:
    """The hardware estimates and the objective of the ``regularizer`` section."""
    from ..assemble import build_regularizers
    from ..trials import Constraint, HardwareEstimates, Objective

    unknown = [label for label in cfg.trials.hard if label not in cfg.regularizer]
    if unknown:
        raise ConfigError(f"{unknown} are not sections of regularizer (sections: "
                          f"{sorted(cfg.regularizer)})", "trials.hard")  # fmt: skip
    regularizers = build_regularizers(cfg)
    extra = {label: reg.estimator for label, reg in regularizers.items()}
    estimates = HardwareEstimates.default(model, cfg.input_shape, extra)
    constraints = [Constraint.from_regularizer(label, section, hard=label in cfg.trials.hard)
                   for label, section in cfg.regularizer.items()]  # fmt: skip
    return estimates, Objective(metric, constraints)


def _setting(cfg: ExperimentConfig) -> Any:
    from ..assemble import loop_options
    from ..trials import DataSetting, TrialSetting

    data = DataSetting(
        cfg.dataset, cfg.data_dir, tuple(cfg.input_shape), cfg.batch_size_train,
        cfg.batch_size_valid, cfg.mini_batch_train, cfg.mini_batch_valid, cfg.train_portion,
        cfg.cutout, cfg.seed,
    )  # fmt: skip
    return TrialSetting(cfg.network.search_space, cfg.network.space, data, loop_options(cfg),
                        dict(cfg.optimizer), cfg.context, cfg.type_config,
                        cfg.device_id)  # fmt: skip


def run_trials(
    args: argparse.Namespace, raw: dict[str, Any], algorithm: str, saved: Path | None
) -> dict[str, Any]:
    """Checks and runs the multi-trial search of ``-a algorithm`` (the module docstring);
    returns the experiment's ``results.json``."""
    import nnabla as nn

    from ..assemble import build_model
    from ..runner.monitor import setup_logging
    from ..trials import STRATEGIES, run_experiment
    from . import resolve_config
    from .device import choose_device, set_context

    name = STRATEGIES.canonical(algorithm, key="-a")
    raw["algorithm"] = name
    # Dask's INFO lines (every connection, every worker start) drown the experiment's log; the
    # variable reaches the worker processes too (set it to "info" to see them).
    os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")
    if "epoch" in raw:
        raise ConfigError("a multi-trial search trains each trial for trials.evaluator."
                          "trial_epochs epochs; remove epoch", "epoch")  # fmt: skip
    cfg = ExperimentConfig.from_dict(raw)
    if cfg.trials is None:
        raise ConfigError(f"{name} needs a trials section, e.g. {{\"budget\": 20, \"evaluator\": "
                          "{\"name\": \"train\", \"trial_epochs\": 2}} (docs/trials.rst)",
                          "trials")  # fmt: skip
    strategy_cls = STRATEGIES.get(name)
    options = parse_dataclass(strategy_cls.Config, cfg.searcher, "searcher")
    if getattr(cfg.network.space, "genotype", None):
        raise GenotypeError("a search searches the whole space; remove network.genotype",
                            key="network.genotype")  # fmt: skip
    resolved = resolve_config(cfg, options)
    resolved.pop("epoch")
    if saved is not None:
        _check_resume(saved, resolved, strategy_cls)
    device = choose_device(cfg.context, cfg.device_id, cfg.type_config)
    if device.warning:
        logger.warning("%s", device.warning)
    set_context(device)
    nn.random.seed(cfg.seed)
    nn.clear_parameters()
    model = build_model(cfg, None, rng=np.random.RandomState(cfg.seed))
    space = _space(cfg, model)
    strategy = strategy_cls(space, cfg.seed, options)
    evaluator = cfg.trials.evaluator.build(_setting(cfg))
    estimates, objective = _objective(cfg, model, evaluator.metric)
    output = Path(args.output)
    stale = _prepare(output, args.overwrite, resume=saved is not None)

    def on_start() -> None:  # every check passed: the first writes
        for path in stale:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        output.mkdir(parents=True, exist_ok=True)
        setup_logging(output)
        atomic_write_json(output / "config.json", resolved)
        logger.info("experiment %s -> %s (%s, %s evaluator, %d trials)", args.file, output,
                    name, evaluator.kind, cfg.trials.budget)  # fmt: skip

    result = run_experiment(
        space, strategy, evaluator, output, cfg.trials.budget, objective=objective,
        estimates=estimates, workers=args.workers, scheduler=args.scheduler,
        resume=saved is not None, window=cfg.trials.window, retries=cfg.trials.retries,
        cost=cfg.trials.cost, scheduler_timeout=_connect_timeout(), model=model,
        input_shape=cfg.input_shape, on_start=on_start, overwrite=args.overwrite,
    )  # fmt: skip
    logger.info("done: outputs in %s", output)
    return result.results
