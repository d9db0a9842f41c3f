"""``nnabla-nas latency build -f EXP.json [-o TABLE.json]``: a latency lookup table for a space.

Measures every layer of the experiment's search space (all candidates of every choice) on this
machine's runtime (``-c``/``-d`` select the nnabla context as for a run) into a latency lookup
table (:mod:`nnabla_nas.estimator.latency`), skipping the layers the table (or, unless
``--no-shipped``, a table shipped with the package for the same runtime) already holds; then
fits the runtime's calibration factor on ``--calibrate`` random whole networks. Prints the
latency range of the space, which helps choosing a ``bound``.
"""

from __future__ import annotations

import argparse
import time
from typing import Sequence

import numpy as np

from ..errors import ConfigError
from .measure import (
    LatencySettings,
    add_measure_arguments,
    build_space,
    load_experiment,
    make_parser,
    run_command,
)

__all__ = ["build_table", "main"]


def build_table(args: argparse.Namespace) -> int:
    """Runs ``latency build`` (the parsed arguments of :func:`main`); prints a summary."""
    from ..estimator.latency import LatencyEstimator, runtime_key, section_name

    cfg = load_experiment(args)
    settings = LatencySettings.resolve(args, cfg)
    path = args.output or settings.lookup_table
    if path is None:
        raise ConfigError("no table file: pass -o TABLE.json or set regularizer.<name>."
                          "lookup_table in the experiment file", key="-o")  # fmt: skip
    batch = settings.batch_size
    model = build_space(cfg, np.random.RandomState(cfg.seed))
    est = LatencyEstimator(cfg.input_shape, batch, path, settings.warmup, settings.repeat,
                           shipped_tables=not args.no_shipped, table_key="-o")  # fmt: skip
    start = time.time()
    seg = est.trace(model)
    keys = {layer.key for layer in seg.all_layers()}
    print(f"{args.file}: {len(keys)} distinct layers at batch {batch} on "
          f"{section_name(*runtime_key())}")  # fmt: skip
    print(f"measured {est.measured} new layers in {time.time() - start:.1f} s; table: {path}")
    if args.calibrate > 0:
        rng = np.random.RandomState(args.seed)
        archs = [{c.label: int(rng.randint(len(c.candidates))) for c in seg.all_choices()}
                 for _ in range(args.calibrate if seg.choices else 1)]  # fmt: skip
        info = est.calibrate(model, archs, source=str(args.file))
        print(f"calibrated on {info['networks']} whole networks: scale {info['scale']:.3f}, "
              f"mean relative error {info['mean_relative_error_raw']:.1%} -> "
              f"{info['mean_relative_error']:.1%}")  # fmt: skip
    else:
        print(f"calibration scale {est.scale:.3f} (from the table; --calibrate N to fit it)")
    low, high = est.value_range(model)
    print(f"latency of the space's architectures: {low:.4f} ms (fastest) .. {high:.4f} ms "
          "(slowest)")  # fmt: skip
    return 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = make_parser(
        "nnabla-nas latency",
        "Latency lookup tables: measure every layer of an experiment's search space on this "
        "machine's runtime.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="measure the layers of an experiment's space into a table")
    add_measure_arguments(b)
    b.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="TABLE.json",
        help="table file (default: the experiment's regularizer lookup_table)",
    )
    b.add_argument(
        "--calibrate",
        type=int,
        default=20,
        metavar="N",
        help="fit the calibration factor on N random whole networks (0: keep it)",
    )
    b.add_argument("--seed", type=int, default=0, help="seed of the calibration networks")
    b.add_argument(
        "--no-shipped",
        action="store_true",
        help="measure every layer, ignoring the tables shipped with the package",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """``nnabla-nas latency build -f EXP.json [-o TABLE.json]``; returns the exit code."""
    return run_command(_parse, build_table, argv)
