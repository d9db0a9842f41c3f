"""Multi-trial search through the command line: 2 Dask workers on the tiny MNIST with a worker
SIGKILLed mid-trial and the driver SIGKILLed then resumed (the result equals an uninterrupted
run), every socket on loopback, and bad input (exit 2 naming the key, nothing written)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import psutil
import pytest

from nnabla_nas.cli import main
from nnabla_nas.trials.journal import Journal
from tests.conftest import ROOT, write_json

from .processes import kill_processes
from .tiny_mnist import trials_config, write_tiny_mnist

LOOPBACK = {"127.0.0.1", "::1"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_tiny_mnist(tmp_path_factory.mktemp("mnist"))


def _tree(pid: int) -> set[int]:
    try:
        return {pid, *(p.pid for p in psutil.Process(pid).children(recursive=True))}
    except psutil.NoSuchProcess:
        return set()


def _listening(pids) -> set[str]:
    found = set()
    for pid in pids:
        try:
            connections = psutil.Process(pid).net_connections(kind="inet")
        except psutil.NoSuchProcess:
            continue
        found |= {c.laddr.ip for c in connections if c.status == psutil.CONN_LISTEN}
    return found


def _scores(out) -> dict[int, float]:
    return {r.trial: r.scores["valid_acc"] for r in Journal(out / "trials.jsonl").read()}


def test_two_workers_a_killed_worker_and_a_killed_then_resumed_driver(data_dir, tmp_path):
    cfg = trials_config(data_dir, budget=3, trial_epochs=2)
    cfg["trials"]["window"] = 2
    path = write_json(tmp_path / "trials.json", cfg)
    out = tmp_path / "out"
    command = [sys.executable, str(ROOT / "main.py"), "--search", "-a", "EvolutionSearcher",
               "-f", str(path), "-o", str(out), "--workers", "2"]  # fmt: skip
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    victim_folder = out / "trials" / "0001"
    started, listening, victim = set(), set(), None
    try:
        for _ in range(3600):  # at most 180 s
            started |= _tree(proc.pid)
            if (out / "trials").is_dir():  # the cluster is up: every socket it listens on
                listening |= _listening(started)
            if victim is None and (victim_folder / "checkpoint" / "latest.json").exists():
                victim = json.loads((victim_folder / "trial.json").read_text())["pid"]
                os.kill(victim, signal.SIGKILL)  # trial 1's worker, after its first epoch
            journal = out / "trials.jsonl"
            if victim and journal.exists() and len(journal.read_text().splitlines()) >= 2:
                break
            assert proc.poll() is None, "the driver stopped by itself"
            time.sleep(0.05)
        else:
            pytest.fail("no 2 trials recorded in 180 s")
        started |= _tree(proc.pid)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(30)
        kill_processes(started)  # the killed driver's cluster: ours to end, by their ids
    assert listening and listening <= LOOPBACK, listening
    before = Journal(out / "trials.jsonl").read()
    assert len(before) == 2
    assert main(["--resume", "-o", str(out), "--workers", "0"]) == 0
    ref = tmp_path / "ref"
    args = ["--search", "-a", "EvolutionSearcher", "-f", str(path), "-o", str(ref)]
    assert main([*args, "--workers", "0"]) == 0

    records = Journal(out / "trials.jsonl").read()
    lines = (out / "trials.jsonl").read_text().splitlines()
    assert sorted(r.trial for r in records) == [0, 1, 2] and len(lines) == 3  # each once
    killed = next(r for r in records if r.trial == 1)
    assert killed.status == "ok" and killed.attempts == 2 and killed.pid != victim
    assert "continues from its checkpoint" in (victim_folder / "log.txt").read_text()
    assert _scores(out) == _scores(ref)  # bit for bit the uninterrupted run
    results = json.loads((out / "results.json").read_text())
    reference = json.loads((ref / "results.json").read_text())
    assert results["best"]["trial"] == reference["best"]["trial"]
    assert 0.0 <= results["best"]["final"]["test_acc"] <= 1.0
    assert (out / "arch.h5").is_file() and (out / "arch.png").is_file()
    assert not any((out / "trials").glob("*/checkpoint"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize(
    "change, flags, key",
    [
        ({"trials": {"budget": 2, "evaluator": {"name": "table"}}}, [], "trials.evaluator.table"),
        ({"network.num_classes": 5}, [], "network.num_classes"),
        ({}, ["--scheduler", "tcp://127.0.0.1:{port}"], "--scheduler"),
        ({"trials.budget": 0}, [], "trials.budget"),
    ],
    ids=[
        "table-not-covering-the-space",
        "child-not-fitting-the-data",
        "unreachable-scheduler",
        "budget",
    ],  # fmt: skip
)
def test_bad_input_exits_2_naming_the_key_and_writes_nothing(
    data_dir, tmp_path, capsys, change, flags, key
):
    import dask
    import distributed  # noqa: F401 - its configuration, before it is changed here

    cfg = trials_config(data_dir, budget=2, trial_epochs=1)
    for name, value in change.items():
        section, _, sub = name.partition(".")
        if sub:
            cfg[section][sub] = value
        else:
            cfg[section] = value
    path = write_json(tmp_path / "trials.json", cfg)
    out = tmp_path / "out"
    flags = [f.format(port=_free_port()) for f in flags]
    with dask.config.set({"distributed.comm.timeouts.connect": "2s"}):
        code = main(["--search", "-a", "RandomTrials", "-f", str(path), "-o", str(out), *flags])
    assert code == 2
    assert key in capsys.readouterr().err
    assert not out.exists()


def test_trial_flags_and_section_are_refused_by_a_one_shot_algorithm(data_dir, tmp_path, capsys):
    cfg = trials_config(data_dir)
    path = write_json(tmp_path / "search.json", cfg)
    out = tmp_path / "out"
    assert main(["--search", "-a", "ProxylessNasSearcher", "-f", str(path), "-o", str(out)]) == 2
    assert "trials:" in capsys.readouterr().err
    del cfg["trials"]
    cfg["epoch"] = 1
    write_json(path, cfg)
    argv = ["--search", "-a", "ProxylessNasSearcher", "-f", str(path), "-o", str(out)]
    assert main([*argv, "--workers", "2"]) == 2
    assert "--workers" in capsys.readouterr().err and not out.exists()
