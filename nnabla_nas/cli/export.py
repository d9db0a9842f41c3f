"""``nnabla-nas export -o RUN_DIR --format nnp|onnx``: the network of a run folder, for inference.

The run folder's ``config.json`` tells the network. A training run (``-a Trainer``: a fixed
network, a genotype or a reference) exports the trained network with its ``weights.h5``. A search
run (a supernet) exports the searched argmax network of its ``arch.h5`` with the supernet's
weights of the chosen candidates (``weights.h5``, carried over by
:meth:`~nnabla_nas.contrib.model.Model.copy_chosen_weights`). The files are written atomically
into RUN_DIR (``model.nnp``, ``model.onnx``) or to ``--output``.

Exit codes: 0 on success, 2 on bad input (one line naming the file, flag or function), 1 on a
failure while exporting.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

from ..errors import ConfigError, GenotypeError, NnasError

logger = logging.getLogger("nnabla_nas")

FORMATS = ("nnp", "onnx")


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # exit 2 with one line
        raise ConfigError(f"{message} (see nnabla-nas export --help)")


def build_parser() -> argparse.ArgumentParser:
    """The arguments of ``nnabla-nas export``."""
    p = _ArgumentParser(
        prog="nnabla-nas export",
        description="Export the network of a run folder (trained, or the searched argmax "
        "network) as NNP or ONNX, for inference.",
        epilog="example:\n  nnabla-nas export -o log/demo/train --format onnx",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "-o",
        "--output-dir",
        required=True,
        metavar="RUN_DIR",
        help="the run folder (its config.json, weights.h5 and, for a search, arch.h5)",
    )
    p.add_argument(
        "--format",
        action="append",
        required=True,
        choices=FORMATS,
        help="nnp (nnabla's format) or onnx; give it twice for both",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=1,
        metavar="N",
        help="the batch of the exported graph (default 1)",
    )
    p.add_argument(
        "--output",
        default=None,
        metavar="FILE",
        help="the file to write (one format only; default RUN_DIR/model.nnp or RUN_DIR/model.onnx)",
    )
    p.add_argument("--opset", type=int, default=11, help="ONNX opset (default 11)")
    return p


def _read_config(run_dir: Path) -> Any:
    from ..config import ExperimentConfig

    path = run_dir / "config.json"
    if not run_dir.is_dir():
        raise ConfigError(f"{run_dir} is not a folder; give the output folder of a run", key="-o")
    if not path.is_file():
        raise ConfigError(f"{run_dir} holds no config.json: not the output folder of a run",
                          key="-o")  # fmt: skip
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"cannot read {path}: {err}", key="-o") from None
    try:
        return ExperimentConfig.from_dict(raw)
    except ConfigError as err:
        raise ConfigError(f"{path} is not a valid experiment: {err}", key="-o") from None


def _required(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ConfigError(f"{path} is missing: {what}", key="-o")
    return path


def build_network(run_dir: Path) -> tuple[Any, list[int], str]:
    """The network of the run in ``run_dir`` with its weights, its input shape, and what it is.

    Raises:
        ConfigError: a file of the run is missing or does not fit its configuration.
    """
    import numpy as np

    from ..assemble import build_model, load_network_genotype
    from ..genotype import load_genotype

    cfg = _read_config(run_dir)
    space = cfg.network.search_space
    rng = np.random.RandomState(cfg.seed)
    model = build_model(cfg, load_network_genotype(cfg), rng=rng)
    weights = _required(run_dir / "weights.h5", "the run has not written its weights yet "
                        "(a run writes weights.h5 at its end, or at its best epoch)")  # fmt: skip
    _load_weights(model, weights)
    if not model.choices():
        return model, list(cfg.input_shape), f"the trained {space} network"
    arch = _required(run_dir / "arch.h5", "a search run writes its genotype there every epoch")
    genotype = load_genotype(arch, expected_space=space, key=str(arch))
    fixed = build_model(cfg, genotype, rng=rng)
    _copy_chosen_weights(model, fixed, genotype, space)
    return fixed, list(cfg.input_shape), f"the searched {space} network of {arch.name}"


def _load_weights(model: Any, path: Path) -> None:
    """Loads ``path`` into ``model``, which must hold every weight of the network."""
    from ..module import read_parameter_file

    values = read_parameter_file(path)
    missing = [k for k in model.get_net_parameters() if k not in values]
    if missing:
        raise ConfigError(
            f"{path} lacks {len(missing)} weight(s) of the network ({', '.join(missing[:3])}"
            f"{', ...' if len(missing) > 3 else ''}): it was written for another configuration",
            key="-o",
        )
    model.set_parameters(values)


def _copy_chosen_weights(supernet: Any, fixed: Any, genotype: Any, space: str) -> None:
    """The supernet's weights of the genotype's candidates, into its fixed network."""
    try:
        architecture = supernet.architecture_of(genotype.choices)
    except GenotypeError as err:
        raise GenotypeError(f"{genotype.source}: {err.message}", key="arch.h5") from None
    try:
        supernet.copy_chosen_weights(fixed, architecture)
    except ValueError as err:
        raise ConfigError(
            f"the {space} supernet's weights do not map onto its fixed network ({err}); the "
            f"{space} protocol retrains the found architecture: run -a Trainer with "
            "network.genotype set to this run's genotype, then export that run",
            key="-o",
        ) from None


def _targets(args: argparse.Namespace, run_dir: Path) -> dict[str, Path]:
    formats = list(dict.fromkeys(args.format))
    if args.output is not None and len(formats) > 1:
        raise ConfigError("--output names one file: give one --format with it", key="--output")
    # ONNX first: it is the one that can refuse the network, before the NNP is written
    formats.sort(key=lambda f: f != "onnx")
    targets = {f: Path(args.output) if args.output else run_dir / f"model.{f}" for f in formats}
    for fmt, path in targets.items():
        if path.suffix != f".{fmt}":
            raise ConfigError(f"a {fmt.upper()} file must end in .{fmt}, got {path.name!r}",
                              key="--output")  # fmt: skip
        if path.is_dir() or not path.parent.is_dir():
            raise ConfigError(f"cannot write {path}: its folder does not exist or it is a folder",
                              key="--output")  # fmt: skip
    return targets


def run(argv: Sequence[str]) -> dict[str, Path]:
    """Exports the run's network; returns ``format -> file written`` (raises on errors)."""
    from ..export import OPSETS, inference_graph, write_nnp, write_onnx
    from ..export.onnx_file import require_converter

    args = build_parser().parse_args(list(argv))
    run_dir = Path(args.output_dir)
    targets = _targets(args, run_dir)
    if args.batch_size < 1:
        raise ConfigError(f"must be a positive integer, got {args.batch_size}", key="--batch-size")
    if "onnx" in targets:
        if args.opset not in OPSETS:
            raise ConfigError(f"expected one of {list(OPSETS)}, got {args.opset}", key="--opset")
        require_converter()
    import nnabla as nn

    nn.clear_parameters()
    model, input_shape, what = build_network(run_dir)
    graph = inference_graph(model, input_shape, args.batch_size)
    # everything is checked before the first file is written
    written = {}
    for fmt, path in targets.items():
        if fmt == "nnp":
            written[fmt] = write_nnp(graph, path)
        else:
            written[fmt] = write_onnx(graph, path, opset=args.opset)
        logger.info("exported %s to %s (%s, batch %d)", what, path, fmt, args.batch_size)
    return written


def main(argv: Sequence[str]) -> int:
    """``nnabla-nas export ...``; returns the exit code."""
    from ..runner.monitor import setup_logging

    setup_logging(None)
    try:
        written = run(argv)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return err.exit_code
    except NnasError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return err.exit_code
    except SystemExit as err:  # --help
        return int(err.code or 0)
    except Exception:
        logger.exception("the export failed")
        return 1
    for path in written.values():
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
