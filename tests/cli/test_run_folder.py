"""The output folder of a run on the command line (issue 17, items 7 and 11): a refused
``--resume`` writes nothing (not even log.txt) and says in one line what is wrong; a folder in
use by another process is refused with the holder's pid; a deleted folder is reported."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from nnabla_nas.cli import main
from nnabla_nas.data.mnist import load_embedded
from nnabla_nas.errors import OutputError
from nnabla_nas.utils.lock import LOCK_FILE, held_lock, lock_folder
from tests.conftest import tiny_mnist_config, write_json
from tests.data.conftest import idx_bytes

FIXED = tiny_mnist_config(fixed=True, epoch=2, batch_size_valid=100, mini_batch_valid=100)


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """A finished 2-epoch Trainer run on 64 digits (copied by each test that changes it)."""
    root = tmp_path_factory.mktemp("finished")
    x, y = load_embedded()
    for name, part in (("train", slice(0, 64)), ("t10k", slice(4000, 4100))):
        (root / f"{name}-images-idx3-ubyte").write_bytes(idx_bytes(x[part, 0]))
        (root / f"{name}-labels-idx1-ubyte").write_bytes(idx_bytes(y[part].astype(np.uint8)))
    FIXED["data_dir"] = str(root)
    exp = write_json(root / "exp.json", FIXED)
    assert main(["-f", str(exp), "-a", "Trainer", "-o", str(root / "run")]) == 0
    return root / "run"


def _copy(finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*")
            if p.is_file()}  # fmt: skip


def _refused(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error:"), err
    return err


def test_a_refused_resume_writes_nothing(finished, tmp_path, capsys):
    out = _copy(finished, tmp_path)
    before = _snapshot(out)
    err = _refused(capsys, ["--resume", "-o", str(out), "--set", "epoch=1"])
    assert "epoch must be at least 2" in err and "ckpt-" in err
    assert _snapshot(out) == before  # log.txt included


@pytest.mark.parametrize(
    "damage, needle",
    [
        (lambda s: s.pop("runner"), "no 'runner' object"),
        (lambda s: s["runner"].pop("iteration"), "'runner.iteration' is missing or malformed"),
        (lambda s: s["runner"].update(epoch="two"), "'runner.epoch' is missing or malformed"),
    ],
    ids=["no runner", "no iteration", "epoch a string"],
)
def test_a_damaged_checkpoint_state_is_one_line_naming_the_file(finished, tmp_path, capsys,
                                                                damage, needle):  # fmt: skip
    out = _copy(finished, tmp_path)
    pointer = json.loads((out / "checkpoint" / "latest.json").read_text())
    state = out / "checkpoint" / pointer["name"] / "state.json"
    doc = json.loads(state.read_text())
    damage(doc["state"])
    state.write_text(json.dumps(doc))
    before = _snapshot(out)
    err = _refused(capsys, ["--resume", "-o", str(out), "--set", "epoch=3"])
    assert f"cannot read checkpoint file {state}: {needle}" in err and "--resume" in err
    assert "Traceback" not in err and _snapshot(out) == before


def test_a_damaged_state_json_that_is_not_json(finished, tmp_path, capsys):
    out = _copy(finished, tmp_path)
    pointer = json.loads((out / "checkpoint" / "latest.json").read_text())
    state = out / "checkpoint" / pointer["name"] / "state.json"
    state.write_text('{"format": 1, "state": {"runner": ')
    err = _refused(capsys, ["--resume", "-o", str(out), "--set", "epoch=3"])
    assert f"cannot read checkpoint file {state}" in err


def test_resume_with_another_experiment_says_what_differs(finished, tmp_path, capsys):
    out = _copy(finished, tmp_path)
    other = write_json(tmp_path / "other.json", {**FIXED, "batch_size_train": 16,
                                                  "mini_batch_train": 16})  # fmt: skip
    err = _refused(capsys, ["--resume", "-o", str(out), "-f", str(other)])
    assert "differs from the one the run started with" in err and "batch_size_train" in err
    assert "no algorithm" not in err


@pytest.mark.parametrize(
    "text, needle",
    [("", "is not valid JSON"), ("{}", "is empty"), ('{"epoch": 1}', "names no algorithm")],
    ids=["empty file", "empty object", "no algorithm"],
)
def test_a_damaged_saved_config_is_named(finished, tmp_path, capsys, text, needle):
    out = _copy(finished, tmp_path)
    (out / "config.json").write_text(text)
    before = _snapshot(out)
    err = _refused(capsys, ["--resume", "-o", str(out)])
    assert f"{out / 'config.json'}" in err and needle in err and "-a:" not in err
    assert _snapshot(out) == before


HOLD = """
import fcntl, os, sys, time
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)
fcntl.flock(fd, fcntl.LOCK_EX)
os.write(fd, f"{os.getpid()} otherhost\\n".encode())
print("held", flush=True)
time.sleep(120)
"""


@pytest.fixture
def held_by_another_process(tmp_path):
    """Locks a folder from another process (as a run going on does); yields (folder, pid)."""
    folder = tmp_path / "busy"
    folder.mkdir()
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(folder / LOCK_FILE)],
                            stdout=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert proc.stdout.readline().strip() == "held"
        yield folder, proc.pid
    finally:
        proc.kill()
        proc.wait()


def test_a_folder_in_use_is_refused_with_the_holders_pid(finished, tmp_path, capsys,
                                                         held_by_another_process):  # fmt: skip
    folder, pid = held_by_another_process
    for item in finished.iterdir():
        if item.name == LOCK_FILE:
            continue
        if item.is_dir():
            shutil.copytree(item, folder / item.name)
        else:
            shutil.copy(item, folder / item.name)
    before = _snapshot(folder)
    exp = write_json(tmp_path / "exp.json", FIXED)
    for argv in (["--resume", "-o", str(folder), "--set", "epoch=3"],
                 ["-f", str(exp), "-a", "Trainer", "-o", str(folder), "--overwrite"]):  # fmt: skip
        err = _refused(capsys, argv)
        expected = f"{folder} is in use by another run or resume (pid {pid} on host otherhost"
        assert expected in err, err
        assert _snapshot(folder) == before  # --overwrite removed nothing


def test_the_lock_ends_with_its_holder(tmp_path):
    folder = tmp_path / "free"
    folder.mkdir()
    proc = subprocess.run([sys.executable, "-c", HOLD.replace("time.sleep(120)", ""),
                           str(folder / LOCK_FILE)], timeout=60)  # fmt: skip
    assert proc.returncode == 0 and (folder / LOCK_FILE).is_file()  # a stale file is left
    with lock_folder(folder) as lock:  # ...which blocks nothing
        assert held_lock(folder) is lock and lock_folder(folder) is lock  # re-entrant
        lock.release()
        assert held_lock(folder) is lock
    assert held_lock(folder) is None


def test_a_deleted_output_folder_is_reported(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    with lock_folder(folder) as lock:
        lock.check()
        shutil.rmtree(folder)
        folder.mkdir()  # (as a run's next write would re-create it)
        with pytest.raises(OutputError, match="was deleted or moved while the run was going"):
            lock.check()
