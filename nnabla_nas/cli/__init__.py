"""The command line: ``python main.py [--search] -f CONFIG.json -a ALGORITHM -o OUTPUT_DIR``.

This is the only code that reads the raw experiment file and the files it names. It parses
everything strictly, assembles the components (context, data, model, algorithm) and runs.

Exit codes: 0 on success, 2 on bad input (one line naming the key or file and what is valid),
1 on a failure while running, 130 when interrupted by SIGINT (143 by SIGTERM) after writing a
checkpoint (``--resume`` continues the run; see ``docs/resume.rst``).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from ..errors import ConfigError, GenotypeError, Interrupted, NnasError, OutputError
from ..parsing import load_json
from ..utils.io import atomic_write_json
from .args import build_parser as build_parser  # re-exported; no nnabla: --help works without
from .args import parse_args
from .output import (
    RUN_FILES,
    check_output_arg,
    prepare_output,
    resume_command,
    resume_source,
)

if TYPE_CHECKING:
    from ..config import ExperimentConfig

__all__ = [
    "RUN_FILES",
    "apply_override",
    "build_parser",
    "main",
    "prepare_output",
    "read_experiment",
    "resolve",
    "resolve_config",
    "resume_command",
    "run",
]

logger = logging.getLogger("nnabla_nas")


class _NnablaStartup(logging.Filter):
    """Drops nnabla's start-up lines ("Initializing CPU extension...", one per extension
    loaded): a refused command prints one line, its error."""

    _LINE = re.compile(r"^Initializing \S+ extension\.\.\.$")

    def filter(self, record: logging.LogRecord) -> bool:
        return not self._LINE.match(str(record.msg))


def quiet_nnabla_startup() -> None:
    """Silences nnabla's start-up lines for this process. Called when the command line is
    imported, before anything imports nnabla (this module imports it lazily)."""
    nnabla_logger = logging.getLogger("nnabla")
    if not any(isinstance(f, _NnablaStartup) for f in nnabla_logger.filters):
        nnabla_logger.addFilter(_NnablaStartup())


quiet_nnabla_startup()


def read_experiment(path: str) -> dict[str, Any]:
    """Reads the experiment file strictly (:func:`~nnabla_nas.parsing.load_json`: no duplicate
    key, no NaN or Infinity, a bounded nesting); a missing or malformed file is a ConfigError
    naming it."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"experiment file not found: {path}", key="-f")
    try:
        data = load_json(p.read_text(), path, key="-f")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"cannot read experiment file {path}: {err}", key="-f") from None
    except json.JSONDecodeError as err:
        raise ConfigError(
            f"{path} is not valid JSON (line {err.lineno}, column {err.colno}: {err.msg})",
            key="-f",
        ) from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a JSON object", key="-f")
    return data


