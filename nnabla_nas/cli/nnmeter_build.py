"""``nnabla-nas nnmeter-build -f EXP.json -o FOLDER``: an nn-Meter predictor for this device.

Samples ``--architectures`` random architectures of the experiment's space (plus the first-candidate
one), measures the nn-Meter kernels they contain on this machine's runtime (the functions of
each kernel through the latency lookup table, ``--lookup-table``), fits nn-Meter's kernel
predictors on them and writes the predictor folder (:mod:`nnabla_nas.estimator.nnmeter_build`).
Prints the fit and how far the predictor is from the table's sums on the sampled architectures.
"""

from __future__ import annotations

import argparse
import time
from typing import Any, Sequence

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

__all__ = ["build", "main"]


def build(args: argparse.Namespace) -> int:
    """Runs ``nnmeter-build`` (the parsed arguments of :func:`main`); prints a summary."""
    from ..estimator.latency import LatencyEstimator, runtime_key
    from ..estimator.nnmeter import NnMeterEstimator
    from ..estimator.nnmeter_build import build_predictor, measured_samples, random_architectures

    if args.architectures < 1:
        raise ConfigError(f"must be >= 1, got {args.architectures}", key="--architectures")
    cfg = load_experiment(args)
    settings = LatencySettings.resolve(args, cfg)
    table = args.lookup_table or settings.lookup_table
    batch = settings.batch_size
    rng = np.random.RandomState(args.seed)  # draws the weights, then the architectures
    model = build_space(cfg, rng)
    latency = LatencyEstimator(cfg.input_shape, batch, table, settings.warmup, settings.repeat,
                               table_key="--lookup-table")  # fmt: skip
    first = {label: 0 for label in model.choices()}  # every choice's first candidate
    archs: list[Any] = [first, *random_architectures(model, args.architectures, rng)]
    start = time.time()
    samples = measured_samples(model, cfg.input_shape, archs, latency, batch)
    context, device = runtime_key()
    meta = build_predictor(
        samples,
        args.output,
        backend=args.backend,
        batch_size=batch,
        extra_meta={
            "runtime": {"context": context, "device": device},
            "experiment": str(args.file),
            "lookup_table": str(table) if table else None,
        },
    )
    print(
        f"{args.file}: {len(samples)} distinct kernels from {len(archs)} architectures at "
        f"batch {batch} on {context} @ {device} ({time.time() - start:.1f} s; "
        f"{latency.measured} functions measured, table: {table or 'memory only'})"
    )
    for name, rep in meta["kernels"].items():
        oob = rep.get("oob_mean_rel_error")
        print(
            f"  {name:16s} {rep['samples']:4d} samples  fit error {rep['train_mean_rel_error']:.1%}"
            + (f"  out-of-bag {oob:.1%}" if oob is not None else "")
        )
    est = NnMeterEstimator(cfg.input_shape, batch, predictor=str(args.output))
    pred = np.array([est.predict(model, a) for a in archs])
    table_ms = np.array([latency.predict(model, a) for a in archs])
    err = float(np.mean(np.abs(pred - table_ms) / table_ms))
    print(
        f"nn-Meter prediction vs table sum over the {len(archs)} architectures: mean relative "
        f"error {err:.1%}; predictor folder: {args.output}"
    )
    return 0


def _parse(argv: Sequence[str] | None) -> argparse.Namespace:
    from ..estimator.nnmeter_build import BACKENDS

    parser = make_parser(
        "nnabla-nas nnmeter-build",
        "Build an nn-Meter predictor for this device: measure the kernels of sampled "
        "architectures of an experiment's space and fit nn-Meter's kernel predictors.",
    )
    add_measure_arguments(parser)
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        metavar="FOLDER",
        help="the predictor folder to write (the estimator's 'predictor')",
    )
    parser.add_argument(
        "--architectures",
        type=int,
        default=30,
        help="random architectures sampled besides the first-candidate one (30)",
    )
    parser.add_argument("--seed", type=int, default=0, help="sampling seed (0)")
    parser.add_argument(
        "--lookup-table",
        default=None,
        metavar="TABLE.json",
        help="latency table to reuse and complete (default: the experiment's "
        "LatencyEstimator lookup_table, else memory only)",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="tflite_cpu",
        help="nn-Meter's random-forest settings (tflite_cpu)",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """``nnabla-nas nnmeter-build -f EXP.json -o FOLDER``; returns the exit code."""
    return run_command(_parse, build, argv)
