"""The command line: ``python main.py [--search] -f CONFIG.json -a ALGORITHM -o OUTPUT_DIR``.

This is the only code that reads the raw experiment file and the files it names. It parses
everything strictly, assembles the components (context, data, model, algorithm) and runs.

Exit codes: 0 on success, 2 on bad input (one line naming the key or file and what is valid),
1 on a failure while running, 130 when interrupted.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from .config import ExperimentConfig, parse_dataclass
from .errors import ConfigError, GenotypeError, NnasError
from .utils.io import atomic_write_json

logger = logging.getLogger("nnabla_nas")


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit 2 with one line, as for a bad config
        raise ConfigError(f"{message} (see --help)")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; ``--help`` lists the algorithms and search spaces."""
    from .contrib import SPACES
    from .runner import ALGORITHMS

    epilog = (
        f"algorithms (-a): {', '.join(ALGORITHMS.names())}\n"
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
        "-f", "--file", required=True, metavar="CONFIG.json", help="the experiment file (JSON)"
    )
    p.add_argument(
        "-a", "--algorithm", default=None, help="algorithm (default: the file's 'algorithm')"
    )
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT_DIR", help="output folder")
    p.add_argument(
        "--data-dir", default=None, help="datasets folder (default: the file's 'data_dir')"
    )
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
        help="allow writing into an output folder that holds a previous run",
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


def set_context(cfg: ExperimentConfig) -> None:
    """Selects nnabla's extension context (the CUDA extension is imported only when asked)."""
    import nnabla as nn
    from nnabla.ext_utils import get_extension_context

    ext = cfg.context or "cpu"
    try:
        ctx = get_extension_context(
            ext, device_id=str(cfg.device_id or 0), type_config=cfg.type_config or "float"
        )
    except ImportError as err:
        raise ConfigError(
            f"the {ext!r} extension is not installed ({err}); "
            "install nnabla_nas[cuda] or use -c cpu",
            key="context",
        ) from None
    nn.set_default_context(ctx)


def prepare_output(output: Path, overwrite: bool) -> None:
    """Creates the output folder; refuses one holding a previous run unless ``overwrite``."""
    if output.exists() and not output.is_dir():
        raise ConfigError(f"{output} exists and is not a folder", key="-o")
    if (output / "config.json").exists() and not overwrite:
        raise ConfigError(
            f"{output} holds a previous run; choose another -o or pass --overwrite", key="-o"
        )
    try:
        output.mkdir(parents=True, exist_ok=True)
        probe = output / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise ConfigError(f"cannot write to output folder {output}: {err}", key="-o") from None


def setup_logging(output: Path | None) -> None:
    """Console logging, plus ``OUTPUT/log.txt``."""
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    fmt = logging.Formatter("%(asctime)s [%(levelname)s] %(message)s", "%Y-%m-%d %H:%M:%S")
    console = logging.StreamHandler(sys.stdout)
    console.setFormatter(fmt)
    logger.addHandler(console)
    if output is not None:
        fh = logging.FileHandler(output / "log.txt", mode="a")
        fh.setFormatter(fmt)
        logger.addHandler(fh)


def run(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Parses ``argv``, runs the experiment and returns its results (raises on errors)."""
    import numpy as np

    from .assemble import build_data, build_model, load_data, load_network_genotype
    from .runner import ALGORITHMS

    setup_logging(None)
    args = build_parser().parse_args(argv)
    raw, algorithm = resolve(args)
    algo_name = ALGORITHMS.canonical(algorithm, key="-a")
    algo = ALGORITHMS.get(algo_name)
    raw["algorithm"] = algo_name
    cfg = ExperimentConfig.from_dict(raw)
    if cfg.search and not algo.search:
        raise ConfigError(f"{algo_name} trains a fixed network; drop --search or pick a searcher",
                          key="--search")  # fmt: skip
    options = parse_dataclass(algo.Config, cfg.searcher, "searcher")
    genotype = load_network_genotype(cfg)
    if algo.search and genotype is not None:
        raise GenotypeError(
            "a searcher searches the whole space; remove network.genotype to search",
            key="network.genotype",
        )
    # Everything named by the file is checked before the output folder is touched.
    splits = load_data(cfg)
    set_context(cfg)
    import nnabla as nn

    nn.random.seed(cfg.seed)
    nn.clear_parameters()
    model = build_model(cfg, genotype, search=algo.search, rng=np.random.RandomState(cfg.seed))
    if not algo.search and model.choices():
        raise ConfigError(
            f"{algo_name} trains a fixed network but this {cfg.network.search_space} network has "
            f"{len(model.choices())} open choices; give the searched genotype (network.genotype: "
            "an arch.h5) or a single candidate per choice",
            key="network.genotype",
        )
    if algo.search and not model.choices():
        raise ConfigError(
            f"this {cfg.network.search_space} network has no choice to search (one candidate per "
            "block); add candidates or use -a Trainer",
            key="network.candidates",
        )
    data = build_data(cfg, splits, search=algo.search)
    output = Path(args.output)
    prepare_output(output, args.overwrite)
    setup_logging(output)
    resolved = cfg.to_dict()
    resolved["searcher"] = dataclasses.asdict(options)
    atomic_write_json(output / "config.json", resolved)
    logger.info("experiment %s -> %s (%s on %s)", args.file, output, algo_name, cfg.dataset)
    runner = algo(model, cfg, data, output, options=options, seed=cfg.seed + 1)
    results = runner.run()
    logger.info("done: outputs in %s", output)
    return results


def main(argv: Sequence[str] | None = None) -> int:
    """Console entry point; returns the exit code."""
    try:
        run(argv)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except NnasError as err:
        logger.error("%s", err)
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except SystemExit as err:  # argparse --help
        return int(err.code or 0)
    except Exception:
        logger.exception("the run failed")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
