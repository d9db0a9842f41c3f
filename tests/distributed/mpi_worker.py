"""Run under ``mpirun -n N``: the scenarios of :mod:`tests.distributed.scenarios` on N processes,
plus checks of the communicator's collectives. Every rank writes its outcome into OUT_DIR.

Usage: ``mpirun -n N python -m tests.distributed.mpi_worker OUT_DIR [SCENARIO ...]``, or
``... mpi_worker --fail`` (rank 1 fails alone; ``--fail-stalled``: while the launcher is
stopped), ``... mpi_worker --sockets`` (rank 0 prints the job's listening sockets as JSON).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import nnabla as nn
import numpy as np

from nnabla_nas.cli import _failed
from nnabla_nas.distributed import MpiCommunicator, make_communicator
from tests.distributed import scenarios


def collectives(comm: MpiCommunicator) -> dict:
    """Each collective on rank-dependent values; the test checks the numbers."""
    r = comm.rank
    a = nn.Variable((3,), need_grad=True)
    b = nn.Variable((2, 2), need_grad=True)
    untouched = nn.Variable((4,), need_grad=True)  # zero on every rank: stays lazily zero
    half = nn.Variable((2,), need_grad=True)  # computed on rank 0 only: rank 1 adds zeros
    a.g = np.arange(3) + 10.0 * r
    b.g = np.full((2, 2), r + 1.0)
    untouched.grad.zero()
    if r == 0:
        half.g = np.array([4.0, 8.0])
    else:
        half.grad.zero()
    comm.all_reduce_grads([a, b, untouched, half])
    w = nn.Variable((3,))
    w.d = np.full(3, r + 5.0)
    comm.broadcast_parameters([w], root=comm.size - 1)
    stats = nn.Variable((2,))
    stats.d = np.array([r, 2.0 * r])
    comm.average_parameters([stats])
    return {
        "rank": r,
        "size": comm.size,
        "a": a.g.tolist(),
        "b": b.g.tolist(),
        "untouched_zeroing": bool(untouched.grad.zeroing),
        "half": half.g.tolist(),
        "broadcast": w.d.tolist(),
        "average": stats.d.tolist(),
        "mean": comm.all_reduce(float(r + 1)),
        "sum": comm.all_reduce(np.array([r, 1.0]), "sum").tolist(),
        "max": comm.all_reduce(float(r), "max"),
        "dict": comm.all_reduce_dict({"x": float(r), "y": 2.0}),
        "gather": comm.all_gather({"rank": r}),
        "object": comm.broadcast({"from": r}, root=0),
    }


def stall_launcher(seconds: float) -> None:
    """Stops the launcher's process that reads this rank's output (Hydra's proxy, the parent)
    for ``seconds``: what a loaded machine does when it does not schedule the launcher, so that
    the rank's last words and its abort request are pending at once when it wakes up."""
    proxy = os.getppid()
    subprocess.Popen(["sh", "-c", f"sleep {seconds}; kill -CONT {proxy}"])
    os.kill(proxy, signal.SIGSTOP)


def fail_on_one_rank(comm: MpiCommunicator, stall: bool = False) -> int:
    """Rank 1 fails while rank 0 waits in a collective: the CLI's failure path must end both."""
    if comm.rank == 1:
        if stall:
            stall_launcher(1.0)
        return _failed(1, "error: rank 1 failed alone", collective=False)
    comm.barrier()  # never completes: rank 1 aborts the run
    return 0


def launcher():
    """The job's launcher process (``mpiexec.gforker``, ``mpirun``), a psutil Process."""
    import psutil

    top = psutil.Process()
    while top.parent() is not None and not top.name().startswith(("mpiexec", "mpirun")):
        top = top.parent()
    return top


def listening_sockets() -> list[list]:
    """Every listening TCP socket of the job (the launcher and its descendants, this rank
    included) while MPI's connections are up: ``[pid, name, address, port]``."""
    import psutil

    top = launcher()
    found = []
    for proc in [top, *top.children(recursive=True)]:
        for conn in proc.net_connections(kind="tcp"):
            if conn.status == psutil.CONN_LISTEN:
                found.append([proc.pid, proc.name(), conn.laddr.ip, conn.laddr.port])
    return found


def main(argv: list[str]) -> int:
    comm = make_communicator("cpu")
    if argv and argv[0] == "--sockets":
        comm.all_reduce(float(comm.rank))  # (the ranks' connections are up)
        comm.barrier()
        if comm.rank == 0:
            print(json.dumps({"sockets": listening_sockets(), "launcher": launcher().name()}))
        comm.barrier()
        return 0
    if argv and argv[0] in ("--fail", "--fail-stalled"):
        return fail_on_one_rank(comm, stall=argv[0] == "--fail-stalled")
    out = Path(argv[0])
    assert isinstance(comm, MpiCommunicator), comm
    (out / f"collectives-rank{comm.rank}.json").write_text(json.dumps(collectives(comm)))
    for name in argv[1:]:
        outcome = scenarios.run(name, comm, out / name)
        scenarios.save(out / f"{name}-rank{comm.rank}", outcome)
    comm.barrier()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
