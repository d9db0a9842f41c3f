"""Where the time of a search run goes: exclusive wall time per phase, per rank.

Runs the issue's ProxylessNAS or DARTS search (``benchmarks/common.py``: CIFAR-size images,
random pixels) through the loop the CLI runs, with a :class:`~nnabla_nas.runner.profile.PhaseClock`
installed, and prints for every rank the seconds and the share of:

- ``graph``: graph construction (the searchers build a sampled path's graph every step);
- ``forward`` / ``backward``: the passes of the weight and architecture steps;
- ``update``: the solvers' updates (clipping, weight decay; the all-reduce they call excluded);
- ``allreduce``: the collectives (gradients, metrics, REINFORCE's gathers), and ``wait``: the
  barrier before each one, the time this rank waited for the slower one;
- ``data``: waiting for the next batch of the weight or architecture split (loading and
  augmentation on the critical path: the prefetch thread's work overlapped is not counted);
- ``evaluation``: the end-of-epoch evaluations (their forwards included);
- ``estimates``: the hardware estimates of the exported architecture; ``exports``: the
  searcher's files (``arch.h5``, ``arch.png``, ...); ``checkpoint``; ``logging``: TensorBoard
  scalars and log lines;
- ``other``: the rest (the searchers' own work between the passes, sampling, rules).

``epoch-end`` is the inclusive time after the epochs' last steps (evaluation, estimates,
exports, checkpoint), the issue's "epoch-end work". Every figure is printed with the load average.

    .venv/bin/python benchmarks/profile_search.py [--config proxyless|darts] [--procs 1|2]
        [--steps N] [--set KEY=VALUE ...]

``--steps N`` keeps the first N batches of the weight split (the evaluation splits are kept whole);
with several processes, mini-batches that do not split are set to ``batch / procs``;
``--set`` overrides experiment keys, e.g. ``--set eval_every=2 --set test_at_end=true``
(``docs/benchmarks.rst``: the figures before and after).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from typing import Any, Callable

import common

PHASES = ("graph", "forward", "backward", "update", "allreduce", "wait", "data", "evaluation",
          "estimates", "exports", "checkpoint", "logging", "other")  # fmt: skip
COLLECTIVES = ("all_reduce_grads", "all_reduce", "all_reduce_dict", "all_gather", "broadcast",
               "broadcast_parameters", "average_parameters")  # fmt: skip


def _timed(clock: Any, name: str, fn: Callable, absorb: bool = False) -> Callable:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with clock(name, absorb):
            return fn(*args, **kwargs)

    return wrapper


class _TimedLoader:
    """A loader whose batches are waited for in phase ``data``."""

    def __init__(self, loader: Any, clock: Any) -> None:
        self._loader, self._clock = loader, clock

    def __getattr__(self, name: str) -> Any:
        return getattr(self._loader, name)

    def __len__(self) -> int:
        return len(self._loader)

    def __iter__(self) -> Any:
        it = iter(self._loader)
        while True:
            with self._clock("data"):
                batch = next(it, None)
            if batch is None:
                return
            yield batch


def instrument(loop: Any, clock: Any) -> dict[str, float]:
    """Installs ``clock`` on the loop's passes, optimizers, collectives, loaders, evaluation,
    estimates, exports, checkpoints and logging; returns the dict the inclusive epoch-end time
    is added to."""
    loop.steps.clock = clock
    for opt in loop.optimizers.values():
        opt.update = _timed(clock, "update", opt.update)
    comm = loop.comm
    if comm.size > 1:
        barrier = comm.barrier
        for name in COLLECTIVES:
            original = getattr(comm, name)

            def collective(*args: Any, _fn: Callable = original, **kwargs: Any) -> Any:
                with clock("wait"):
                    barrier()
                with clock("allreduce"):
                    return _fn(*args, **kwargs)

            setattr(comm, name, collective)
    loop.data.train = _TimedLoader(loop.data.train, clock)
    if loop.arch_batches is not None:
        loop.arch_batches.loader = _TimedLoader(loop.arch_batches.loader, clock)
    loop.steps.evaluate = _timed(clock, "evaluation", loop.steps.evaluate, absorb=True)
    loop.hardware.estimate = _timed(clock, "estimates", loop.hardware.estimate, absorb=True)
    if loop.exporter is not None:
        loop.exporter.epoch_end = _timed(clock, "exports", loop.exporter.epoch_end, absorb=True)
    loop.save_checkpoint = _timed(clock, "checkpoint", loop.save_checkpoint, absorb=True)
    loop.save_weights = _timed(clock, "checkpoint", loop.save_weights, absorb=True)
    loop.monitor.scalars = _timed(clock, "logging", loop.monitor.scalars, absorb=True)
    epoch_end = {"seconds": 0.0}
    end = loop._end_epoch

    def timed_end(*args: Any) -> None:
        start = time.perf_counter()
        try:
            end(*args)
        finally:
            epoch_end["seconds"] += time.perf_counter() - start

    loop._end_epoch = timed_end
    return epoch_end


def worker(args: argparse.Namespace, output: str) -> None:
    """One rank: the run, profiled; rank 0 prints every rank's figures."""
    from nnabla_nas.distributed import make_communicator
    from nnabla_nas.runner.profile import PhaseClock

    algorithm, raw = common.experiment(args.config, args.set)
    raw["print_frequency"] = 10**6
    comm = make_communicator("cpu")
    for part in ("train", "valid"):  # each process takes whole mini-batches of its share
        batch = raw[f"batch_size_{part}"]
        if batch % (comm.size * (raw.get(f"mini_batch_{part}") or batch)):
            raw[f"mini_batch_{part}"] = batch // comm.size
    algo = common.build_run(algorithm, raw, output, comm)
    if args.steps:
        train = algo.data.train
        train.indices = train.indices[: args.steps * raw["batch_size_train"]]
    loop = algo.loop()
    clock = PhaseClock()
    epoch_end = instrument(loop, clock)
    comm.barrier()
    start = time.perf_counter()
    with clock("other"):
        algo.run()
    wall = time.perf_counter() - start
    row = {"wall": wall, "epoch_end": epoch_end["seconds"], "seconds": clock.snapshot(),
           "steps": loop.state.iteration, "epochs": loop.state.epoch}  # fmt: skip
    rows = comm.all_gather(row) if comm.size > 1 else [row]
    if comm.is_main:
        print("RESULT " + json.dumps({"rows": rows, "raw": raw}), flush=True)


