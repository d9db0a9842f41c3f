"""The latency estimator: accuracy, speed, and its effect on a search.

``accuracy``: for random architectures of a space (default: the MNIST MobileNet space of
``examples/mnist_search.json``), the table-summed latency (the lookup table measured in the same
process, so machine load affects both alike) against the measured latency of the whole network
(its inference graph, ``forward(clear_buffer=True)`` at batch 1; every network timed in several
interleaved rounds, robust median). Prints Spearman's rank correlation (target >= 0.9) and the
mean relative error.

``speed``: with a warm table, the time to estimate 1,000 sampled architectures (target < 1 s),
and one forward + backward of the expected-latency expression.

``effect``: the MNIST search of ``examples/mnist_search_latency.json`` twice, with latency
weight 0 and with the file's budget; the two found architectures are then measured (whole
network, interleaved) and their search accuracies read from ``results.json``. Optional
``--retrain-epochs N`` retrains both from scratch for N epochs (``examples/mnist_train.json``).

    .venv/bin/python benchmarks/bench_latency.py accuracy [--archs 30]
    .venv/bin/python benchmarks/bench_latency.py speed
    .venv/bin/python benchmarks/bench_latency.py effect [-o log/bench_latency] [--retrain-epochs 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nnabla as nn
import numpy as np

from nnabla_nas.assemble import build_model
from nnabla_nas.config import ExperimentConfig
from nnabla_nas.estimator import LatencyEstimator
from nnabla_nas.estimator.latency import measure_network
from nnabla_nas.runner.searcher.logits import ArchLogits

ROOT = Path(__file__).resolve().parents[1]


def load_model(path: Path):
    cfg = ExperimentConfig.from_dict(json.loads(Path(path).read_text()))
    nn.clear_parameters()
    return cfg, build_model(cfg, None, np.random.RandomState(0))


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties)."""

    def ranks(v: np.ndarray) -> np.ndarray:
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        for value in np.unique(v):  # ties share their mean rank
            mask = v == value
            r[mask] = r[mask].mean()
        return r

    return float(np.corrcoef(ranks(np.asarray(a)), ranks(np.asarray(b)))[0, 1])


def random_architectures(model, n: int, seed: int) -> list[dict[str, int]]:
    rng = np.random.RandomState(seed)
    return [{label: int(rng.randint(len(op.ops))) for label, op in model.choices().items()}
            for _ in range(n)]  # fmt: skip


def accuracy(args: argparse.Namespace) -> None:
    cfg, model = load_model(args.file)
    with tempfile.TemporaryDirectory() as tmp:
        est = LatencyEstimator(cfg.input_shape, 1, Path(tmp) / "table.json",
                               repeat=args.repeat, shipped_tables=False)  # fmt: skip
        start = time.time()
        est.trace(model)
        table_s = time.time() - start
        # Calibrated on other architectures (another seed) than those evaluated.
        info = est.calibrate(model, random_architectures(model, 20, args.seed + 1000))
        archs = random_architectures(model, args.archs, args.seed)
        seg = est.trace(model)
        raw = np.array([sum(est.raw_value(layer) for layer in seg.active_layers(a))
                        for a in archs])  # fmt: skip
        predicted = np.array([est.predict(model, a) for a in archs])
        measured = measure_network(model, cfg.input_shape, archs)
    rel_raw = np.abs(raw - measured) / measured
    rel = np.abs(predicted - measured) / measured
    print(f"space: {args.file} ({len(model.choices())} choices); table: {est.measured} layers "
          f"measured in {table_s:.1f} s; calibration factor {info['scale']:.3f} (fitted on 20 "
          "other architectures)")  # fmt: skip
    print(f"{'arch':>4} {'table-sum':>10} {'calibrated':>10} {'measured':>10} {'rel. error':>10}")
    for i, (r, p, m) in enumerate(zip(raw, predicted, measured)):
        print(f"{i:4d} {r:10.4f} {p:10.4f} {m:10.4f} {abs(p - m) / m:10.1%}")
    print(f"architectures: {len(archs)}; measured range {measured.min():.4f} .. "
          f"{measured.max():.4f} ms")  # fmt: skip
    print(f"Spearman rank correlation: {spearman(predicted, measured):.3f} (target >= 0.9)")
    print(f"Pearson correlation: {float(np.corrcoef(predicted, measured)[0, 1]):.3f}")
    print(f"mean relative error: raw table sum {rel_raw.mean():.1%} (max {rel_raw.max():.1%}); "
          f"calibrated {rel.mean():.1%} (max {rel.max():.1%})")  # fmt: skip


