"""Seconds per ProxylessNAS search step against the engine floor.

The floor: the same sampled child network written directly with ``nnabla.parametric_functions``
(no supernet, no module tree), its graph built once and reused, forward + backward + Momentum
update at the same shapes. Measured in the same process, interleaved, so machine load affects
both alike. Prints seconds per step, the ratios (target for the weight step: <= 1.15) and the
load average.

    .venv/bin/python benchmarks/bench_proxyless.py [--steps 30] [-f examples/mnist_search.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import common
import nnabla as nn
import nnabla.functions as F
import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("-f", default=str(common.ROOT / "examples/mnist_search.json"))
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override an experiment key (as the CLI's --set)")  # fmt: skip
    args = p.parse_args()
    from nnabla_nas.cli import apply_override

    raw = json.loads(Path(args.f).read_text())
    for assignment in args.set:
        apply_override(raw, assignment)
    with tempfile.TemporaryDirectory() as out:
        loop = common.loop_of("ProxylessNasSearcher", raw, out)
        searcher, steps = loop.algo, loop.steps
        batches = [(x, y) for _, (x, y) in zip(range(4), loop.data.train)]
        arch_batches = [(x, y) for _, (x, y) in zip(range(4), loop.data.arch)]
        mini = loop.options.mini_batch_train or len(batches[0][0])
        mini_v = loop.options.mini_batch_valid or len(arch_batches[0][0])

        # The floor: one sampled child, static graph, plain nnabla.
        arch = searcher.sample_architecture()
        bx, by = batches[0]
        x, t = nn.Variable(bx.shape), nn.Variable(by.shape)
        with nn.parameter_scope("floor"):
            logits = common.plain_mobilenet(x, searcher.model, arch, loop.model.cfg.num_classes)
            loss = F.mean(F.softmax_cross_entropy(logits, t))
            floor = common.plain_step(loss)

        def floor_step(b):
            x.d, t.d = b
            floor()

        # The searcher's weight step on the same child as the floor: its sampler is pinned to
        # it (the step still builds the child's graph anew, as in a search).
        searcher.sample_architecture = lambda: arch

        def weight_step(b):
            searcher.train_step(steps.split(*b, mini), "train")

        def arch_step(b):
            searcher.arch_step(steps.split(*b, mini_v), steps.split(*batches[0], mini))

        timings = {"floor": [], "weight": [], "arch": []}
        for i in range(args.steps + 3):  # 3 warm-up rounds, then interleaved timing
            for name, fn, src in (("floor", floor_step, batches), ("weight", weight_step, batches),
                                  ("arch", arch_step, arch_batches)):  # fmt: skip
                start = time.perf_counter()
                fn(src[i % len(src)])
                if i >= 3:
                    timings[name].append(time.perf_counter() - start)
        med = {k: float(np.median(v)) for k, v in timings.items()}
        batch, batch_v = len(bx), len(arch_batches[0][0])
        estimator = searcher.options.estimator
    print(f"config {args.f}: batch {batch} (arch batch {batch_v}), estimator {estimator}, "
          f"{args.steps} steps, medians; {common.load()}")  # fmt: skip
    print(f"  engine floor (plain nnabla child, static graph): {med['floor'] * 1e3:8.1f} ms")
    print(f"  ProxylessNAS weight step (one sampled path):     {med['weight'] * 1e3:8.1f} ms"
          f"  ratio {med['weight'] / med['floor']:.2f}")  # fmt: skip
    print(f"  ProxylessNAS architecture step ({estimator}):".ljust(51)
          + f"{med['arch'] * 1e3:8.1f} ms  ratio {med['arch'] / med['floor']:.2f} "
          f"(batch {batch_v} vs {batch})")  # fmt: skip


if __name__ == "__main__":
    main()