def report(rows: list[dict], raw: dict, args: argparse.Namespace, load: str) -> None:
    keys = (
        "epoch",
        "warmup",
        "batch_size_train",
        "mini_batch_train",
        "mini_batch_valid",
        "eval_every",
        "eval_examples",
        "test_at_end",
    )
    shown = {k: raw[k] for k in keys if k in raw}
    print(f"{args.config} search, {len(rows)} process(es), {rows[0]['steps']} iterations; "
          f"{json.dumps(shown)}; {load}")  # fmt: skip
    print(f"{'phase':<12}" + "".join(f"{f'rank {r} s':>11}{'share':>7}" for r in range(len(rows))))
    for phase in PHASES:
        cells = ""
        for row in rows:
            s = row["seconds"].get(phase, 0.0)
            cells += f"{s:11.2f}{s / row['wall']:7.1%}"
        print(f"{phase:<12}{cells}")
    print(f"{'wall':<12}" + "".join(f"{row['wall']:11.2f}{1:7.0%}" for row in rows))
    print(f"{'epoch-end':<12}"
          + "".join(f"{row['epoch_end']:11.2f}{row['epoch_end'] / row['wall']:7.1%}"
                    for row in rows))  # fmt: skip


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", choices=sorted(common.CONFIGS), default="proxyless")
    p.add_argument("--procs", type=int, default=1)
    p.add_argument("--steps", type=int, default=None, help="weight steps per epoch (default all)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("-o", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker(args, args.o)
        return
    common.experiment(args.config)  # the dataset written once, before the ranks start
    with tempfile.TemporaryDirectory() as out:
        cmd = [sys.executable, __file__, "--worker", "-o", out, "--config", args.config]
        cmd += [a for kv in args.set for a in ("--set", kv)]
        if args.steps:
            cmd += ["--steps", str(args.steps)]
        if args.procs > 1:
            cmd = [common.mpirun(), "-n", str(args.procs), *cmd]
        load = common.load()
        proc = subprocess.run(cmd, cwd=common.ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}{proc.stderr[-3000:]}")
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT "))
    result = json.loads(line[len("RESULT ") :])
    report(result["rows"], result["raw"], args, f"{load} (start), {common.load()} (end)")


if __name__ == "__main__":
    main()