def speed(args: argparse.Namespace) -> None:
    cfg, model = load_model(args.file)
    with tempfile.TemporaryDirectory() as tmp:
        est = LatencyEstimator(cfg.input_shape, 1, Path(tmp) / "table.json", repeat=5)
        est.trace(model)  # warm: every layer measured, the trace cached
        archs = random_architectures(model, 1000, args.seed)
        start = time.perf_counter()
        values = [est.predict(model, a) for a in archs]
        total = time.perf_counter() - start
        logits = ArchLogits(model)  # the searchers' logits (zeros: uniform probabilities)
        start = time.perf_counter()
        for _ in range(100):
            expected = est.expected(model, logits.distribution())
            expected.forward()
            expected.backward()
        grad_ms = (time.perf_counter() - start) * 10
    print(
        f"1000 architectures estimated in {total:.4f} s ({total * 1e3:.3f} us each; "
        f"target < 1 s in total); latencies {min(values):.4f} .. {max(values):.4f} ms"
    )
    print(f"expected latency: build + forward + backward {grad_ms:.3f} ms per architecture step")


def _run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)


def effect(args: argparse.Namespace) -> None:
    out = Path(args.output)
    exp = ROOT / "examples" / "mnist_search_latency.json"
    runs = {"weight 0": ["--set", "regularizer.latency.weight=0"], "budget": []}
    for name, extra in runs.items():
        folder = out / name.replace(" ", "_")
        if not (folder / "results.json").exists():
            _run([sys.executable, "main.py", "--search", "-f", str(exp), "-a",
                  "ProxylessNasSearcher", "-o", str(folder), "--overwrite", *extra])  # fmt: skip
    cfg, model = load_model(exp)
    from nnabla_nas.genotype import load_genotype

    archs, results = [], []
    for name in runs:
        folder = out / name.replace(" ", "_")
        genotype = load_genotype(folder / "arch.h5")
        labels = model.choices()
        archs.append({k: labels[k].names.index(v) for k, v in genotype.choices.items()})
        results.append(json.loads((folder / "results.json").read_text()))
    measured = measure_network(model, cfg.input_shape, archs, rounds=10)
    budget = cfg.regularizer["latency"].bound
    print(f"budget (bound): {budget} ms")
    for (name, _), arch_ms, res in zip(runs.items(), measured, results):
        final = res["final"]
        print(f"{name:>8}: measured {arch_ms:.4f} ms, table {res['hardware']['latency_ms']:.4f} "
              f"ms; search valid error {final['valid_error']:.3f}, test error "
              f"{final['test_error']:.3f}; {res['architecture']}")  # fmt: skip
    if args.retrain_epochs:
        for name in runs:
            folder = out / name.replace(" ", "_")
            target = out / f"retrain_{name.replace(' ', '_')}"
            if not (target / "results.json").exists():
                _run([sys.executable, "main.py", "-f", "examples/mnist_train.json", "-a",
                      "Trainer", "-o", str(target), "--overwrite", "--set",
                      f"network.genotype={folder / 'arch.h5'}", "--set",
                      f"epoch={args.retrain_epochs}"])  # fmt: skip
            res = json.loads((target / "results.json").read_text())
            print(f"{name:>8}: retrained {args.retrain_epochs} epochs: test error "
                  f"{res['final']['test_error']:.3f} (best valid epoch: "
                  f"{res['best']['test_error']:.3f})")  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["accuracy", "speed", "effect"])
    p.add_argument("-f", "--file", default=str(ROOT / "examples" / "mnist_search.json"))
    p.add_argument("--archs", type=int, default=30, help="random architectures (accuracy)")
    p.add_argument("--repeat", type=int, default=30, help="timed runs per layer (accuracy)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-o", "--output", default=str(ROOT / "log" / "bench_latency"))
    p.add_argument("--retrain-epochs", type=int, default=0)
    args = p.parse_args()
    {"accuracy": accuracy, "speed": speed, "effect": effect}[args.what](args)


if __name__ == "__main__":
    main()
