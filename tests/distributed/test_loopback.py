"""MPI on one machine stays on the loopback interface: no socket of the job listens elsewhere."""

from __future__ import annotations

import json

from nnabla_nas.distributed import ranks_on_one_machine, use_loopback
from tests.distributed.launch import mpirun


def test_no_socket_of_a_two_rank_job_listens_outside_loopback():
    proc = mpirun(2, ["-m", "tests.distributed.mpi_worker", "--sockets"], timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout.strip().splitlines()[-1])
    sockets = report["sockets"]
    assert sockets, report  # the ranks' own listeners are seen: the check looks at something
    outside = [s for s in sockets if s[2] not in ("127.0.0.1", "::1")]
    assert not outside, (report["launcher"], outside)


def test_loopback_defaults_only_when_every_rank_is_here():
    hydra = {"PMI_SIZE": "2", "PMI_RANK": "0", "MPI_LOCALNRANKS": "2", "PMI_HOSTNAME": "vm"}
    gforker = {"PMI_SIZE": "2", "PMI_RANK": "0", "PMI_FD": "9"}
    two_hosts = {**hydra, "MPI_LOCALNRANKS": "1"}
    open_mpi = {"OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_SIZE": "4"}
    assert [ranks_on_one_machine(e) for e in (hydra, gforker, two_hosts, open_mpi)] == [
        True, True, False, True
    ]  # fmt: skip
    env = dict(hydra)
    assert use_loopback(env) == ["UCX_NET_DEVICES"] and env["UCX_NET_DEVICES"] == "lo"
    chosen = {**hydra, "UCX_NET_DEVICES": "mlx5_0:1"}  # the user's choice is kept
    assert use_loopback(chosen) == [] and chosen["UCX_NET_DEVICES"] == "mlx5_0:1"
    env = dict(two_hosts)
    assert use_loopback(env) == [] and "UCX_NET_DEVICES" not in env
