"""Faults: NaN/Inf losses, full disks and unwritable folders, refused resumes and output folders.

The runs are in-process (``nnabla_nas.cli.main``) on the tiny 8x8 digits; a fault is provoked
after the first checkpoint and the files written before it are compared byte for byte with a
snapshot taken right after that checkpoint.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import threading
import types
from pathlib import Path

import pytest
from resume_runs import assert_same_run, experiment, write_mnist_idx

from nnabla_nas.cli import main
from nnabla_nas.runner import checkpoint as checkpoint_module
from nnabla_nas.runner import faults as runner_module
from nnabla_nas.utils import io as io_module


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_mnist_idx(tmp_path_factory.mktemp("digits"))


def _args(tmp: Path, kind: str, data_dir: Path, out: Path, **overrides) -> list[str]:
    algorithm, cfg = experiment(kind, data_dir, **overrides)
    path = tmp / f"{out.name}.json"
    path.write_text(json.dumps(cfg))
    return ["-f", str(path), "-a", algorithm, "-o", str(out)]


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
    tmp = tmp_path_factory.mktemp("ref")
    assert main(_args(tmp, "gradient", data_dir, tmp / "run")) == 0
    return tmp / "run"


def _snapshot(out: Path) -> dict[str, bytes]:
    """Every file of ``out`` but the log and the TensorBoard events (they keep growing)."""
    return {
        str(p.relative_to(out)): p.read_bytes()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != "log.txt" and "tensorboard" not in p.parts
    }


class _AfterFirstCheckpoint:
    """Snapshots the output folder when the first checkpoint is complete."""

    def __init__(self, monkeypatch, out: Path) -> None:
        self.files: dict[str, bytes] | None = None
        save = checkpoint_module.CheckpointStore.save

        def patched(store, *args, **kwargs):
            path = save(store, *args, **kwargs)
            if self.files is None:
                self.files = _snapshot(out)
                self.on_first()
            return path

        monkeypatch.setattr(checkpoint_module.CheckpointStore, "save", patched)

    def on_first(self) -> None:
        pass


def test_nan_loss_stops_with_the_step_and_the_last_good_checkpoint(
    tmp_path, data_dir, monkeypatch, capsys
):
    # Warm-up at a sane rate, then an absurd one: the second epoch's first step explodes.
    out = tmp_path / "run"
    _, cfg = experiment("gradient", data_dir)
    optimizer = dict(cfg["optimizer"])
    optimizer["warmup"] = optimizer["train"]
    optimizer["train"] = {"solver": {"name": "Sgd", "lr": 1e30}}
    snap = _AfterFirstCheckpoint(monkeypatch, out)
    code = main(_args(tmp_path, "gradient", data_dir, out, optimizer=optimizer))
    err = capsys.readouterr().err
    assert code == 1
    assert re.search(r"loss became (nan|inf|-inf) at iteration 6 \(epoch 2, step 1\)", err), err
    assert f"the last good checkpoint is {out}/checkpoint/ckpt-00000005-0001" in err
    assert "(after epoch 1, iteration 5)" in err and "Traceback" not in err
    assert snap.files is not None and _snapshot(out) == snap.files  # nothing written after
    assert "arch.h5" in snap.files  # (the epoch-1 genotype is among the intact files)
    assert "loss became" in (out / "log.txt").read_text()


@pytest.mark.parametrize(
    "code, hint",
    [(errno.ENOSPC, "the disk is full"), (errno.EROFS, "read-only file system")],
)
def test_failed_write_keeps_the_last_good_files_and_resumes(
    tmp_path, data_dir, reference, monkeypatch, capsys, code, hint
):
    """Every atomic write after the first checkpoint fails (the rename, as when the disk fills
    up or the folder becomes read-only): a clear error, the earlier files intact, and once the
    cause is gone --resume finishes the run exactly."""
    out = tmp_path / "run"
    failing = types.SimpleNamespace(
        **{k: getattr(os, k) for k in dir(os) if not k.startswith("__")}
    )

    def replace(src, dst):
        raise OSError(code, os.strerror(code), str(src))  # the temporary file's name

    snap = _AfterFirstCheckpoint(monkeypatch, out)
    snap.on_first = lambda: monkeypatch.setattr(io_module, "os", failing)
    failing.replace = replace
    rc = main(_args(tmp_path, "gradient", data_dir, out))
    err = capsys.readouterr().err
    assert rc == 1, err
    assert f"writing {out}/arch.h5 failed at iteration 10 ({os.strerror(code)})" in err
    assert hint in err and "the files written before are intact" in err
    assert "ckpt-00000005-0001" in err
    assert err.strip().splitlines()[-1] == f"resume with: nnabla-nas --resume -o {out}"
    assert _snapshot(out) == snap.files
    assert not list(out.rglob(".*.tmp*"))  # no temporary file left behind

    monkeypatch.setattr(io_module, "os", os)  # space freed
    assert main(["--resume", "-o", str(out)]) == 0
    assert_same_run(out, reference)


def test_too_little_free_space_is_refused_at_start(tmp_path, data_dir, monkeypatch, capsys):
    usage = types.SimpleNamespace(disk_usage=lambda path: types.SimpleNamespace(free=1000))
    monkeypatch.setattr(runner_module, "shutil", usage)
    out = tmp_path / "run"
    assert main(_args(tmp_path, "gradient", data_dir, out)) == 1
    err = capsys.readouterr().err
    assert f"the disk of {out} has 0.0 MB free" in err and "need about" in err
    assert not (out / "weights.h5").exists() and not (out / "checkpoint" / "latest.json").exists()


def test_unwritable_output_folder_is_refused_at_start(tmp_path, data_dir, capsys):
    # (root ignores permission bits: the folder's path runs through a regular file instead)
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(_args(tmp_path, "gradient", data_dir, blocker / "run")) == 2
    err = capsys.readouterr().err
    assert f"-o: cannot write to output folder {blocker / 'run'}" in err
    assert main(_args(tmp_path, "gradient", data_dir, blocker)) == 2
    assert f"{blocker} exists and is not a folder" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# What --resume and a fresh run accept
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def finished(tmp_path_factory, data_dir):
    """A finished one-epoch Trainer run (copied by each test)."""
    tmp = tmp_path_factory.mktemp("finished")
    args = _args(tmp, "trainer", data_dir, tmp / "run", epoch=1)
    assert main(args) == 0
    return tmp / "run", args


def _copy(finished, tmp_path) -> tuple[Path, list[str]]:
    src, args = finished
    out = tmp_path / "run"
    shutil.copytree(src, out)
    return out, [*args[:-1], str(out)]


def test_resume_refuses_another_configuration(finished, tmp_path, capsys):
    out, _ = _copy(finished, tmp_path)
    before = _snapshot(out)
    sets = ["--set", "optimizer.train.solver.lr=0.1", "--set", "seed=3"]
    assert main(["--resume", "-o", str(out), *sets]) == 2
    err = capsys.readouterr().err
    assert "differs from the one the run started with" in err and "in 2 key(s)" in err
    assert "optimizer.train.solver.lr: 0.05 in the run, 0.1 now" in err
    assert "seed: 0 in the run, 3 now" in err
    assert "only epoch, print_frequency, checkpoint_every, data_dir, device_id may change" in err
    assert _snapshot(out) == before  # refused before touching anything


def test_resume_with_the_original_command_line_is_accepted(finished, tmp_path):
    out, args = _copy(finished, tmp_path)
    assert main([*args, "--resume"]) == 0  # -f given again, same values: no difference
    assert json.loads((out / "results.json").read_text())["steps"] == 8


def test_resume_extends_a_finished_run(finished, tmp_path, capsys):
    out, _ = _copy(finished, tmp_path)
    assert main(["--resume", "-o", str(out), "--set", "epoch=2"]) == 0
    res = json.loads((out / "results.json").read_text())
    assert res["epochs"] == 2 and res["steps"] == 16 and len(res["history"]) == 2
    assert json.loads((out / "config.json").read_text())["epoch"] == 2
    assert "resuming the run in" in (out / "log.txt").read_text()
    assert "with changed epoch" in (out / "log.txt").read_text()
    # ... but not shortened below what is done
    capsys.readouterr()
    assert main(["--resume", "-o", str(out), "--set", "epoch=1"]) == 2
    assert "epoch must be at least 2 to resume it" in capsys.readouterr().err


def test_resume_needs_a_run(tmp_path, capsys):
    assert main(["--resume", "-o", str(tmp_path / "empty")]) == 2
    assert "nothing to resume in" in capsys.readouterr().err
    assert main(["--resume", "--overwrite", "-o", str(tmp_path)]) == 2
    assert "give one of them" in capsys.readouterr().err
    assert main(["-o", str(tmp_path / "x"), "-a", "Trainer"]) == 2
    assert "-f: the experiment file is required" in capsys.readouterr().err


def test_fresh_run_into_a_previous_run_is_refused(tmp_path, data_dir, capsys):
    out = tmp_path / "run"
    stale = out / "checkpoint" / "ckpt-00000099-0001"
    stale.mkdir(parents=True)  # a checkpoint, but no config.json
    args = _args(tmp_path, "trainer", data_dir, out, epoch=1)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert f"-o: {out} holds a previous run (checkpoint)" in err
    assert "--resume" in err and "--overwrite" in err
    assert stale.is_dir()
    assert main([*args, "--overwrite"]) == 0
    assert not stale.exists()  # the old run's checkpoints are gone
    assert json.loads((out / "checkpoint" / "latest.json").read_text())["iteration"] == 8


def test_resume_refuses_an_unwritable_checkpoint_folder(finished, tmp_path, capsys):
    out, _ = _copy(finished, tmp_path)
    shutil.rmtree(out / "checkpoint")
    (out / "checkpoint").write_text("not a folder")
    assert main(["--resume", "-o", str(out)]) == 2
    assert f"cannot write to output folder {out}" in capsys.readouterr().err


# ---------------------------------------------------------------------------------------------
# The checkpoint written in the background (nnabla_nas.runner.background)
# ---------------------------------------------------------------------------------------------


def test_checkpoint_is_written_during_the_next_step_and_before_its_update(
    tmp_path, data_dir, reference, monkeypatch
):
    """The first checkpoint's files are written while the next step's passes run (the write
    waits here until that step has started: written in place, it would time out), and no
    update changes a parameter before they are complete."""
    from nnabla_nas.optimizer import Optimizer
    from nnabla_nas.runner import background
    from nnabla_nas.runner.searcher.proxyless import ProxylessNasSearcher

    monkeypatch.setattr(background.os, "sched_getaffinity", lambda pid: {0, 1})  # a spare core
    events: list[str] = []
    stepped, updated = threading.Event(), threading.Event()
    save, train_step, update = (checkpoint_module.CheckpointStore.save,
                                ProxylessNasSearcher.train_step, Optimizer.update)  # fmt: skip

    def patched_save(store, *args, **kwargs):
        first = "save" not in events
        events.append("save")
        if first:
            assert threading.current_thread() is not threading.main_thread()
            assert stepped.wait(60), "the next step did not start while the checkpoint was written"
            updated.wait(2)  # an update that did not wait for the files would come now
        path = save(store, *args, **kwargs)
        events.append("saved")
        return path

    def patched_train_step(self, *args, **kwargs):
        if "save" in events:
            events.append("step")
            stepped.set()
        return train_step(self, *args, **kwargs)

    def patched_update(self, *args, **kwargs):
        update(self, *args, **kwargs)  # (waits for the write first)
        if "save" in events:
            events.append("update")
            updated.set()

    monkeypatch.setattr(checkpoint_module.CheckpointStore, "save", patched_save)
    monkeypatch.setattr(ProxylessNasSearcher, "train_step", patched_train_step)
    monkeypatch.setattr(Optimizer, "update", patched_update)
    out = tmp_path / "run"
    assert main(_args(tmp_path, "gradient", data_dir, out)) == 0
    assert events[:4] == ["save", "step", "saved", "update"]
    assert events.count("save") == events.count("saved") == 3  # (warm-up + 2 epochs)
    assert_same_run(out, reference)


def test_failed_background_checkpoint_names_its_file_and_resumes(
    tmp_path, data_dir, reference, monkeypatch, capsys
):
    """The second checkpoint's write fails with a full disk: the error names that file, the
    first checkpoint stays the latest, nothing after it is written, and --resume finishes."""
    out = tmp_path / "run"
    write_arrays = checkpoint_module.CheckpointStore._write_arrays
    calls = []

    def failing(store, path, arrays):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        write_arrays(store, path, arrays)

    monkeypatch.setattr(checkpoint_module.CheckpointStore, "_write_arrays", failing)
    rc = main(_args(tmp_path, "gradient", data_dir, out))
    err = capsys.readouterr().err
    assert rc == 1, err
    assert f"writing {calls[1]} failed at iteration 10 (No space left on device)" in err
    assert f"the last good checkpoint is {out}/checkpoint/ckpt-00000005-0001" in err
    assert json.loads((out / "checkpoint" / "latest.json").read_text())["name"] == (
        "ckpt-00000005-0001"
    )
    assert not (out / "results.json").exists() and not (out / "weights.h5").exists()

    monkeypatch.setattr(checkpoint_module.CheckpointStore, "_write_arrays", write_arrays)
    assert main(["--resume", "-o", str(out)]) == 0
    assert_same_run(out, reference)


def test_checkpoint_is_written_in_place_without_a_spare_core(
    tmp_path, data_dir, reference, monkeypatch
):
    """As many processes as cores: the files are written by the loop's thread, and the run is
    the same."""
    from nnabla_nas.runner import background

    threads = []
    save = checkpoint_module.CheckpointStore.save

    def patched(store, *args, **kwargs):
        threads.append(threading.current_thread())
        return save(store, *args, **kwargs)

    monkeypatch.setattr(background.os, "sched_getaffinity", lambda pid: {0})
    monkeypatch.setattr(checkpoint_module.CheckpointStore, "save", patched)
    out = tmp_path / "run"
    assert main(_args(tmp_path, "gradient", data_dir, out)) == 0
    assert threads == [threading.main_thread()] * 3
    assert_same_run(out, reference)


def test_failed_checkpoint_of_a_signal_is_the_error(tmp_path, data_dir, monkeypatch, capsys):
    """SIGINT in epoch 2: the checkpoint of that position fails with a full disk. The run
    reports that write (exit code 1), not a stop with a checkpoint written."""
    import signal

    from nnabla_nas.optimizer import Optimizer

    out = tmp_path / "run"
    write_arrays, update = checkpoint_module.CheckpointStore._write_arrays, Optimizer.update
    calls, updates = [], []

    def failing(store, path, arrays):
        calls.append(path)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))
        write_arrays(store, path, arrays)

    def patched_update(self, *args, **kwargs):
        update(self, *args, **kwargs)
        if self.key in ("optimizer.train", "optimizer.warmup"):
            updates.append(1)
            if len(updates) == 7:
                os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(checkpoint_module.CheckpointStore, "_write_arrays", failing)
    monkeypatch.setattr(Optimizer, "update", patched_update)
    rc = main(_args(tmp_path, "gradient", data_dir, out))
    err = capsys.readouterr().err
    assert rc == 1, err
    assert f"writing {calls[1]} failed at iteration 7 (No space left on device)" in err
    assert f"the last good checkpoint is {out}/checkpoint/ckpt-00000005-0001" in err
    assert "stopped by SIGINT" not in err
