"""Queries each multi-trial strategy needs to reach NAS-Bench-Macro's top 1%, over seeds.

The table (shipped in ``nnabla_nas/trials/tables``, 6,561 architectures, CIFAR-10 ``mean_acc``)
is searched by each strategy through the real driver (``nnabla_nas.trials.driver.drive``, the
trials run in this process by the ``table`` evaluator) until it proposes an architecture in the
top 1% (``mean_acc`` at least that of the ceil(1%) = 66th best entry; ties included). A query
is one trial; repeats count (evolution may evaluate an architecture twice, as in the paper).
With ``--windows 1 2`` the strategies also run with two trials in flight (two workers: a
proposal does not see the result of the trial just before it).

Sanity check printed with the results: uniform sampling without repeats needs
``(N + 1) / (K + 1)`` queries in expectation to hit one of K targets among N.

    .venv/bin/python benchmarks/bench_trials_table.py [--seeds 20] [--budget 3000]
        [--windows 1 2]
"""

from __future__ import annotations

import argparse
import math
import time
from typing import Callable

import numpy as np

from nnabla_nas.trials import (
    BenchmarkTable,
    EvolutionSearcher,
    RandomTrials,
    Strategy,
    TableEvaluator,
    TpeTrials,
)
from nnabla_nas.trials.driver import Recorder, drive
from nnabla_nas.trials.executor import InlineExecutor
from nnabla_nas.trials.objective import Objective


def strategies(space) -> dict[str, Callable[[int], Strategy]]:
    evo = EvolutionSearcher.Config
    return {
        "RandomTrials": lambda s: RandomTrials(space, s),
        "EvolutionSearcher P=100 S=25 (paper)": lambda s: EvolutionSearcher(space, s, evo(100, 25)),
        "EvolutionSearcher P=50 S=10": lambda s: EvolutionSearcher(space, s, evo(50, 10)),
        "EvolutionSearcher P=20 S=5": lambda s: EvolutionSearcher(space, s, evo(20, 5)),
        "TpeTrials (10 start-up)": lambda s: TpeTrials(space, s),
        "TpeTrials multivariate": lambda s: TpeTrials(
            space, s, TpeTrials.Config(multivariate=True)
        ),
    }


def queries(strategy: Strategy, table: BenchmarkTable, threshold: float, budget: int,
            window: int) -> int:  # fmt: skip
    """Trials until the first one at or above ``threshold`` (``budget + 1``: not reached)."""
    evaluator = TableEvaluator(table)
    records = drive(strategy, InlineExecutor(evaluator), budget, Recorder(Objective("mean_acc")),
                    window=window, stop=lambda r: r.scores["mean_acc"] >= threshold)  # fmt: skip
    hits = [r.trial for r in records if r.scores["mean_acc"] >= threshold]
    return min(hits) + 1 if hits else budget + 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--budget", type=int, default=3000, help="queries before giving up")
    parser.add_argument("--windows", type=int, nargs="+", default=[1])
    parser.add_argument("--fraction", type=float, default=0.01)
    args = parser.parse_args()

    table = BenchmarkTable.load("nas-bench-macro")
    values = np.sort(table.values("mean_acc"))[::-1]
    n, top = len(values), math.ceil(args.fraction * len(values))
    threshold = float(values[top - 1])
    k = int((values >= threshold).sum())
    print(f"NAS-Bench-Macro: {n} architectures; top {args.fraction:.0%}: mean_acc >= "
          f"{threshold:.3f} ({k} architectures with ties); best {values[0]:.3f}")  # fmt: skip
    print(f"uniform sampling without repeats, expected queries: (N+1)/(K+1) = "
          f"{(n + 1) / (k + 1):.1f}")  # fmt: skip
    print(f"{args.seeds} seeds (0..{args.seeds - 1}), budget {args.budget} queries\n")
    header = f"{'strategy':40s} {'window':>6s} {'mean':>7s} {'std':>7s} {'median':>7s} " \
             f"{'IQR':>13s} {'min':>5s} {'max':>5s} {'missed':>6s} {'s/run':>6s}"  # fmt: skip
    print(header)
    print("-" * len(header))
    for window in args.windows:
        for name, make in strategies(table.space()).items():
            start = time.perf_counter()
            q = np.array([queries(make(s), table, threshold, args.budget, window)
                          for s in range(args.seeds)])  # fmt: skip
            elapsed = (time.perf_counter() - start) / args.seeds
            q25, q75 = np.percentile(q, [25, 75])
            missed = int((q > args.budget).sum())
            print(f"{name:40s} {window:6d} {q.mean():7.1f} {q.std(ddof=1):7.1f} "
                  f"{np.median(q):7.1f} {f'{q25:.0f}-{q75:.0f}':>13s} {q.min():5d} {q.max():5d} "
                  f"{missed:6d} {elapsed:6.2f}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
