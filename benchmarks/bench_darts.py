"""Seconds per DARTS search step and peak memory, first vs second order, against the engine floor.

What is measured:

- ``floor``: the engine floor: the same full-mode supernet with its architecture weights fixed
  (``need_grad=False``), its graph built once with the model's layers and driven directly by
  nnabla (forward + backward + Momentum update), no runner: a plain weight step;
- ``weight``: ``DartsSearcher.train_step`` (the DARTS weight step);
- ``first`` / ``second``: the first- / second-order architecture step (``order: 1`` / ``2``).

Time: one process builds the model, the floor graph and one searcher, then runs the four
interleaved (floor, weight step, first-order step, second-order step, in an order rotated every
round), so that machine load affects all alike; medians over ``--steps`` rounds after 2 warm-up
rounds.

Memory: one subprocess per mode (``ru_maxrss``, the peak resident memory, is per process;
tracemalloc does not see nnabla's buffers), running the weight step alone, weight + first-order,
or weight + second-order steps (``--steps`` of them). After the set-up (model, data) the peak
RSS is reset to the current RSS (Linux ``/proc/self/clear_refs``, so that the transient peak of
loading the data does not hide the steps'); the peak after the steps minus that base is what the
steps' graphs and buffers add.

    .venv/bin/python benchmarks/bench_darts.py [--steps 10] [-f EXPERIMENT.json]

Default experiment: the supernet of ``examples/darts_mnist_search.json`` (the ``darts`` space on
the embedded MNIST digits, 1x28x28, init_channels 4, 3 cells, 3 nodes per cell, stem multiplier
2) with batch 16 (one mini-batch) for weights and architecture, and that file's optimizers.
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
from typing import Any, Callable

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
    "network": {"search_space": "darts", "num_classes": 10, "init_channels": 4, "num_cells": 3,
                "num_choices": 3, "multiplier": 3, "stem_multiplier": 2, "mode": "full"},
    "optimizer": {
        "train": {"solver": {"name": "Momentum", "lr": 0.05, "momentum": 0.9},
                  "weight_decay": 3e-4, "grad_clip": 5.0},
        "valid": {"solver": {"name": "Adam", "alpha": 3e-3, "beta1": 0.5, "beta2": 0.999},
                  "weight_decay": 1e-3},
    },
}  # fmt: skip

MEMORY_MODES = ("floor", "weight", "first", "second")


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


class Bench:
    """The model, data, floor step and searcher steps of one experiment (in this process)."""

    def __init__(self, raw: dict, steps: int, floor: bool, out: str) -> None:
        import nnabla as nn
        import nnabla.solvers as S

        from nnabla_nas.assemble import build_data, build_model, load_data
        from nnabla_nas.config import ExperimentConfig
        from nnabla_nas.module import full_rule
        from nnabla_nas.runner.searcher.darts import DartsSearcher, DartsSearcherConfig

        self.Options = DartsSearcherConfig
        self.cfg = cfg = ExperimentConfig.from_dict(raw)
        nn.random.seed(0)
        self.model = model = build_model(cfg, None, True, np.random.RandomState(0))
        data = build_data(cfg, load_data(cfg), search=True)
        self.pairs = [(b, a) for _, b, a in zip(range(steps + 2), data.train, data.arch)]
        self.mini, self.mini_v = cfg.mini_batch_train, cfg.mini_batch_valid
        model.apply(training=True)
        self.searcher = DartsSearcher(model, cfg, data, out, DartsSearcherConfig(), 0)
        if floor:
            # The floor's own graph: full rule, frozen logits, built once (the searcher installs
            # and removes its rules itself, so its graphs are unaffected).
            rules = [(op, op.rule) for op in model.choices().values()]
            frozen = [p for p in model.get_arch_parameters().values() if p.need_grad]
            for op, _ in rules:
                op.rule = full_rule
            for p in frozen:
                p.need_grad = False
            self.x = nn.Variable((self.mini, *cfg.input_shape))
            self.t = nn.Variable((self.mini, 1))
            self.loss = model.loss(model(self.x), self.t, aux_weight=cfg.aux_weight)
            for op, rule in rules:
                op.rule = rule
            self.frozen = frozen
            self.solver = S.Momentum(0.05, 0.9)
            self.solver.set_parameters(model.get_net_parameters(grad_only=True))

    def floor(self, i: int) -> None:
        (bx, by), _ = self.pairs[i % len(self.pairs)]
        for p in self.frozen:
            p.need_grad = False
        self.x.d, self.t.d = bx[: self.mini], by[: self.mini]
        self.solver.zero_grad()
        self.loss.forward(clear_no_need_grad=True)
        self.loss.backward(clear_buffer=True)
        self.solver.update()
        for p in self.frozen:
            p.need_grad = True

    def weight(self, i: int) -> None:
        (bx, by), _ = self.pairs[i % len(self.pairs)]
        s = self.searcher
        s.current_train_batch = s.split(bx, by, self.mini)
        s.train_step(s.current_train_batch, "train")

    def arch(self, i: int, order: int) -> None:
        _, (ax, ay) = self.pairs[i % len(self.pairs)]
        s = self.searcher
        s.options = self.Options(order=order)
        s.arch_step(s.split(ax, ay, self.mini_v))


def time_steps(raw: dict, steps: int) -> dict[str, float]:
    """Medians (ms) of the four steps, interleaved in this process."""
    with tempfile.TemporaryDirectory() as out:
        b = Bench(raw, steps, floor=True, out=out)
        parts: dict[str, Callable[[int], Any]] = {
            "floor": b.floor,
            "weight": b.weight,
            "first": lambda i: b.arch(i, 1),
            "second": lambda i: b.arch(i, 2),
        }
        timings: dict[str, list[float]] = {k: [] for k in parts}
        names = list(parts)
        for i in range(steps + 2):
            # Rotated each round: each step follows each other one equally often (a step right
            # after the second-order one runs measurably slower: cold caches).
            for name in names[i % 4 :] + names[: i % 4]:
                fn = parts[name]
                start = time.perf_counter()
                fn(i)
                if i >= 2:
                    timings[name].append(time.perf_counter() - start)
    return {k: float(np.median(v)) * 1e3 for k, v in timings.items()}


def memory(mode: str, raw: dict, steps: int) -> dict[str, float]:
    """Peak RSS (MiB) added by ``steps`` steps of ``mode``, and the peak itself."""
    with tempfile.TemporaryDirectory() as out:
        b = Bench(raw, steps, floor=mode == "floor", out=out)
        base = _reset_peak()
        for i in range(steps):
            if mode == "floor":
                b.floor(i)
                continue
            b.weight(i)
            if mode in ("first", "second"):
                b.arch(i, 1 if mode == "first" else 2)
    return {"step_mib": _peak_mib() - base, "peak_mib": _peak_mib()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-f", default=None, help="experiment file (default: the tiny darts config)")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--memory", choices=MEMORY_MODES, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    raw = json.loads(Path(args.f).read_text()) if args.f else DEFAULT
    if args.memory is not None:  # a child: one mode, one JSON line
        print(json.dumps(memory(args.memory, raw, min(args.steps, 3))))
        return
    mem = {}
    for mode in MEMORY_MODES:
        cmd = [sys.executable, __file__, "--memory", mode, "--steps", str(args.steps)]
        if args.f:
            cmd += ["-f", args.f]
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
        mem[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    ms = time_steps(raw, args.steps)
    net = raw["network"]
    rest = {k: v for k, v in net.items() if k != "search_space"}
    print(f"{net['search_space']} {json.dumps(rest)}")
    print(f"batch {raw['batch_size_train']} (mini {raw['mini_batch_train']}), arch batch "
          f"{raw['batch_size_valid']} (mini {raw['mini_batch_valid']}); time: medians of "
          f"{args.steps} interleaved steps; memory: one process per row, 3 steps")  # fmt: skip
    head = f"{'':<34}{'ms/step':>9}{'x floor':>9}{'step MiB':>10}{'x floor':>9}{'peak MiB':>10}"
    print(head)
    floor_ms, floor_mib = ms["floor"], mem["floor"]["step_mib"]
    rows = [("engine floor (fixed alpha)", ms["floor"], "floor"),
            ("DARTS weight step", ms["weight"], "weight"),
            ("weight + 1st-order arch step", ms["weight"] + ms["first"], "first"),
            ("  1st-order arch step alone", ms["first"], None),
            ("weight + 2nd-order arch step", ms["weight"] + ms["second"], "second"),
            ("  2nd-order arch step alone", ms["second"], None)]  # fmt: skip
    for label, t, mode in rows:
        line = f"{label:<34}{t:9.1f}{t / floor_ms:9.2f}"
        if mode is not None:
            m = mem[mode]
            line += f"{m['step_mib']:10.1f}{m['step_mib'] / floor_mib:9.2f}{m['peak_mib']:10.1f}"
        print(line)
    print(f"second / first order (search step): "
          f"{(ms['weight'] + ms['second']) / (ms['weight'] + ms['first']):.2f}")  # fmt: skip


if __name__ == "__main__":
    main()
