"""Trials on real Dask clusters: loopback only, two workers end to end, a worker killed with
SIGKILL mid-trial, a worker that always dies, and a driver killed and resumed.

Every cluster listens on 127.0.0.1 only and is closed by its test.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest

from nnabla_nas.trials import EvolutionSearcher, RandomTrials, TableEvaluator, run_experiment
from nnabla_nas.trials.cluster import local_cluster
from nnabla_nas.trials.journal import Journal

from . import driver_job
from .processes import kill_processes
from .toy import CountingTable, DyingTable, HangingTable, toy_table

ROOT = Path(__file__).resolve().parents[2]
TABLE = toy_table(4, 3)
SPACE = TABLE.space()
LOOPBACK = {"127.0.0.1", "::1"}


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client

    cluster = local_cluster(2)
    client = Client(cluster, set_as_default=False)
    try:
        yield cluster, client
    finally:
        client.close()
        cluster.close()


def listeners(pids) -> list[tuple[int, str, int]]:
    found = []
    for pid in pids:
        for conn in psutil.Process(pid).net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN:
                found.append((pid, conn.laddr.ip, conn.laddr.port))
    return found


def test_every_listening_socket_is_on_loopback(cluster):
    cluster, client = cluster
    workers = set(client.run(os.getpid).values())
    me = psutil.Process()
    pids = {me.pid, *(p.pid for p in me.children(recursive=True))}
    assert workers <= pids and len(workers) == 2
    found = listeners(pids)
    # the scheduler, its dashboard, 2 nannies (this process), 2 workers and their dashboards
    assert len(found) >= 6 and {pid for pid, _, _ in found} >= workers
    assert {ip for _, ip, _ in found} <= LOOPBACK, found


def test_two_workers_end_to_end_match_the_same_run_in_process(tmp_path):
    def strategy():
        return EvolutionSearcher(SPACE, 1, EvolutionSearcher.Config(6, 3))

    dask = run_experiment(SPACE, strategy(), CountingTable(TABLE), tmp_path / "dask", 12,
                          workers=2)  # fmt: skip
    inline = run_experiment(SPACE, strategy(), TableEvaluator(TABLE), tmp_path / "inline", 12,
                            workers=0, window=2)  # fmt: skip
    assert dask.results["window"] == 2  # one trial per worker at a time
    assert [r.architecture for r in dask.records] == [r.architecture for r in inline.records]
    assert all(r.status == "ok" and r.worker.startswith("tcp://127.0.0.1:") for r in dask.records)
    pids = {r.scores["pid"] for r in dask.records}
    assert len(pids) == 2 and os.getpid() not in pids  # both workers, not the driver
    assert {r.scores["loads"] for r in dask.records} == {1}  # the table loaded once per worker
    assert dask.best.trial == inline.best.trial
    assert json.loads((tmp_path / "dask" / "results.json").read_text())["evaluated"] == 12


def test_a_worker_killed_mid_trial_is_retried(cluster, tmp_path):
    cluster, _ = cluster
    pid_file = tmp_path / "victim.pid"

    def killer():
        for _ in range(1200):  # at most 60 s
            if pid_file.exists() and pid_file.read_text():
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
                return
            time.sleep(0.05)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    res = run_experiment(SPACE, RandomTrials(SPACE, 2), HangingTable(TABLE, 3, str(tmp_path)),
                         tmp_path / "out", 8, scheduler=cluster.scheduler_address,
                         window=2)  # fmt: skip
    thread.join(5)
    assert pid_file.exists()
    victim = res.records[3]
    assert victim.status == "ok" and victim.attempts == 2
    assert victim.pid != int(pid_file.read_text())  # the retry ran in another process
    assert all(r.status == "ok" and r.attempts == 1 for r in res.records if r.trial != 3)
    logged = [r.trial for r in Journal(tmp_path / "out" / "trials.jsonl").read()]
    lines = (tmp_path / "out" / "trials.jsonl").read_text().splitlines()
    assert sorted(logged) == list(range(8)) and len(lines) == 8  # every trial exactly once


def test_a_trial_that_always_kills_its_worker_is_marked_killed(cluster, tmp_path):
    cluster, _ = cluster
    res = run_experiment(SPACE, RandomTrials(SPACE, 3), DyingTable(TABLE, 1), tmp_path, 5,
                         scheduler=cluster.scheduler_address, window=2, retries=1)  # fmt: skip
    dead = res.records[1]
    assert dead.status == "killed" and dead.attempts == 2 and dead.score is None
    assert "KilledWorker" in dead.error
    assert [r.status for r in res.records] == ["ok", "killed", "ok", "ok", "ok"]
    assert res.results["killed"] == 1


def test_a_killed_driver_is_resumed(tmp_path):
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "tests.trials.driver_job", str(out)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    journal = out / "trials.jsonl"
    started = set()
    try:
        for _ in range(2400):  # at most 120 s
            started.update(p.pid for p in psutil.Process(proc.pid).children(recursive=True))
            if journal.exists() and len(journal.read_text().splitlines()) >= 5:
                break
            assert proc.poll() is None, "the driver stopped by itself"
            time.sleep(0.05)
        else:
            pytest.fail("the driver recorded no trial in 120 s")
        started.update(p.pid for p in psutil.Process(proc.pid).children(recursive=True))
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        kill_processes(started)  # the killed driver's worker processes: ours to end, by their ids
    before = len(Journal(journal).read())
    assert 5 <= before < driver_job.BUDGET
    driver_job.main(str(out), workers=0, delay=0.0, resume=True)  # in this process
    res = run_experiment(SPACE, driver_job.strategy(), TableEvaluator(TABLE), tmp_path / "ref",
                         driver_job.BUDGET, workers=0, window=driver_job.WINDOW)  # fmt: skip
    resumed = Journal(journal).read()
    assert sorted(r.trial for r in resumed) == list(range(driver_job.BUDGET))
    by_trial = {r.trial: r.architecture for r in resumed}
    assert [by_trial[k] for k in range(driver_job.BUDGET)] == [r.architecture for r in res.records]


def test_a_dying_trial_takes_no_queued_trial_with_it(tmp_path):
    """One worker, two trials in flight: the second waits in the driver, not on the worker that
    the first one kills (twice), so it is never lost with it."""
    res = run_experiment(SPACE, RandomTrials(SPACE, 4), DyingTable(TABLE, 0), tmp_path, 4,
                         workers=1, window=2, retries=1)  # fmt: skip
    assert res.records[0].status == "killed" and res.records[0].attempts == 2
    assert [(r.status, r.attempts) for r in res.records[1:]] == [("ok", 1)] * 3