_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_#-]*$")


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Applies one ``--set key.path=value`` (value parsed as JSON, else taken as a string).

    Every key of the path is a name (letters, digits, ``_``, ``-``, ``#``): an empty part
    (``.epoch..``) or a stray character is refused, not dropped.
    """
    if "=" not in assignment:
        raise ConfigError(f"expected KEY.PATH=VALUE, got {assignment!r}", key="--set")
    path, text = assignment.split("=", 1)
    keys = path.split(".")
    bad = next((k for k in keys if not _KEY.match(k)), None)
    if bad is not None:
        what = "an empty key" if not bad else f"the key {bad!r}"
        raise ConfigError(
            f"{path!r} has {what}: give KEY.PATH as names joined by dots (e.g. "
            "optimizer.train.solver.lr=0.1)",
            key="--set",
        )
    try:
        value = load_json(text, f"--set {assignment}", key="--set")
    except json.JSONDecodeError:
        value = text
    node = data
    for i, k in enumerate(keys[:-1]):
        child = node.get(k)
        if child is None:
            child = node[k] = {}
        if not isinstance(child, dict):
            raise ConfigError(f"{'.'.join(keys[: i + 1])} is not a section", key="--set")
        node = child
    node[keys[-1]] = value


def resolve(
    args: argparse.Namespace, default_algorithm: str | None = None
) -> tuple[dict[str, Any], str]:
    """The raw experiment dict with overrides applied (command line wins), and the algorithm
    (``-a``, else the file's, else ``default_algorithm``: a resumed run's)."""
    data = read_experiment(args.file)
    for assignment in args.set:
        apply_override(data, assignment)
    for flag, key in (("context", "context"), ("device_id", "device_id"),
                      ("type_config", "type_config"), ("data_dir", "data_dir"), ("seed", "seed"),
                      ("search", "search")):  # fmt: skip
        value = getattr(args, flag)
        if value is not None:
            data[key] = value
    algorithm = args.algorithm or data.get("algorithm") or default_algorithm
    if algorithm is None:
        raise ConfigError("no algorithm given: pass -a ALGORITHM or set 'algorithm' in the file",
                          key="-a")  # fmt: skip
    return data, algorithm


def resolve_config(cfg: ExperimentConfig, options: Any) -> dict[str, Any]:
    """The resolved configuration (``config.json``): every key with its value, defaults
    included, and the algorithm's options."""
    resolved = cfg.to_dict()
    resolved["searcher"] = dataclasses.asdict(options)
    return resolved


def _resolved_saved(saved: Path, raw: dict[str, Any], algo: Any) -> dict[str, Any]:
    """A run's saved ``config.json`` (``raw``, read strictly by
    :func:`~nnabla_nas.cli.output.read_saved_config`) resolved by this version: keys added
    since the run started take their defaults (which is what the run computed with), so they
    are no difference."""
    from ..config import ExperimentConfig, parse_dataclass

    try:
        cfg = ExperimentConfig.from_dict(raw)
        options = parse_dataclass(algo.Config, cfg.searcher, "searcher")
    except ConfigError as err:
        raise ConfigError(f"{saved} no longer parses ({err}); the run cannot be resumed by this "
                          "version", key="--resume") from None  # fmt: skip
    return resolve_config(cfg, options)


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parses ``argv``, runs the experiment and returns its results (raises on errors). The
    output folder is locked while the run goes (:mod:`nnabla_nas.utils.lock`)."""
    args = parse_args(argv, tuple(SUBCOMMANDS))  # before any import of nnabla (--help)
    with contextlib.ExitStack() as held:
        return _run(args, held)


def _run(args: argparse.Namespace, held: contextlib.ExitStack) -> dict[str, Any]:
    import numpy as np

    from ..assemble import (
        build_algorithm,
        build_data,
        build_model,
        build_regularizers,
        load_data,
        load_network_genotype,
    )
    from ..config import ExperimentConfig, parse_dataclass, physical_memory
    from ..distributed import make_communicator
    from ..runner import ALGORITHMS
    from ..runner.monitor import setup_logging
    from .device import choose_device, set_context
    from .summary import run_summary

    setup_logging(None)
    output = check_output_arg(args.output)
    source = resume_source(args)
    saved = source[0] if source is not None else None
    raw, algorithm = resolve(args, source[1]["algorithm"] if source is not None else None)
    from .trials import route

    searched = route(args, raw, algorithm, saved)  # a multi-trial strategy runs there
    if searched is not None:
        return searched
    algo_name = ALGORITHMS.canonical(algorithm, key="-a")
    algo = ALGORITHMS.get(algo_name)
    raw["algorithm"] = algo_name
    cfg = ExperimentConfig.from_dict(raw)
    # Several processes under mpirun: each takes its shard of every batch (docs/distributed.rst).
    device = choose_device(cfg.context, cfg.device_id, cfg.type_config)
    comm = make_communicator(device.context, device.type_config)
    setup_logging(None, rank=comm.rank)
    if device.warning:
        logger.warning("%s", device.warning)
    if cfg.search and not algo.search:
        raise ConfigError(f"{algo_name} trains a fixed network; drop --search or pick a searcher",
                          key="--search")  # fmt: skip
    options = parse_dataclass(algo.Config, cfg.searcher, "searcher")
    resolved = resolve_config(cfg, options)
    if source is not None:
        from ..resume import check_resume_config

        changed = check_resume_config(_resolved_saved(saved, source[1], algo), resolved,
                                      str(saved))  # fmt: skip
    genotype = load_network_genotype(cfg)
    if algo.search and genotype is not None:
        raise GenotypeError(
            "a searcher searches the whole space; remove network.genotype to search",
            key="network.genotype",
        )
    # Everything named by the file is checked before the output folder is touched.
    splits = load_data(cfg)
    set_context(device, device_id=comm.local_rank if comm.size > 1 else None)
    import nnabla as nn

    nn.random.seed(cfg.seed)
    nn.clear_parameters()
    try:
        model = build_model(cfg, genotype, rng=np.random.RandomState(cfg.seed))
    except MemoryError:
        raise ConfigError(
            f"the {cfg.network.search_space} network does not fit in this machine's memory "
            f"({physical_memory() / 1e9:.3g} GB): lower its sizes (classes, channels, widths, "
            "cells)",
            key="network",
        ) from None
    if not algo.search and model.choices():
        raise ConfigError(
            f"{algo_name} trains a fixed network but this {cfg.network.search_space} network has "
            f"{len(model.choices())} open choices; give the searched genotype (network.genotype: "
            "an arch.h5) or a single candidate per choice",
            key="network.genotype",
        )
    if algo.search and not model.choices():
        if not getattr(model, "searchable", True):
            raise ConfigError(
                f"the {cfg.network.search_space} space is a fixed network with nothing to search; "
                "train it with -a Trainer (without --search)",
                key="-a",
            )
        drawn = getattr(cfg.network.space, "random_init", False)
        raise ConfigError(
            f"this {cfg.network.search_space} network has no choice to search ("
            + ("random_init draws a fixed architecture); remove random_init" if drawn else
               "one candidate per block); add candidates")
            + " or use -a Trainer",
            key="network.random_init" if drawn else "network.candidates",
        )  # fmt: skip
    regularizers = build_regularizers(cfg)
    data = build_data(cfg, splits, search=algo.search, num_shards=comm.size, shard=comm.rank)
    failure = None
    if comm.is_main:  # rank 0 alone touches the output folder
        try:
            if saved is not None:  # (reading only: a refused resume leaves the folder as it was)
                _check_resumable(output, algo_name, len(data.train), cfg)
            held.enter_context(prepare_output(output, args.overwrite, resume=saved is not None))
        except ConfigError as err:
            failure = err
    if comm.size > 1:  # the other ranks learn rank 0's verdict
        verdict = comm.broadcast(None if failure is None else (failure.message, failure.key))
        if verdict is not None and failure is None:
            failure = ConfigError(*verdict)
    if failure is not None:
        raise failure
    setup_logging(output, rank=comm.rank)
    if saved is not None:
        logger.info("resuming the run in %s%s", output,
                    f" with changed {', '.join(changed)}" if changed else "")  # fmt: skip
    if comm.is_main and saved is None:
        atomic_write_json(output / "config.json", resolved)
    logger.info("experiment %s -> %s (%s on %s; device %s)", args.file, output, algo_name,
                cfg.dataset, device.describe())  # fmt: skip
    if comm.size > 1:
        logger.info("%d data-parallel processes (%s)", comm.size, type(comm).__name__)
    runner = build_algorithm(cfg, algo, model, data, output, options, regularizers, comm)
    if saved is not None:
        runner.resume()
        if comm.is_main:  # after resume()'s checks: records the changed safe keys (epoch...)
            atomic_write_json(output / "config.json", resolved)
    results = runner.run()
    if comm.is_main:
        logger.info("%s", run_summary(results, output))
    return results


def _check_resumable(output: Path, algorithm: str, steps: int, cfg: ExperimentConfig) -> None:
    """The checkpoint of a resumed run read and checked before anything is written."""
    from ..runner.snapshots import check_resumable
    from ..utils.lock import check_unlocked

    check_unlocked(output)  # (a run going on writes its checkpoints meanwhile)
    check_resumable(output, algorithm, steps, cfg.warmup, cfg.epoch)


def _failed(code: int, message: str | None, collective: bool) -> int:
    """Reports a failure and returns its exit code. Under mpirun rank 0 reports (another rank
    only a failure of its own), and :func:`~nnabla_nas.distributed.end_failed_run` makes sure
    that no process is left waiting for one that failed."""
    from ..distributed import end_failed_run, launched_rank

    rank = launched_rank()
    text = f"[rank {rank}] {message}" if rank and message else message
    if text and (rank == 0 or not collective):
        print(text, file=sys.stderr, flush=True)
    return end_failed_run(code, collective, text if rank and collective else None)


#: The other commands, ``nnabla-nas NAME ...``: module (imported when used) with ``main(argv)``.
SUBCOMMANDS = {
    "latency": "nnabla_nas.cli.latency",
    "nnmeter-build": "nnabla_nas.cli.nnmeter_build",
    "export": "nnabla_nas.cli.export",
}


def _subcommand(name: str) -> Any:
    """The module of subcommand ``name``, or None when it is not installed in this tree."""
    import importlib

    try:
        return importlib.import_module(SUBCOMMANDS[name])
    except ModuleNotFoundError as err:
        if err.name != SUBCOMMANDS[name]:
            raise  # the command exists but needs a package that is missing
        return None


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        command = _subcommand(args[0])
        if command is not None:
            return command.main(args[1:])
    try:
        run(argv)
    except ConfigError as err:
        return _failed(err.exit_code, f"error: {err}", collective=True)
    except (Interrupted, OutputError) as err:
        hint = f"resume with: {resume_command(err.output)}" if err.output else ""
        log = logger.warning if isinstance(err, Interrupted) else logger.error
        log("%s; %s", err, hint)
        stopped = isinstance(err, Interrupted)
        return _failed(err.exit_code, f"{'stopped' if stopped else 'error'}: {err}\n{hint}",
                       collective=stopped)  # fmt: skip
    except NnasError as err:
        logger.error("%s", err)
        return _failed(err.exit_code, f"error: {err}", collective=False)
    except KeyboardInterrupt:
        return _failed(130, "interrupted", collective=True)
    except SystemExit as err:  # argparse --help
        return int(err.code or 0)
    except Exception:
        logger.exception("the run failed")
        return _failed(1, None, collective=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
