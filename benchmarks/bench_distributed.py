"""Throughput of data-parallel search and training: 1 process against 2 (``mpirun -n 2``).

Runs one ProxylessNAS search epoch (``examples/mnist_search.json``), one Trainer epoch
(``examples/mnist_reference.json``) and, with ``--runs proxyless``, the issue's ProxylessNAS
search run (``benchmarks/common.py``: the MobileNetV2 space on CIFAR-size images, REINFORCE, one
warm-up and one search epoch) through the shared loop, each with 1 and with 2 MPI processes and
the same configuration, and prints images per second, the speed-up (the wall-time ratio is its
inverse) and the time spent in communication per step. The MNIST files use mini-batches of a
whole batch; with 2 processes a batch must split into whole mini-batches on each, so the same
override is given to both runs (``mini_batch_train=16``, ``mini_batch_valid=32`` for the search,
``125`` for the training; 32 for the issue's run).

    .venv/bin/python benchmarks/bench_distributed.py [--procs 1 2] [--runs search train proxyless]
        [--steps N] [--repeat R]

``--steps N`` stops each epoch after ``N`` weight steps (for a quick look); by default whole
epochs run, evaluation, checkpoint and exports included (``no-eval img/s`` leaves the two
evaluations out). The figures depend on the machine's load: the load average before each run is
printed beside it; ``--repeat R`` runs each configuration ``R`` times, alternating, and shows
the fastest.

Per step, ``comm`` is the time rank 0 spent in collective operations during the epoch (the
gradient all-reduce, the metrics, REINFORCE's gathers), waiting for the slower rank included;
``allreduce`` is the all-reduce of the whole gradient buffer alone, timed after the epoch.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import common

ROOT = common.ROOT
RUNS = {
    # name: (experiment file or common.CONFIGS name, algorithm, overrides)
    "search": ("examples/mnist_search.json", "ProxylessNasSearcher",
               {"mini_batch_train": 16, "mini_batch_valid": 32, "warmup": 0}),
    "train": ("examples/mnist_reference.json", "Trainer",
              {"mini_batch_train": 16, "mini_batch_valid": 125, "warmup": 0}),
    "proxyless": ("proxyless", "ProxylessNasSearcher",
                  {"mini_batch_train": 32, "mini_batch_valid": 32}),
}  # fmt: skip


def run_experiment(name: str) -> tuple[str, dict]:
    """The algorithm and experiment dict of run ``name`` (one epoch, no progress lines)."""
    path, algorithm, overrides = RUNS[name]
    if path in common.CONFIGS:
        raw = common.experiment(path)[1]
    else:
        raw = json.loads((ROOT / path).read_text())
    raw.update(epoch=1, print_frequency=10**6)
    raw.update(overrides)
    return algorithm, raw


def worker(name: str, steps: int | None, output: str) -> None:
    """One epoch of run ``name`` in this process (one rank of mpirun); rank 0 prints figures."""
    import nnabla as nn
    import numpy as np

    from nnabla_nas.distributed import make_communicator

    algorithm, raw = run_experiment(name)
    comm = make_communicator("cpu")
    nn.clear_parameters()
    algo = common.build_run(algorithm, raw, output, comm)
    if steps is not None:  # a shorter epoch: the first `steps` batches
        algo.data.train.indices = algo.data.train.indices[: steps * raw["batch_size_train"]]
    loop = algo.loop()
    eval_time = [0.0]
    evaluate = loop.steps.evaluate

    def timed_evaluate(*args, **kwargs):
        start = time.perf_counter()
        try:
            return evaluate(*args, **kwargs)
        finally:
            eval_time[0] += time.perf_counter() - start

    loop.steps.evaluate = timed_evaluate
    model = algo.model
    comm.barrier()
    start = time.perf_counter()
    algo.run()
    comm.barrier()
    seconds = time.perf_counter() - start
    n_steps = loop.state.iteration
    comm_time, comm_calls = comm.comm_time, comm.comm_calls
    # the gradient all-reduce alone, in step with the other rank
    params = list(model.get_net_parameters(grad_only=True).values())
    for p in params:
        p.g = np.ones(p.shape, np.float32)
    comm.barrier()
    start = time.perf_counter()
    for _ in range(20):
        comm.all_reduce_grads(params)
    allreduce = (time.perf_counter() - start) / 20
    images = n_steps * raw["batch_size_train"]
    figures = {
        "run": name,
        "procs": comm.size,
        "steps": n_steps,
        "images": images,
        "seconds": seconds,
        "eval_seconds": eval_time[0],
        "images_per_s": images / seconds,
        "loop_images_per_s": images / (seconds - eval_time[0]),
        "comm_ms_per_step": 1e3 * comm_time / max(n_steps, 1),
        "comm_calls_per_step": comm_calls / max(n_steps, 1),
        "allreduce_ms": 1e3 * allreduce,
        "gradient_mb": 4 * sum(p.size for p in params) / 2**20,
    }
    if comm.is_main:
        print("RESULT " + json.dumps(figures), flush=True)


def launch(name: str, procs: int, steps: int | None) -> dict:
    """Runs the worker under ``mpirun -n procs`` (MPICH's ``mpiexec.gforker`` preferred: on
    one machine it listens on no socket, docs/distributed.rst); returns rank 0's figures."""
    exe = common.mpirun()
    output = tempfile.mkdtemp(prefix=f"bench_distributed_{name}_{procs}_")
    cmd = [exe, "-n", str(procs), sys.executable, __file__, "--worker", name, "-o", output]
    if steps is not None:
        cmd += ["--steps", str(steps)]
    load = os.getloadavg()[0]  # printed beside the figures
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    shutil.rmtree(output, ignore_errors=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-2000:]}{proc.stderr[-2000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    return {**json.loads(line[len("RESULT ") :]), "load": load}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--procs", type=int, nargs="+", default=[1, 2])
    p.add_argument("--runs", nargs="+", default=["search", "train"], choices=list(RUNS))
    p.add_argument("--steps", type=int, default=None, help="weight steps per epoch (default all)")
    p.add_argument("--repeat", type=int, default=1, help="runs of each; the fastest is shown")
    p.add_argument("--worker", default=None, help=argparse.SUPPRESS)
    p.add_argument("-o", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args.worker, args.steps, args.o)
        return
    print(f"{'run':7} {'procs':>5} {'steps':>5} {'images/s':>9} {'no-eval img/s':>13} "
          f"{'speed-up':>8} {'comm ms/step':>12} {'allreduce ms':>12} {'load':>5}")  # fmt: skip
    for name in args.runs:
        best: dict[int, dict] = {}
        for _ in range(args.repeat):  # alternated, so that load changes hit both alike
            for procs in args.procs:
                r = launch(name, procs, args.steps)
                if procs not in best or r["images_per_s"] > best[procs]["images_per_s"]:
                    best[procs] = r
        base = best[args.procs[0]]
        for procs in args.procs:
            r = best[procs]
            print(f"{name:7} {procs:5d} {r['steps']:5d} {r['images_per_s']:9.1f} "
                  f"{r['loop_images_per_s']:13.1f} {r['images_per_s'] / base['images_per_s']:8.2f} "
                  f"{r['comm_ms_per_step']:12.2f} {r['allreduce_ms']:12.3f} {r['load']:5.2f}",
                  flush=True)  # fmt: skip
        print(
            f"  ({name}: gradient buffer {base['gradient_mb']:.2f} MB, "
            f"{RUNS[name][0]}, {RUNS[name][1]})"
        )


if __name__ == "__main__":
    main()
