"""The command line: ``python main.py [--search] -f CONFIG.json -a ALGORITHM -o OUTPUT_DIR``.

This is the only code that reads the raw experiment file and the files it names. It parses
everything strictly, assembles the components (context, data, model, algorithm) and runs.

Exit codes: 0 on success, 2 on bad input (one line naming the key or file and what is valid),
1 on a failure while running, 130 when interrupted by SIGINT (143 by SIGTERM) after writing a
checkpoint (``--resume`` continues the run; see ``docs/resume.rst``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any, Sequence

from ..config import ExperimentConfig, parse_dataclass
from ..errors import ConfigError, GenotypeError, Interrupted, NnasError, OutputError
from ..utils.io import atomic_write_json

logger = logging.getLogger("nnabla_nas")


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit 2 with one line, as for a bad config
        raise ConfigError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; ``--help`` lists the algorithms and search spaces."""
    from ..contrib import SPACES
    from ..runner import ALGORITHMS
    from .trials import add_arguments, strategy_names

    epilog = (
        f"algorithms (-a): {', '.join(ALGORITHMS.names())}\n"
        f"multi-trial strategies (-a, with a trials section): {', '.join(strategy_names())}\n"
        f"search spaces (network.search_space): {', '.join(SPACES.names())}\n\n"
        "example:\n  python main.py --search -f examples/mnist_search.json "
        "-a ProxylessNasSearcher -o log/mnist/search"
    )
    p = _ArgumentParser(
        prog="nnabla-nas",
        description="Neural architecture search on NNabla: search an architecture or train one.",
        epilog=epilog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-c",
        "--context",
        choices=["cpu", "cudnn"],
        default=None,
        help="nnabla extension (default: the file's 'context', else cpu)",
    )
    p.add_argument("-d", "--device-id", type=int, default=None, help="GPU id (cudnn)")
    p.add_argument(
        "-t",
        "--type-config",
        choices=["float", "half"],
        default=None,
        help="computation type (default float)",
    )
    p.add_argument(
        "--search",
        action="store_true",
        default=None,
        help="search mode: split the training data into weight and architecture parts",
    )
    p.add_argument(
        "-f",
        "--file",
        default=None,
        metavar="CONFIG.json",
        help="the experiment file (JSON); with --resume, default OUTPUT_DIR/config.json",
    )
    p.add_argument(
        "-a", "--algorithm", default=None, help="algorithm (default: the file's 'algorithm')"
    )
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT_DIR", help="output folder")
    p.add_argument(
        "--data-dir", default=None, help="datasets folder (default: the file's 'data_dir')"
    )
    add_arguments(p)
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY.PATH=VALUE",
        help="override a key of the experiment file (value in JSON syntax), repeatable",
    )
    p.add_argument("--seed", type=int, default=None, help="random seed (default: the file's)")
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="start afresh in an output folder that holds a previous run (its checkpoint/, "
        "tensorboard/ and log.txt are removed)",
    )
    p.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in OUTPUT_DIR from its last checkpoint (same configuration; "
        "--set may change only epoch, print_frequency, checkpoint_every, data_dir, device_id)",
    )
    return p  # fmt: skip


def read_experiment(path: str) -> dict[str, Any]:
    """Reads the experiment file; a missing or malformed file is a ConfigError naming it."""
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"experiment file not found: {path}", key="-f")
    try:
        data = json.loads(p.read_text())
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


def apply_override(data: dict[str, Any], assignment: str) -> None:
    """Applies one ``--set key.path=value`` (value parsed as JSON, else taken as a string)."""
    if "=" not in assignment:
        raise ConfigError(f"expected KEY.PATH=VALUE, got {assignment!r}", key="--set")
    path, text = assignment.split("=", 1)
    keys = [k for k in path.strip().split(".") if k]
    if not keys:
        raise ConfigError(f"empty key in {assignment!r}", key="--set")
    try:
        value = json.loads(text)
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


