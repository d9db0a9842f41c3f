"""How often a failing rank's last words are lost by ``mpirun`` (MPICH's Hydra) at MPI_Abort,
with and without waiting until the launcher has read them (``nnabla_nas.utils.stdio``).

The cause of the flaky ``test_a_failure_on_one_rank_ends_every_process`` (issue 16, item 11):
when a rank's message and its abort request are both pending at Hydra's proxy at once (a loaded
machine that did not schedule the proxy in between), Hydra may end the job before forwarding the
message, and ``stderr`` is empty. Here the proxy is stopped (SIGSTOP, resumed after 1 s) while
rank 1 prints and aborts, which puts every run in that situation; rank 0 waits in a barrier.

    .venv/bin/python benchmarks/abort_delivery.py [--runs 40]

Prints, for both variants, how many runs lost the message. Measured here (2 cores, over several
sessions of this script and its first draft): without the wait 14 of 120 runs lost it, with it
0 of 90.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MESSAGE = "[rank 1] error: the last words"


def rank_main(wait: bool) -> None:
    """Under mpirun: rank 1 stalls its launcher, prints, (waits,) aborts; rank 0 waits."""
    from mpi4py import MPI

    comm = MPI.COMM_WORLD
    if comm.rank == 1:
        proxy = os.getppid()
        subprocess.Popen(["sh", "-c", f"sleep 1; kill -CONT {proxy}"])
        os.kill(proxy, signal.SIGSTOP)
        print(MESSAGE, file=sys.stderr, flush=True)
        if wait:
            sys.path.insert(0, str(ROOT))
            from nnabla_nas.utils.stdio import wait_until_read

            wait_until_read()
        comm.Abort(1)
    comm.Barrier()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=40)
    p.add_argument("--rank", choices=["wait", "nowait"], help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.rank:
        rank_main(args.rank == "wait")
        return
    mpirun = Path(sys.executable).parent / "mpirun"
    for variant in ("nowait", "wait"):
        lost = 0
        for _ in range(args.runs):
            cmd = [str(mpirun), "-n", "2", sys.executable, __file__, "--rank", variant]
            proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
            lost += MESSAGE not in proc.stderr
        what = "waiting until read" if variant == "wait" else "without waiting"
        print(f"{what:>20}: message lost in {lost} of {args.runs} runs")


if __name__ == "__main__":
    main()
