"""Seconds per ProxylessNAS search step against the engine floor.

The floor: the same sampled child network written directly with ``nnabla.parametric_functions``
(no supernet, no module tree), its graph built once and reused, forward + backward + Momentum
update at the same shapes. Measured in the same process, interleaved, so machine load affects
both alike. Prints seconds per step and the ratios (target for the weight step: <= 1.15).

    .venv/bin/python benchmarks/bench_proxyless.py [--steps 30] [-f examples/mnist_search.json]
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import nnabla as nn
import nnabla.functions as F
import nnabla.parametric_functions as PF
import nnabla.solvers as S
import numpy as np

from nnabla_nas.assemble import build_data, build_model, load_data
from nnabla_nas.config import ExperimentConfig
from nnabla_nas.contrib.mobilenet import SKIP, parse_candidate
from nnabla_nas.runner import ALGORITHMS

ROOT = Path(__file__).resolve().parents[1]


def plain_child(x: nn.Variable, model, arch: dict[str, int]) -> nn.Variable:
    """The sampled child network with plain nnabla parametric functions (same shapes)."""

    def conv_bn(h, out_c, k, stride, group=1, act=True, name=""):
        with nn.parameter_scope(name):
            h = PF.convolution(h, out_c, (k, k), pad=(k // 2, k // 2), stride=(stride, stride),
                               group=group, with_bias=False)  # fmt: skip
            h = PF.batch_normalization(h, batch_stat=True)
        return F.relu6(h) if act else h

    def inverted_residual(h, out_c, stride, expand, k, name):
        in_c = h.shape[1]
        hidden = int(round(in_c * expand))
        y = h
        if expand != 1:
            y = conv_bn(y, hidden, 1, 1, name=f"{name}/exp")
        y = conv_bn(y, hidden, k, stride, group=hidden, name=f"{name}/dw")
        y = conv_bn(y, out_c, 1, 1, act=False, name=f"{name}/proj")
        return y + h if stride == 1 and in_c == out_c else y

    h = conv_bn(x, model._stem_channels, 3, 2, name="stem")
    h = inverted_residual(h, model._first_channels, 1, 1, 3, "first")
    for i, (_, out_c, stride, names) in enumerate(model._specs):
        name = names[arch[f"blocks/{i}"]] if len(names) > 1 else names[0]
        if name == SKIP:
            continue
        expand, k = parse_candidate(name)
        h = inverted_residual(h, out_c, stride, expand, k, f"b{i}")
    h = conv_bn(h, model._last_channels, 1, 1, name="last")
    h = F.global_average_pooling(h)
    with nn.parameter_scope("fc"):
        return PF.affine(h, 10)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("-f", default=str(ROOT / "examples/mnist_search.json"))
    p.add_argument("--steps", type=int, default=30)
    args = p.parse_args()
    cfg = ExperimentConfig.from_dict(json.loads(Path(args.f).read_text()))
    model = build_model(cfg, None, True, np.random.RandomState(0))
    data = build_data(cfg, load_data(cfg), search=True)
    searcher = ALGORITHMS.get("ProxylessNasSearcher")(model, cfg, data, "/tmp/bench_proxyless")
    batches = [(x, y) for _, (x, y) in zip(range(4), data.train)]
    arch_batches = [(x, y) for _, (x, y) in zip(range(4), data.arch)]
    mini, mini_v = cfg.mini_batch_train, cfg.mini_batch_valid

    # The floor: one sampled child, static graph, plain nnabla.
    arch = searcher.sample_architecture()
    bx, by = batches[0]
    x = nn.Variable(bx.shape)
    t = nn.Variable(by.shape)
    with nn.parameter_scope("floor"):
        loss = F.mean(F.softmax_cross_entropy(plain_child(x, model, arch), t))
        solver = S.Momentum(0.01, 0.9)
        solver.set_parameters(nn.get_parameters())

    def floor_step(b):
        x.d, t.d = b
        solver.zero_grad()
        loss.forward(clear_no_need_grad=True)
        loss.backward(clear_buffer=True)
        solver.update()

    # The searcher's weight step on the same child as the floor: its sampler is pinned to it
    # (the step still installs its rule and builds the child's graph anew, as in a search).
    searcher.sample_architecture = lambda: arch

    def weight_step(b):
        searcher.train_step(searcher.split(*b, mini), "train")

    def arch_step(b):
        searcher.arch_step(searcher.split(*b, mini_v))

    timings = {"floor": [], "weight": [], "arch": []}
    for i in range(args.steps + 3):  # 3 warm-up rounds, then interleaved timing
        for name, fn, src in (("floor", floor_step, batches), ("weight", weight_step, batches),
                              ("arch", arch_step, arch_batches)):  # fmt: skip
            start = time.perf_counter()
            fn(src[i % len(src)])
            if i >= 3:
                timings[name].append(time.perf_counter() - start)
    med = {k: float(np.median(v)) for k, v in timings.items()}
    batch_v = cfg.batch_size_valid
    print(f"config {args.f}: batch {cfg.batch_size_train} (arch batch {batch_v}), "
          f"{args.steps} steps, medians")  # fmt: skip
    print(f"  engine floor (plain nnabla child, static graph): {med['floor'] * 1e3:8.1f} ms")
    print(f"  ProxylessNAS weight step (one sampled path):     {med['weight'] * 1e3:8.1f} ms"
          f"  ratio {med['weight'] / med['floor']:.2f}")  # fmt: skip
    print(
        f"  ProxylessNAS architecture step (two paths):      {med['arch'] * 1e3:8.1f} ms"
        f"  ratio {med['arch'] / med['floor']:.2f} (batch {batch_v} vs {cfg.batch_size_train})"
    )


if __name__ == "__main__":
    main()
