"""What the measuring commands (``latency build``, ``nnmeter-build``) share: their common
arguments, the experiment and its space built on the chosen context, the latency settings taken
from the experiment's ``LatencyEstimator`` section, and the exit codes."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from ..config import ExperimentConfig, RegularizerConfig
from ..contrib.model import Model
from ..errors import NnasError
from . import read_experiment
from .args import _ArgumentParser
from .device import choose_device, set_context

__all__ = [
    "LatencySettings",
    "add_measure_arguments",
    "build_space",
    "load_experiment",
    "make_parser",
    "run_command",
]


def add_measure_arguments(parser: argparse.ArgumentParser) -> None:
    """``-f``, ``--batch-size``, ``--warmup``, ``--repeat``, ``-c``, ``-d``."""
    parser.add_argument("-f", "--file", required=True, metavar="EXP.json", help="experiment file")
    parser.add_argument("--batch-size", type=int, default=None, help="batch size (default 1)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed runs per layer (5)")
    parser.add_argument("--repeat", type=int, default=None, help="timed runs per layer (30)")
    parser.add_argument("-c", "--context", choices=["cpu", "cudnn"], default=None)
    parser.add_argument("-d", "--device-id", type=int, default=None)


@dataclass
class LatencySettings:
    """How layers are measured: the command line's values, else the experiment's
    ``LatencyEstimator`` section's, else the defaults.

    Attributes:
        batch_size: examples per measured forward.
        warmup: untimed runs per layer.
        repeat: timed runs per layer.
        lookup_table: the section's table file (None: none named).
    """

    batch_size: int = 1
    warmup: int = 5
    repeat: int = 30
    lookup_table: str | None = None

    @classmethod
    def resolve(cls, args: argparse.Namespace, cfg: ExperimentConfig) -> LatencySettings:
        from ..estimator.latency import LatencyOptions

        section: RegularizerConfig | None = next(
            (r for r in cfg.regularizer.values() if r.name == "LatencyEstimator"), None
        )
        out = cls()
        if section is not None:
            out.batch_size, out.lookup_table = section.batch_size, section.lookup_table
            if isinstance(section.options, LatencyOptions):
                out.warmup, out.repeat = section.options.warmup, section.options.repeat
        out.batch_size = args.batch_size or out.batch_size
        out.warmup = args.warmup if args.warmup is not None else out.warmup
        out.repeat = args.repeat if args.repeat is not None else out.repeat
        return out


def load_experiment(args: argparse.Namespace) -> ExperimentConfig:
    """The experiment of ``args.file``, with ``-c``/``-d`` applied, parsed strictly."""
    raw = read_experiment(args.file)
    if args.context:
        raw["context"] = args.context
    if args.device_id is not None:
        raw["device_id"] = args.device_id
    return ExperimentConfig.from_dict(raw)


def build_space(cfg: ExperimentConfig, rng: np.random.RandomState) -> Model:
    """The experiment's whole search space, built on its context (weights drawn by ``rng``)."""
    import nnabla as nn

    from ..assemble import build_model, load_network_genotype

    set_context(choose_device(cfg.context, cfg.device_id, cfg.type_config))
    nn.clear_parameters()
    return build_model(cfg, load_network_genotype(cfg), rng=rng)


def make_parser(prog: str, description: str) -> argparse.ArgumentParser:
    """A command's parser: a bad argument is one ``error:`` line and exit code 2."""
    return _ArgumentParser(prog=prog, description=description)


def run_command(
    parse: Callable[[Sequence[str] | None], argparse.Namespace],
    command: Callable[[argparse.Namespace], int],
    argv: Sequence[str] | None,
) -> int:
    """Parses ``argv`` and runs ``command``; returns the exit code (0; 2 on bad input with one
    ``error:`` line; 1 on a failure while running)."""
    try:
        args = parse(argv)
        logging.basicConfig(level=logging.INFO, format="%(message)s")
        return command(args)
    except NnasError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except SystemExit as err:  # --help
        return int(err.code or 0)
