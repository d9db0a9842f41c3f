"""nn-Meter on the MNIST MobileNet space: IR conversion and prediction time, and accuracy.

1. Builds a custom nn-Meter predictor for this machine as ``nnmeter_build`` does: the kernels of
   ``--train-archs`` random architectures, their latencies from the latency lookup table
   (functions measured once, in this process, on the current nnabla context), nn-Meter's
   builder fitting one kernel predictor per kernel type.
2. For ``--archs`` other random architectures, times (a) the IR conversion: the inference graph
   of the architecture and its nn-Meter IR (``NnMeterEstimator.graph``), and (b) nn-Meter's
   prediction from the IR (kernel detection + kernel predictors, ``predict_ir``).
3. Accuracy on those held-out architectures: the predictor against the table-summed latency (its
   training target) and, with ``--measure``, against the measured whole network (inference
   graph, ``forward(clear_buffer=True)`` at batch 1, interleaved rounds, robust median):
   Spearman's rank correlation and mean relative error.

    .venv/bin/python benchmarks/bench_nnmeter.py [--archs 50] [--train-archs 30] [--measure]
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import nnabla as nn
import numpy as np

from nnabla_nas.assemble import build_model
from nnabla_nas.config import ExperimentConfig
from nnabla_nas.estimator import LatencyEstimator, inference_graph
from nnabla_nas.estimator.latency import robust_median, runtime_key
from nnabla_nas.estimator.nnmeter import NnMeterEstimator
from nnabla_nas.estimator.nnmeter_build import build_predictor, measured_samples
from nnabla_nas.runner.searcher.logits import ArchLogits

ROOT = Path(__file__).resolve().parents[1]


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rank correlation (average ranks for ties)."""

    def ranks(v: np.ndarray) -> np.ndarray:
        order = np.argsort(v, kind="stable")
        r = np.empty(len(v))
        r[order] = np.arange(len(v))
        for value in np.unique(v):
            mask = v == value
            r[mask] = r[mask].mean()
        return r

    return float(np.corrcoef(ranks(np.asarray(a)), ranks(np.asarray(b)))[0, 1])


def random_architectures(model, n: int, rng: np.random.RandomState) -> list[dict[str, int]]:
    return [
        {label: int(rng.randint(len(op.ops))) for label, op in model.choices().items()}
        for _ in range(n)
    ]


def measure_networks(model, input_shape, archs, rounds: int = 5, runs: int = 20) -> np.ndarray:
    """Whole-network latency (ms) of each architecture, timed in interleaved rounds."""
    graphs = []
    for arch in archs:
        x, y = inference_graph(model, input_shape, 1, arch)
        x.d = np.random.RandomState(0).uniform(-1, 1, x.shape)
        for _ in range(5):
            y.forward(clear_buffer=True)
        graphs.append(y)
    samples: list[list[float]] = [[] for _ in archs]
    for _ in range(rounds):
        for i, y in enumerate(graphs):
            for _ in range(runs):
                start = time.perf_counter()
                y.forward(clear_buffer=True)
                samples[i].append(time.perf_counter() - start)
    return np.array([robust_median(s)[0] * 1e3 for s in samples])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-f", "--file", default=str(ROOT / "examples" / "mnist_search.json"))
    parser.add_argument("--archs", type=int, default=50, help="held-out architectures timed")
    parser.add_argument("--train-archs", type=int, default=30, help="architectures measured")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--measure", action="store_true", help="also time the held-out whole networks"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("nnabla_nas").setLevel(logging.WARNING)

    cfg = ExperimentConfig.from_dict(json.loads(Path(args.file).read_text()))
    nn.clear_parameters()
    rng = np.random.RandomState(args.seed)
    model = build_model(cfg, None, rng)
    shape = cfg.input_shape
    train = random_architectures(model, args.train_archs, rng)
    held = random_architectures(model, args.archs, rng)
    context, device = runtime_key()
    print(f"{args.file}: {len(model.choices())} choices; {context} @ {device}")

    latency = LatencyEstimator(shape, 1)  # shipped tables for this machine, else measured now
    start = time.perf_counter()
    samples = measured_samples(model, shape, train, latency)
    t_samples = time.perf_counter() - start
    with tempfile.TemporaryDirectory() as tmp:
        folder = str(Path(tmp) / "predictor")
        start = time.perf_counter()
        meta = build_predictor(samples, folder)
        t_fit = time.perf_counter() - start
        start = time.perf_counter()
        est = NnMeterEstimator(shape, predictor=folder)
        t_load = time.perf_counter() - start
        fresh = NnMeterEstimator(shape, predictor=folder)  # an empty cache for expected()
    print(
        f"predictor: {len(samples)} distinct kernels from {len(train)} architectures "
        f"({t_samples:.2f} s, {latency.measured} functions measured); nn-Meter builder fit "
        f"{t_fit:.2f} s; load {t_load:.2f} s"
    )
    for name, rep in meta["kernels"].items():
        print(f"  {name:16s} {rep['samples']:4d} samples")

    est.predict_ir(est.graph(model, held[0]))  # warm-up (imports, first kernel detection)
    t_ir, t_pred, pred = [], [], []
    for arch in held:
        start = time.perf_counter()
        graph = est.graph(model, arch)
        t_ir.append(time.perf_counter() - start)
        start = time.perf_counter()
        pred.append(est.predict_ir(graph))
        t_pred.append(time.perf_counter() - start)
    t_ir, t_pred = np.array(t_ir) * 1e3, np.array(t_pred) * 1e3
    print(
        f"per architecture ({len(held)} held-out): IR conversion {np.median(t_ir):.1f} ms "
        f"(mean {t_ir.mean():.1f}), nn-Meter prediction {np.median(t_pred):.1f} ms "
        f"(mean {t_pred.mean():.1f}); total {np.median(t_ir + t_pred):.1f} ms"
    )

    n_predictions = 1 + sum(len(op.ops) - 1 for op in model.choices().values())
    distribution = ArchLogits(model).distribution()  # uniform probabilities
    start = time.perf_counter()
    value = fresh.expected(model, distribution)
    t_cold = time.perf_counter() - start
    start = time.perf_counter()
    value = fresh.expected(model, distribution)
    value.forward()
    value.backward()
    t_warm = time.perf_counter() - start
    print(
        f"expected(): {t_cold:.2f} s cold ({n_predictions} architectures predicted), "
        f"{t_warm * 1e3:.1f} ms cached (graph + forward + backward)"
    )

    pred = np.array(pred)
    table = np.array([latency.predict(model, a) for a in held])
    err = np.abs(pred - table) / table
    print(
        f"nn-Meter vs table sum: Spearman {spearman(pred, table):.3f}, mean relative error "
        f"{err.mean():.1%} (table {table.min():.3f}..{table.max():.3f} ms)"
    )
    if args.measure:
        measured = measure_networks(model, shape, held)
        err = np.abs(pred - measured) / measured
        print(
            f"nn-Meter vs measured network: Spearman {spearman(pred, measured):.3f}, mean "
            f"relative error {err.mean():.1%} (measured {measured.min():.3f}.."
            f"{measured.max():.3f} ms)"
        )


if __name__ == "__main__":
    main()
