"""``run_experiment``: a resumable multi-trial search, the entry point the CLI calls.

The output folder:

=====================  ======================================================================
``experiment.json``    what the experiment is (space, strategy and seed, evaluator, objective,
                       estimates, window, budget): a resume must match it
``trials.jsonl``       one finished trial per line (:class:`~nnabla_nas.trials.record.
                       TrialRecord`), appended as each finishes: the experiment's state
``results.json``       the best trial (architecture, genotype, scores, estimates), counts, the
                       Pareto front's trials
``arch.h5``            the best architecture as a genotype (``nnabla_nas.genotype``);
                       retrainable with the Trainer when the space is a registered one
``arch.png``           the best architecture drawn (with a ``model``: the space's
                       ``arch_graph``), and the space's own files of it (e.g. ``arch.json``)
``trials/``            what the evaluator keeps per trial (``train``: each trial's Trainer run)
``pareto.png``         the evaluator's metric against the cost (latency, MACs, FLOPs or
                       params), Pareto front marked (also in TensorBoard)
``tensorboard/``       scalars per trial, the best score so far, the Pareto image
=====================  ======================================================================

Bad input (an evaluator or table that does not fit the space, an unknown figure in the
objective, an unreachable scheduler, a fresh experiment in a folder that holds one, a resume that
does not match) is a ``ConfigError`` before anything is written.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence

from ..errors import ConfigError
from ..utils.io import atomic_write_json
from .driver import Recorder, drive, log_record
from .evaluator import Evaluator
from .executor import DaskExecutor, Executor, InlineExecutor
from .journal import Journal
from .objective import HardwareEstimates, Objective
from .record import TrialRecord
from .report import TrialBoard, best_trial, draw_best, write_outputs
from .space import SearchSpace
from .strategy import Strategy

__all__ = ["FORMAT", "ExperimentResult", "run_experiment"]

logger = logging.getLogger(__name__)

FORMAT = "nnabla_nas.trials/1"
_MATCHED = ("space", "strategy", "evaluator", "objective", "estimates")


@dataclass
class ExperimentResult:
    """What :func:`run_experiment` returns.

    Attributes:
        output: the output folder.
        records: every trial, in trial order.
        best: the best feasible trial (None if no trial was evaluated).
        results: the content of ``results.json``.
    """

    output: Path
    records: list[TrialRecord]
    best: TrialRecord | None
    results: dict[str, Any]


def _plain(obj: Any) -> Any:
    return json.loads(json.dumps(obj))


def _check_int(value: Any, key: str, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"must be an integer >= {minimum}, got {value!r}", key)


def _require(module: str, what: str) -> None:
    if importlib.util.find_spec(module) is None:
        raise ConfigError(f"{what} needs {module}, which is not installed; install it with "
                          "`pip install 'nnabla_nas[trials]'`", "algorithm")  # fmt: skip


@contextlib.contextmanager
def _executor(
    evaluator: Evaluator,
    workers: int | None,
    scheduler: str | None,
    window: int | None,
    timeout: float,
) -> Iterator[Executor]:
    if workers == 0 and scheduler is None:
        yield InlineExecutor(evaluator)
        return
    from .cluster import dask_client

    with dask_client(workers=workers, scheduler=scheduler, timeout=timeout) as client:
        yield DaskExecutor(client, evaluator, workers=window)


def _remove_experiment(output: Path) -> None:
    """Removes the files of a previous experiment in ``output`` (``overwrite``)."""
    import shutil

    for name in ("experiment.json", "trials.jsonl", "trials", "results.json", "arch.h5"):
        path = output / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def run_experiment(
    space: SearchSpace,
    strategy: Strategy,
    evaluator: Evaluator,
    output: str | os.PathLike,
    budget: int,
    *,
    objective: Objective | None = None,
    estimates: HardwareEstimates | None = None,
    workers: int | None = None,
    scheduler: str | None = None,
    resume: bool = False,
    window: int | None = None,
    retries: int = 2,
    cost: str | None = None,
    scheduler_timeout: float = 10.0,
    model: Any = None,
    input_shape: Sequence[int] | None = None,
    on_start: Callable[[], None] | None = None,
    overwrite: bool = False,
) -> ExperimentResult:
    """Runs (or resumes) a multi-trial search and writes its outputs (module docstring).

    Args:
        space: the decisions searched.
        strategy: a fresh strategy over ``space`` (its seed is the experiment's seed).
        evaluator: scores the trials (``TableEvaluator``, ...).
        output: the output folder.
        budget: the number of trials in all (a resume may raise it).
        objective: the score under constraints (default: the evaluator's metric alone).
        estimates: hardware estimates per trial (default: none).
        workers: worker processes of the local Dask cluster (default: one per core); 0 runs
            every trial in this process, without Dask.
        scheduler: the address of an existing Dask cluster (``tcp://HOST:PORT``).
        resume: continue the experiment in ``output`` (recorded trials are not run again).
        window: trials proposed ahead of the told results (default: the number of workers
            at the start; a resume keeps the experiment's).
        retries: submissions again of a trial whose worker died, before it is ``killed``.
        cost: the figure plotted against the score (default: latency, macs, flops, params).
        scheduler_timeout: seconds to wait for the ``scheduler``.
        model: the supernet the space was taken from (default: the estimates' model, if
            any): the best architecture is drawn to ``arch.png`` with its ``arch_graph``.
        input_shape: one example's shape, for the drawing.
        on_start: called once every check passed and the cluster is up, before the first
            file is written (the command line writes ``config.json`` and starts ``log.txt``).
        overwrite: an experiment already in ``output`` is removed (once every check passed)
            instead of refused.

    Raises:
        ConfigError: bad input (see the module docstring); nothing is written.
    """
    _check_int(budget, "budget", 1)
    _check_int(retries, "retries", 0)
    if window is not None:
        _check_int(window, "window", 1)
    if workers is not None:
        _check_int(workers, "--workers", 0)
    if strategy.space != space:
        raise ConfigError(f"the strategy searches {strategy.space}, not {space}", "algorithm")
    if strategy.proposed:
        raise ConfigError("the strategy has already proposed trials; give a fresh one",
                          "algorithm")  # fmt: skip
    _require("matplotlib", "the Pareto plot")
    evaluator.check(space)
    evaluator.use_output(Path(output))
    objective = objective or Objective(evaluator.metric)
    objective.check([*evaluator.metrics(), *(estimates.names() if estimates else [])])
    header = _plain({
        "format": FORMAT,
        "space": space.to_dict(),
        "strategy": strategy.describe(),
        "evaluator": evaluator.describe(),
        "objective": objective.describe(),
        "estimates": estimates.describe() if estimates else {},
    })  # fmt: skip

    output = Path(output)
    header_path, journal = output / "experiment.json", Journal(output / "trials.jsonl")
    records: list[TrialRecord] = []
    if resume:
        window = _match_header(header_path, header, window)
        records = journal.read()
    elif (header_path.exists() or journal.exists()) and not overwrite:
        raise ConfigError(f"{str(output)!r} already holds an experiment (experiment.json, "
                          "trials.jsonl); resume it, or choose another output folder",
                          "-o")  # fmt: skip
    known = {r.trial: r for r in records}
    start = time.time()
    with _executor(evaluator, workers, scheduler, window, scheduler_timeout) as executor:
        window = window or executor.workers
        if overwrite and not resume:
            _remove_experiment(output)
        if on_start is not None:
            on_start()
        atomic_write_json(header_path, {**header, "window": window, "budget": budget})
        journal.repair()
        logger.info("%s %s on %s: %d of %d trials recorded, window %d, output %s",
                    "resuming" if resume else "starting", strategy.name, space, len(known),
                    budget, window, output)  # fmt: skip
        board = TrialBoard(output / "tensorboard", records)
        try:

            def on_record(record: TrialRecord) -> None:
                journal.append(record)
                board.add(record)
                log_record(record)

            records = drive(strategy, executor, budget, Recorder(objective, estimates),
                            window=window, finished=known, on_record=on_record,
                            retries=retries)  # fmt: skip
        except BaseException:
            board.close()
            raise
    summary = {
        "strategy": strategy.describe(),
        "evaluator": evaluator.describe(),
        "objective": objective.describe(),
        "space": space.name,
        "budget": budget,
        "window": window,
        "wall_time": time.time() - start,
    }
    best = best_trial(records)
    final = evaluator.report(best) if best is not None else {}
    results = write_outputs(output, space, records, objective.metric, summary, board, cost,
                            final=final)  # fmt: skip
    model = model if model is not None else getattr(estimates, "model", None)
    if best is not None and model is not None:
        draw_best(model, output, best.architecture, input_shape)
    logger.info("%d trials, best: %s", len(records),
                f"trial {best.trial}, score {best.score:.4g}" if best else "none")  # fmt: skip
    return ExperimentResult(output, records, best, results)


def _match_header(path: Path, header: dict[str, Any], window: int | None) -> int:
    """The recorded window of the experiment at ``path``, after checking it matches."""
    if not path.is_file():
        raise ConfigError(f"nothing to resume: {str(path)!r} does not exist; start the "
                          "experiment without resume", "--resume")  # fmt: skip
    try:
        saved = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read {str(path)!r}: {err}", "--resume") from None
    if saved.get("format") != FORMAT:
        raise ConfigError(f"{str(path)!r} is not a {FORMAT} experiment", "--resume")
    for key in _MATCHED:
        if saved.get(key) != header[key]:
            raise ConfigError(
                f"the experiment in {str(path.parent)!r} was started with {key} "
                f"{saved.get(key)}, not {header[key]}; resume with the same {key}, or start "
                "in a new output folder",
                key,
            )
    recorded = int(saved["window"])
    if window is not None and window != recorded:
        raise ConfigError(f"the experiment was started with window {recorded}; a resume "
                          f"keeps it (got {window})", "window")  # fmt: skip
    return recorded
