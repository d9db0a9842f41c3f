"""The arguments of ``python main.py`` / ``nnabla-nas``: parsed without importing nnabla.

``--help`` works in any Python with the standard library alone: the lists of algorithms and
search spaces come from :mod:`.names` (checked against the registries by the tests), and
nothing here imports the package's heavy modules.
"""

from __future__ import annotations

import argparse
from typing import Sequence

from ..errors import ConfigError
from .names import ALGORITHM_NAMES, SPACE_NAMES, STRATEGY_NAMES

__all__ = ["FLAGS", "build_parser", "parse_args"]

#: The option strings of the run command (``docs/cli.rst`` documents each; a test checks both).
FLAGS: tuple[str, ...] = (
    "-h", "--help", "-c", "--context", "-d", "--device-id", "-t", "--type-config", "--search",
    "-f", "--file", "-a", "--algorithm", "-o", "--output", "--data-dir", "--set", "--seed",
    "--overwrite", "--resume", "--workers", "--scheduler",
)  # fmt: skip


class _ArgumentParser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]  # exit 2, one line
        raise ConfigError(f"{message} (see --help)")


def build_parser(commands: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The argument parser of a run; ``--help`` lists the algorithms, the search spaces and
    the other ``commands`` (``nnabla-nas NAME --help``)."""
    other = f"other commands: {', '.join(commands)} (nnabla-nas NAME --help)\n" if commands else ""
    epilog = (
        f"algorithms (-a): {', '.join(ALGORITHM_NAMES)}\n"
        f"multi-trial strategies (-a, with a trials section): {', '.join(STRATEGY_NAMES)}\n"
        f"search spaces (network.search_space): {', '.join(SPACE_NAMES)}\n"
        f"{other}\n"
        "examples:\n"
        "  python main.py --search -f examples/mnist_search.json -a ProxylessNasSearcher "
        "-o log/demo/search\n"
        "  python main.py -f examples/mnist_train.json -a Trainer -o log/demo/train\n"
        "  python main.py --resume -o log/demo/search"
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
        help="nnabla extension (default: the file's 'context', else cudnn when the CUDA "
        "extension is installed, else cpu)",
    )
    p.add_argument(
        "-d",
        "--device-id",
        type=int,
        default=None,
        metavar="ID",
        help="GPU id: runs on the CUDA extension (on a CPU-only install: a warning, and the CPU)",
    )
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
        "-a",
        "--algorithm",
        default=None,
        metavar="ALGORITHM",
        help="algorithm, listed below (default: the file's 'algorithm')",
    )
    p.add_argument("-o", "--output", required=True, metavar="OUTPUT_DIR", help="output folder")
    p.add_argument(
        "--data-dir",
        default=None,
        metavar="DIR",
        help="datasets folder (default: the file's 'data_dir')",
    )
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="multi-trial search: worker processes of the local Dask cluster "
                   "(default: one per core; 0: every trial in this process)")  # fmt: skip
    p.add_argument("--scheduler", default=None, metavar="tcp://HOST:PORT",
                   help="multi-trial search: run the trials on this existing Dask cluster "
                   "(docs/trials.rst)")  # fmt: skip
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


def parse_args(argv: Sequence[str] | None, commands: Sequence[str] = ()) -> argparse.Namespace:
    """The parsed arguments; a bad flag raises :class:`~nnabla_nas.errors.ConfigError`, and
    ``--help`` prints the help and raises ``SystemExit(0)``."""
    return build_parser(commands).parse_args(argv)
