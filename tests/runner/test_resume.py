"""Kill-and-resume: a run killed by SIGKILL anywhere (or stopped by SIGINT/SIGTERM) and resumed
with ``--resume`` ends exactly as the uninterrupted run with the same seed.

Each run is a subprocess on the tiny 8x8 digits (one warm-up epoch for searchers, two epochs of
5 steps; 8 steps for the Trainer). Kill points (``crash.py``): ``update:N`` after the N-th weight
update (for searchers: before that iteration's architecture step); ``ckpt:N:STAGE`` inside the
N-th checkpoint write; ``export:N`` with arch.h5/weights.h5 half written.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import time

import pytest
from resume_runs import assert_same_run, log_lines, run, start, write_mnist_idx

from nnabla_nas.runner import ALGORITHMS
from tests.conftest import ROOT

HAS_DARTS = "DartsSearcher" in ALGORITHMS.names()


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_mnist_idx(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
    """The uninterrupted run of each kind (built on first use)."""
    done = {}

    def get(kind: str):
        if kind not in done:
            tmp = tmp_path_factory.mktemp(f"ref-{kind}")
            proc = start(tmp, kind, data_dir, tmp / "run")
            assert proc.returncode == 0, proc.stdout + proc.stderr
            done[kind] = tmp / "run"
        return done[kind]

    return get


CASES = [
    # (kind, kill point, options of the killed run)
    ("gradient", "update:3", ()),  # before the first checkpoint: starts again
    ("gradient", "update:8", ()),  # mid-iteration of epoch 2 (weight step done, arch not)
    ("gradient", "update:8", ("--set", "checkpoint_every=3")),  # resumes mid-epoch (step 1)
    ("gradient", "ckpt:2:arrays", ()),  # a checkpoint file half written
    ("gradient", "ckpt:3:after", ()),  # the last checkpoint written, the older not yet removed
    ("gradient", "export:3", ()),  # the last arch.h5 half written
    ("reinforce", "update:12", ()),
    ("reinforce", "ckpt:2:publish", ()),  # every file written, the pointer not yet switched
    ("trainer", "update:11", ()),
    ("trainer", "ckpt:2:publish", ()),
    ("trainer", "export:1", ("--set", "checkpoint_every=5")),  # resumes mid-epoch 1
    pytest.param("darts", "update:8", (), marks=pytest.mark.skipif(not HAS_DARTS, reason="")),
    pytest.param("darts", "ckpt:2:arrays", (), marks=pytest.mark.skipif(not HAS_DARTS, reason="")),
]


@pytest.mark.parametrize("kind, kill, extra", CASES)
def test_killed_run_resumes_exactly(tmp_path, data_dir, reference, kind, kill, extra):
    out = tmp_path / "run"
    proc = start(tmp_path, kind, data_dir, out, kill=kill, extra=extra)
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    assert not (out / "results.json").exists()

    proc = run(["--resume", "-o", out])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_same_run(out, reference(kind))
    log = (out / "log.txt").read_text()
    assert "resuming the run in" in log
    if kill == "update:3":
        assert "no checkpoint in" in log  # killed before the first one: starts again
    elif extra:
        assert "resumed from" in log and ", step " in log  # a mid-epoch checkpoint
    else:
        assert "resumed from" in log


@pytest.mark.parametrize(
    "sig, kill", [("SIGINT", "signal:8:SIGINT"), ("SIGTERM", "signal:5:SIGTERM")]
)
def test_signal_writes_a_checkpoint_and_says_how_to_resume(
    tmp_path, data_dir, reference, sig, kill
):
    out = tmp_path / "run"
    proc = start(tmp_path, "gradient", data_dir, out, kill=kill)
    code = 128 + getattr(signal, sig)
    assert proc.returncode == code, proc.stdout + proc.stderr
    n = int(kill.split(":")[1])
    info = json.loads((out / "checkpoint" / "latest.json").read_text())
    assert info["iteration"] == n  # the current step was finished, then checkpointed
    assert f"stopped by {sig}" in proc.stderr and info["name"] in proc.stderr
    hint = proc.stderr.strip().splitlines()[-1]
    assert hint == f"resume with: nnabla-nas --resume -o {out}"
    assert f"{sig} received" in (out / "log.txt").read_text()

    # The printed command, run as printed (the installed console script).
    env = dict(
        os.environ, PATH=f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"
    )
    cmd = shlex.split(hint.split(": ", 1)[1])
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_same_run(out, reference("gradient"))


def test_external_sigint_during_a_run(tmp_path, data_dir, reference):
    """SIGINT from outside, at whatever moment of epoch 1-2 it arrives."""
    from resume_runs import CRASH, experiment

    algorithm, cfg = experiment("gradient", data_dir)
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(cfg))
    out = tmp_path / "run"
    proc = subprocess.Popen(
        [sys.executable, str(CRASH), "none", "-f", path, "-a", algorithm, "-o", out],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    log = out / "log.txt"
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if log.exists() and "(warmup) step 2/5" in log.read_text():
            proc.send_signal(signal.SIGINT)
            break
        time.sleep(0.005)
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 130, stdout + stderr
    assert "resume with:" in stderr
    resumed = run(["--resume", "-o", out])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert_same_run(out, reference("gradient"))


def test_resumed_log_continues(tmp_path, data_dir, reference):
    """log.txt appends: the killed part, then the resumed part, whose lines are the reference's."""
    out = tmp_path / "run"
    start(tmp_path, "gradient", data_dir, out, kill="update:8")
    before = log_lines(out)
    assert run(["--resume", "-o", out]).returncode == 0
    after = log_lines(out)
    assert after[: len(before)] == before
    ref = log_lines(reference("gradient"))
    resumed = after[len(before) :]
    first = next(i for i, line in enumerate(resumed) if "(train) step" in line)
    # From the first step after the checkpoint on, the lines are the reference's.
    assert resumed[first:] == ref[ref.index(resumed[first]) :]


@pytest.mark.skipif(not HAS_DARTS, reason="no DARTS space")
def test_darts_retraining_with_drop_path_resumes_exactly(tmp_path, data_dir, reference):
    from resume_runs import experiment

    _, cfg = experiment("darts", data_dir, warmup=0, epoch=2)
    del cfg["searcher"]
    cfg["network"].update(genotype=str(reference("darts") / "arch.h5"), drop_path=0.3)
    path = tmp_path / "exp.json"
    path.write_text(json.dumps(cfg))
    ref, out = tmp_path / "ref", tmp_path / "run"
    assert run(["-f", path, "-a", "Trainer", "-o", ref]).returncode == 0
    proc = run(["-f", path, "-a", "Trainer", "-o", out], kill="update:12")
    assert proc.returncode == -signal.SIGKILL, proc.stdout + proc.stderr
    assert run(["--resume", "-o", out]).returncode == 0
    assert_same_run(out, ref)
