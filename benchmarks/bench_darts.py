"""Seconds per DARTS search step and peak memory, first vs second order, against the engine floor.

Modes, each run in its own subprocess (``ru_maxrss``, the peak resident memory, is per process;
tracemalloc does not see nnabla's buffers):

- ``floor``: the engine floor: the same full-mode supernet with its architecture weights fixed
  (``need_grad=False``), its graph built once with the model's layers and driven directly by
  nnabla (forward + backward + Momentum update), no runner;
- ``weight``: ``DartsSearcher.train_step`` alone (the DARTS weight step);
- ``first``: weight step + first-order architecture step (``order: 1``);
- ``second``: weight step + second-order architecture step (``order: 2``).

Every mode times ``--steps`` steps after 2 warm-up steps (medians). Memory: after the set-up
(model, data) the process's peak RSS is reset to its current RSS (Linux ``/proc/self/clear_refs``,
so that the transient peak of loading the data does not hide the steps'), then ``ru_maxrss`` after
the steps minus that base is what the steps' graphs and buffers add at their peak. The parent
prints the table and the ratios to the floor.

    .venv/bin/python benchmarks/bench_darts.py [--steps 10] [-f EXPERIMENT.json]

Default experiment: the ``darts`` space on the embedded MNIST digits (1x28x28), init_channels 8,
5 cells, 4 nodes per cell, batch 16 (one mini-batch) for weights and architecture.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]

DEFAULT = {
    "dataset": "mnist",
    "epoch": 1,
    "input_shape": [1, 28, 28],
    "batch_size_train": 16,
    "batch_size_valid": 16,
    "mini_batch_train": 16,
    "mini_batch_valid": 16,
    "train_portion": 0.5,
    "network": {"search_space": "darts", "num_classes": 10, "init_channels": 8, "num_cells": 5,
                "num_choices": 4, "multiplier": 4, "mode": "full"},
    "optimizer": {
        "train": {"solver": {"name": "Momentum", "lr": 0.025, "momentum": 0.9},
                  "weight_decay": 3e-4, "grad_clip": 5.0},
        "valid": {"solver": {"name": "Adam", "alpha": 3e-4, "beta1": 0.5, "beta2": 0.999},
                  "weight_decay": 1e-3},
    },
}  # fmt: skip

MODES = ("floor", "weight", "first", "second")


def _peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _reset_peak() -> float:
    """Resets the peak RSS to the current RSS (Linux >= 4.0); returns it in MiB."""
    import gc

    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        print("warning: cannot reset the peak RSS: it includes the set-up", file=sys.stderr)
    return _peak_mib()


def run_mode(mode: str, raw: dict, steps: int) -> dict:
    """Runs one mode in this process; returns its medians (ms) and peak memory (MiB)."""
    import nnabla as nn
    import nnabla.solvers as S

    from nnabla_nas.assemble import build_data, build_model, load_data
    from nnabla_nas.config import ExperimentConfig
    from nnabla_nas.module import full_rule
    from nnabla_nas.runner.searcher.darts import DartsConfig, DartsSearcher

    cfg = ExperimentConfig.from_dict(raw)
    nn.random.seed(0)
    model = build_model(cfg, None, True, np.random.RandomState(0))
    data = build_data(cfg, load_data(cfg), search=True)
    pairs = [(b, a) for _, b, a in zip(range(steps + 2), data.train, data.arch)]
    mini, mini_v = cfg.mini_batch_train, cfg.mini_batch_valid
    setup = _reset_peak()
    timings: dict[str, list[float]] = {"weight": [], "arch": []}

    if mode == "floor":
        for op in model.choices().values():
            op.rule = full_rule
        for p in model.get_arch_parameters().values():
            p.need_grad = False
        model.apply(training=True)
        x = nn.Variable((mini, *cfg.input_shape))
        t = nn.Variable((mini, 1))
        loss = model.loss(model(x), t, aux_weight=cfg.aux_weight)
        solver = S.Momentum(0.025, 0.9)
        solver.set_parameters(model.get_net_parameters(grad_only=True))
        for i, ((bx, by), _) in enumerate(pairs):
            start = time.perf_counter()
            x.d, t.d = bx[:mini], by[:mini]
            solver.zero_grad()
            loss.forward(clear_no_need_grad=True)
            loss.backward(clear_buffer=True)
            solver.update()
            if i >= 2:
                timings["weight"].append(time.perf_counter() - start)
    else:
        order = 2 if mode == "second" else 1
        with tempfile.TemporaryDirectory() as out:
            s = DartsSearcher(model, cfg, data, out, DartsConfig(order=order), 0)
            model.apply(training=True)
            for i, ((bx, by), (ax, ay)) in enumerate(pairs):
                start = time.perf_counter()
                s.current_train_batch = s.split(bx, by, mini)
                s.train_step(s.current_train_batch, "train")
                middle = time.perf_counter()
                if mode != "weight":
                    s.arch_step(s.split(ax, ay, mini_v))
                if i >= 2:
                    timings["weight"].append(middle - start)
                    timings["arch"].append(time.perf_counter() - middle)
    med = {k: float(np.median(v)) * 1e3 for k, v in timings.items() if v}
    return {"mode": mode, "ms": med, "setup_mib": setup, "peak_mib": _peak_mib()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-f", default=None, help="experiment file (default: the tiny darts config)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--mode", choices=MODES, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    raw = json.loads(Path(args.f).read_text()) if args.f else DEFAULT
    if args.mode is not None:  # a child: one mode, one JSON line
        print(json.dumps(run_mode(args.mode, raw, args.steps)))
        return
    results = {}
    for mode in MODES:
        cmd = [sys.executable, __file__, "--mode", mode, "--steps", str(args.steps)]
        if args.f:
            cmd += ["-f", args.f]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
        results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    floor = results["floor"]
    floor_ms = floor["ms"]["weight"]
    floor_mem = floor["peak_mib"] - floor["setup_mib"]
    net = raw["network"]
    print(f"{net['search_space']} {json.dumps({k: v for k, v in net.items() if k != 'search_space'})}")
    print(f"batch {raw['batch_size_train']} (mini {raw['mini_batch_train']}), arch batch "
          f"{raw['batch_size_valid']}, {args.steps} timed steps (medians), one process per mode")
    print(f"{'mode':<42}{'ms/step':>9}{'x floor':>9}{'step MiB':>10}{'x floor':>9}{'peak MiB':>10}")
    rows = [("engine floor (plain nnabla, fixed alpha)", "floor", None),
            ("DARTS weight step", "weight", None),
            ("weight + 1st-order arch step", "first", None),
            ("  of which the 1st-order arch step", "first", "arch"),
            ("weight + 2nd-order arch step", "second", None),
            ("  of which the 2nd-order arch step", "second", "arch")]  # fmt: skip
    for label, mode, part in rows:
        r = results[mode]
        ms = r["ms"][part] if part else sum(r["ms"].values())
        mem = r["peak_mib"] - r["setup_mib"]
        mem_text = f"{mem:10.1f}{mem / floor_mem:9.2f}{r['peak_mib']:10.1f}" if not part else ""
        print(f"{label:<42}{ms:9.1f}{ms / floor_ms:9.2f}{mem_text}")


if __name__ == "__main__":
    main()
