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

    .venv/bin/python benchmarks/bench_darts.py [--steps 10] [--config tiny|issue] [-f FILE.json]

Configurations: ``tiny`` (default): the supernet of ``examples/darts_mnist_search.json`` (the
``darts`` space on the embedded MNIST digits at 1x28x28, init_channels 4, 3 cells, 3 nodes per
cell, stem multiplier 2) with batch 16 (one mini-batch) for weights and architecture, and that
file's optimizers; ``issue``: the issue's CIFAR-size configuration
(``benchmarks/common.py``: 16 channels, 8 cells, 4 nodes, batch 32, random CIFAR-10 images);
``--batch N`` sets every batch and mini-batch key to N (e.g. the peak memory at 32 and 64).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable

import common
import numpy as np

ROOT = common.ROOT

TINY = {
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
BATCH_KEYS = ("batch_size_train", "batch_size_valid", "mini_batch_train", "mini_batch_valid")


def experiment(args: argparse.Namespace) -> dict:
    """The experiment dict of the command line (``-f``, ``--config``, ``--batch``)."""
    if args.f:
        raw = json.loads(Path(args.f).read_text())
    elif args.config == "issue":
        raw = common.experiment("darts")[1]
    else:
        raw = json.loads(json.dumps(TINY))
    if args.batch:
        raw.update({k: args.batch for k in BATCH_KEYS})
        if args.config == "issue" and not args.f:  # 2 weight + 2 architecture batches
            raw["data_dir"] = str(common.cifar_folder(4 * args.batch + 5 - (4 * args.batch) % 5,
                                                      2 * args.batch))  # fmt: skip
    return raw


class Bench:
    """The set-up loop of one DARTS search, its batches and the floor step (in this process)."""

    def __init__(self, raw: dict, steps: int, floor: bool, out: str) -> None:
        import nnabla as nn

        from nnabla_nas.runner.searcher.darts import DartsSearcherConfig

        self.Options = DartsSearcherConfig
        nn.random.seed(0)
        self.loop = loop = common.loop_of("DartsSearcher", raw, out)
        self.searcher = s = loop.algo
        self.model = model = loop.model
        data = loop.data
        self.pairs = [(b, a) for _, b, a in zip(range(steps + 2), data.train, data.arch)]
        self.mini = loop.options.mini_batch_train or len(self.pairs[0][0][0])
        self.mini_v = loop.options.mini_batch_valid or len(self.pairs[0][1][0])
        model.apply(training=True)
        if floor:
            # The floor's own graph: the mixture rule, frozen logits, built once (the searcher
            # installs and removes its rules itself, so its graphs are unaffected).
            shape = (self.mini, *loop.input_shape)
            with s.frozen(s.arch), s.use_rule(s.mixture_rule):
                self.x, self.t = nn.Variable(shape), nn.Variable((self.mini, 1))
                loss = model.loss(model(self.x), self.t, aux_weight=loop.options.aux_weight)
            self._floor = common.plain_step(loss, 0.05, s.weights)

    def floor(self, i: int) -> None:
        (bx, by), _ = self.pairs[i % len(self.pairs)]
        s = self.searcher
        with s.frozen(s.arch):
            self.x.d, self.t.d = bx[: self.mini], by[: self.mini]
            self._floor()

    def weight(self, i: int) -> None:
        (bx, by), _ = self.pairs[i % len(self.pairs)]
        s = self.searcher
        self.current = self.loop.steps.split(bx, by, self.mini)
        s.train_step(self.current, "train")

    def arch(self, i: int, order: int) -> None:
        _, (ax, ay) = self.pairs[i % len(self.pairs)]
        s = self.searcher
        s.options = self.Options(order=order)
        s.arch_step(self.loop.steps.split(ax, ay, self.mini_v), self.current)


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
        base = common.reset_peak_rss()
        for i in range(steps):
            if mode == "floor":
                b.floor(i)
                continue
            b.weight(i)
            if mode in ("first", "second"):
                b.arch(i, 1 if mode == "first" else 2)
    return {"step_mib": common.peak_rss_mib() - base, "peak_mib": common.peak_rss_mib()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-f", default=None, help="experiment file (default: --config)")
    p.add_argument("--config", choices=("tiny", "issue"), default="tiny")
    p.add_argument("--batch", type=int, default=None, help="every batch and mini-batch size")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--memory", choices=MEMORY_MODES, default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    raw = experiment(args)
    if args.memory is not None:  # a child: one mode, one JSON line
        print(json.dumps(memory(args.memory, raw, min(args.steps, 3))))
        return
    mem = {}
    with tempfile.TemporaryDirectory() as tmp:
        exp = Path(tmp) / "experiment.json"
        exp.write_text(json.dumps(raw))
        for mode in MEMORY_MODES:
            cmd = [sys.executable, __file__, "--memory", mode, "--steps", str(args.steps),
                   "-f", str(exp)]  # fmt: skip
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, check=True)
            mem[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
    ms = time_steps(raw, args.steps)
    net = raw["network"]
    rest = {k: v for k, v in net.items() if k != "search_space"}
    print(f"{net['search_space']} {json.dumps(rest)}")
    print(f"batch {raw['batch_size_train']} (mini {raw['mini_batch_train']}), arch batch "
          f"{raw['batch_size_valid']} (mini {raw['mini_batch_valid']}); time: medians of "
          f"{args.steps} interleaved steps; memory: one process per row, 3 steps; "
          f"{common.load()}")  # fmt: skip
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
