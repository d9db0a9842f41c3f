"""Speed-up of a ``train`` experiment on 2 Dask workers against 1 (the same trials).

Runs the same multi-trial experiment (``RandomTrials``, seed 0, the same ``--window`` in both,
so the same architectures with the same seeds are trained; the ``train`` evaluator on the embedded
MNIST digits, the tiny MobileNet space of the tests at 28x28, ``--trial-epochs`` each) on a
local Dask cluster of 1 and of 2 single-threaded worker processes, alternating ``--repeat``
times, and prints per run the seconds from the moment the cluster is up to the end (cluster
start-up left out; printed apart) with the load average before it, then the speed-up of the
fastest runs and of the medians. The target on a 2-core machine is 1.7x; on a loaded machine
the figure means little: run it when ``uptime`` shows a load well below 1.

``--window`` (default 4): trials are told in order, so with a window of 2 on 2 workers a worker
whose trial ends before the older one's waits for it (the next proposal needs the older result);
trials of different architectures take different times. Random proposals never depend on
results, so a window of twice the workers keeps both busy at no cost; ``--window 2`` measures
the strict schedule.

    .venv/bin/python benchmarks/bench_trials_workers.py [--budget 6] [--repeat 3]
        [--trial-epochs 1] [--window 4]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DASK_LOGGING__DISTRIBUTED", "warning")  # also the workers' (before import)

from nnabla_nas.config import ExperimentConfig  # noqa: E402
from nnabla_nas.contrib import create_space  # noqa: E402
from nnabla_nas.trials import RandomTrials, SearchSpace, run_experiment  # noqa: E402
from tests.conftest import tiny_mnist_config  # noqa: E402


def experiment(trial_epochs: int, budget: int) -> tuple[SearchSpace, object]:
    """The space and the ``train`` evaluator of the benchmark's experiment."""
    from nnabla_nas.cli.trials import _setting

    raw = tiny_mnist_config()
    del raw["epoch"]
    raw["trials"] = {"budget": budget, "evaluator": {"name": "train", "trial_epochs": trial_epochs}}
    cfg = ExperimentConfig.from_dict(raw)
    network = {k: v for k, v in raw["network"].items() if k != "search_space"}
    space = SearchSpace.from_model(create_space("mobilenet", in_channels=1, **network), "mobilenet")
    return space, cfg.trials.evaluator.build(_setting(cfg))


def run(
    workers: int, trial_epochs: int, budget: int, window: int, folder: Path
) -> tuple[float, float, float]:
    """Seconds of the trials (after the cluster is up), of the start-up, and the load before."""
    space, evaluator = experiment(trial_epochs, budget)
    load = os.getloadavg()[0]
    start = time.perf_counter()
    up: list[float] = []
    run_experiment(space, RandomTrials(space, 0), evaluator, folder, budget, workers=workers,
                   window=window, on_start=lambda: up.append(time.perf_counter()))  # fmt: skip
    end = time.perf_counter()
    return end - up[0], up[0] - start, load


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=int, default=6)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--trial-epochs", type=int, default=1)
    parser.add_argument("--window", type=int, default=4)
    args = parser.parse_args()
    times: dict[int, list[float]] = {1: [], 2: []}
    with tempfile.TemporaryDirectory(prefix="bench_trials_") as tmp:
        for r in range(args.repeat):
            for workers in (1, 2):
                seconds, startup, load = run(workers, args.trial_epochs, args.budget, args.window,
                                             Path(tmp) / f"{workers}-{r}")  # fmt: skip
                times[workers].append(seconds)
                print(f"run {r} workers {workers}: {seconds:7.2f} s of trials "
                      f"({args.budget} trials, window {args.window}; "
                      f"cluster start {startup:.1f} s) "
                      f"load {load:.2f}", flush=True)  # fmt: skip
    best = min(times[1]) / min(times[2])
    median = statistics.median(times[1]) / statistics.median(times[2])
    print(
        f"speed-up 2 vs 1 workers: {best:.2f}x (fastest runs), {median:.2f}x (medians); "
        f"load now {os.getloadavg()[0]:.2f} (target 1.7x)"
    )


if __name__ == "__main__":
    main()
