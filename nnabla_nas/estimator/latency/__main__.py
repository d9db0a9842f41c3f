"""``python -m nnabla_nas.estimator.latency build -f EXP.json [-o TABLE.json]``.

Measures every layer of the experiment's search space (all candidates of every choice) on this
machine's runtime (``-c``/``-d`` select the nnabla context as for ``main.py``) into a latency
lookup table, skipping the layers the table (or, unless ``--no-shipped``, a table shipped with
the package for the same runtime) already holds. Prints the latency range of the space, which
helps choosing a ``bound``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from typing import Sequence

import nnabla as nn
import numpy as np

from ...errors import ConfigError, NnasError
from . import LatencyEstimator, LatencyOptions, runtime_key, section_name


def _build(args: argparse.Namespace) -> int:
    from ...assemble import build_model, load_network_genotype
    from ...cli import read_experiment, set_context
    from ...config import ExperimentConfig

    raw = read_experiment(args.file)
    if args.context:
        raw["context"] = args.context
    if args.device_id is not None:
        raw["device_id"] = args.device_id
    cfg = ExperimentConfig.from_dict(raw)
    section = next((r for r in cfg.regularizer.values() if r.name == "LatencyEstimator"), None)
    path = args.output or (section.lookup_table if section else None)
    if path is None:
        raise ConfigError("no table file: pass -o TABLE.json or set regularizer.<name>."
                          "lookup_table in the experiment file", key="-o")  # fmt: skip
    batch = args.batch_size or (section.batch_size if section else 1)
    opts = section.options if section and isinstance(section.options, LatencyOptions) else None
    warmup = args.warmup if args.warmup is not None else (opts.warmup if opts else 5)
    repeat = args.repeat if args.repeat is not None else (opts.repeat if opts else 30)
    set_context(cfg)
    nn.clear_parameters()
    model = build_model(cfg, load_network_genotype(cfg), rng=np.random.RandomState(cfg.seed))
    est = LatencyEstimator(cfg.input_shape, batch, path, warmup, repeat,
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


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m nnabla_nas.estimator.latency build -f EXP.json [-o TABLE.json]``."""
    parser = argparse.ArgumentParser(
        prog="python -m nnabla_nas.estimator.latency",
        description="Latency lookup tables: measure every layer of an experiment's search space "
        "on this machine's runtime.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build", help="measure the layers of an experiment's space into a table")
    b.add_argument("-f", "--file", required=True, metavar="EXP.json", help="experiment file")
    b.add_argument(
        "-o",
        "--output",
        default=None,
        metavar="TABLE.json",
        help="table file (default: the experiment's regularizer lookup_table)",
    )
    b.add_argument("--batch-size", type=int, default=None, help="batch size (default 1)")
    b.add_argument("--warmup", type=int, default=None, help="untimed runs per layer (5)")
    b.add_argument("--repeat", type=int, default=None, help="timed runs per layer (30)")
    b.add_argument("-c", "--context", choices=["cpu", "cudnn"], default=None)
    b.add_argument("-d", "--device-id", type=int, default=None)
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
    args = parser.parse_args(argv)  # fmt: skip
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        return _build(args)
    except ConfigError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    except NnasError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


if __name__ == "__main__":
    sys.exit(main())