def resolve(args: argparse.Namespace) -> tuple[dict[str, Any], str]:
    """The raw experiment dict with overrides applied (command line wins), and the algorithm."""
    data = read_experiment(args.file)
    for assignment in args.set:
        apply_override(data, assignment)
    for flag, key in (("context", "context"), ("device_id", "device_id"),
                      ("type_config", "type_config"), ("data_dir", "data_dir"), ("seed", "seed"),
                      ("search", "search")):  # fmt: skip
        value = getattr(args, flag)
        if value is not None:
            data[key] = value
    algorithm = args.algorithm or data.get("algorithm")
    if algorithm is None:
        raise ConfigError("no algorithm given: pass -a ALGORITHM or set 'algorithm' in the file",
                          key="-a")  # fmt: skip
    return data, algorithm


def set_context(cfg: ExperimentConfig, device_id: int | None = None) -> None:
    """Selects nnabla's extension context (the CUDA extension is imported only when asked).

    ``device_id`` (the local rank of a data-parallel process) wins over ``cfg.device_id``.
    """
    import nnabla as nn
    from nnabla.ext_utils import get_extension_context

    ext = cfg.context or "cpu"
    device = device_id if device_id is not None else (cfg.device_id or 0)
    try:
        ctx = get_extension_context(
            ext, device_id=str(device), type_config=cfg.type_config or "float"
        )
    except ImportError as err:
        raise ConfigError(
            f"the {ext!r} extension is not installed ({err}); "
            "install nnabla_nas[cuda] or use -c cpu",
            key="context",
        ) from None
    nn.set_default_context(ctx)


#: What a run leaves in its output folder: a fresh run refuses a folder holding any of them.
RUN_FILES = ("config.json", "log.txt", "checkpoint", "tensorboard", "results.json", "weights.h5",
             "arch.h5")  # fmt: skip


def prepare_output(output: Path, overwrite: bool, resume: bool = False) -> None:
    """Creates the output folder and checks that it is writable.

    A fresh run refuses a folder holding a previous run (any of :data:`RUN_FILES`) unless
    ``overwrite``, which removes the previous run's ``checkpoint/``, ``tensorboard/`` and
    ``log.txt`` (its other files are replaced as the new run writes them). ``resume`` keeps
    everything.
    """
    if output.exists() and not output.is_dir():
        raise ConfigError(f"{output} exists and is not a folder", key="-o")
    previous = [name for name in RUN_FILES if (output / name).exists()]
    if previous and not (overwrite or resume):
        raise ConfigError(
            f"{output} holds a previous run ({', '.join(previous)}); continue it with --resume, "
            "choose another -o, or pass --overwrite to start afresh",
            key="-o",
        )
    try:
        if previous and overwrite:
            for name in ("checkpoint", "tensorboard", "log.txt"):
                path = output / name
                if path.is_dir():
                    shutil.rmtree(path)
                elif path.exists():
                    path.unlink()
        output.mkdir(parents=True, exist_ok=True)
        probe = output / ".write-test"
        probe.write_text("")
        probe.unlink()
        (output / "checkpoint").mkdir(exist_ok=True)
    except OSError as err:
        raise ConfigError(f"cannot write to output folder {output}: {err}", key="-o") from None


def resume_command(output: str | Path) -> str:
    """The command that resumes the run in ``output`` (shown when a run stops early)."""
    prog = sys.argv[0] if sys.argv and sys.argv[0].endswith("main.py") else None
    start = f"python {shlex.quote(prog)}" if prog else "nnabla-nas"
    return f"{start} --resume -o {shlex.quote(str(output))}"


def _resume_source(args: argparse.Namespace) -> Path | None:
    """With ``--resume``: the run's saved configuration (also the default ``-f``)."""
    if not args.resume:
        if args.file is None:
            raise ConfigError("the experiment file is required (except with --resume)", key="-f")
        return None
    if args.overwrite:
        raise ConfigError("--resume continues the run in -o, --overwrite starts afresh: give "
                          "one of them", key="--resume")  # fmt: skip
    saved = Path(args.output) / "config.json"
    if not saved.is_file():
        raise ConfigError(
            f"nothing to resume in {args.output}: no config.json (a run writes it when it "
            "starts); run without --resume",
            key="--resume",
        )
    if args.file is None:
        args.file = str(saved)
    return saved


def resolve_config(cfg: ExperimentConfig, options: Any) -> dict[str, Any]:
    """The resolved configuration (``config.json``): every key with its value, defaults
    included, and the algorithm's options."""
    resolved = cfg.to_dict()
    resolved["searcher"] = dataclasses.asdict(options)
    return resolved


def _resolved_saved(saved: Path, algo: Any) -> dict[str, Any]:
    """A run's saved ``config.json`` resolved by this version: keys added since the run started
    take their defaults (which is what the run computed with), so they are no difference."""
    raw = read_experiment(str(saved))
    try:
        cfg = ExperimentConfig.from_dict(raw)
        options = parse_dataclass(algo.Config, cfg.searcher, "searcher")
    except ConfigError as err:
        raise ConfigError(f"{saved} no longer parses ({err}); the run cannot be resumed by this "
                          "version", key="--resume") from None  # fmt: skip
    return resolve_config(cfg, options)


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parses ``argv``, runs the experiment and returns its results (raises on errors)."""
    import numpy as np

    from ..assemble import (
        build_algorithm,
        build_data,
        build_model,
        build_regularizers,
        load_data,
        load_network_genotype,
    )
    from ..distributed import make_communicator
    from ..runner import ALGORITHMS
    from ..runner.monitor import setup_logging

    setup_logging(None)
    args = build_parser().parse_args(argv)
    saved = _resume_source(args)
    raw, algorithm = resolve(args)
    from .trials import route

    searched = route(args, raw, algorithm, saved)  # a multi-trial strategy runs there
    if searched is not None:
        return searched
    algo_name = ALGORITHMS.canonical(algorithm, key="-a")
    algo = ALGORITHMS.get(algo_name)
    raw["algorithm"] = algo_name
    cfg = ExperimentConfig.from_dict(raw)
    # Several processes under mpirun: each takes its shard of every batch (docs/distributed.rst).
    comm = make_communicator(cfg.context or "cpu", cfg.type_config or "float")
    setup_logging(None, rank=comm.rank)
    if cfg.search and not algo.search:
        raise ConfigError(f"{algo_name} trains a fixed network; drop --search or pick a searcher",
                          key="--search")  # fmt: skip
    options = parse_dataclass(algo.Config, cfg.searcher, "searcher")
    resolved = resolve_config(cfg, options)
    if saved is not None:
        from ..resume import check_resume_config

        changed = check_resume_config(_resolved_saved(saved, algo), resolved, str(saved))
    genotype = load_network_genotype(cfg)
    if algo.search and genotype is not None:
        raise GenotypeError(
            "a searcher searches the whole space; remove network.genotype to search",
            key="network.genotype",
        )
    # Everything named by the file is checked before the output folder is touched.
    splits = load_data(cfg)
    set_context(cfg, device_id=comm.local_rank if comm.size > 1 else None)
    import nnabla as nn

    nn.random.seed(cfg.seed)
    nn.clear_parameters()
    model = build_model(cfg, genotype, rng=np.random.RandomState(cfg.seed))
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
    output = Path(args.output)
    failure = None
    if comm.is_main:  # rank 0 alone touches the output folder
        try:
            prepare_output(output, args.overwrite, resume=saved is not None)
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
    logger.info("experiment %s -> %s (%s on %s)", args.file, output, algo_name, cfg.dataset)
    if comm.size > 1:
        logger.info("%d data-parallel processes (%s)", comm.size, type(comm).__name__)
    runner = build_algorithm(cfg, algo, model, data, output, options, regularizers, comm)
    if saved is not None:
        runner.resume()
        if comm.is_main:  # after resume()'s checks: records the changed safe keys (epoch...)
            atomic_write_json(output / "config.json", resolved)
    results = runner.run()
    logger.info("done: outputs in %s", output)
    return results


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
