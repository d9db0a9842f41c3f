"""Faults around the exports (issue 17, items 8 to 10): non-finite values never replace a good
``arch.h5``; a real full disk (a small tmpfs) names the file without a traceback and resumes
exactly; SIGTERM during the final export stops like elsewhere, leaving no temporary file."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

import h5py
import pytest
from resume_runs import assert_same_run, experiment, write_mnist_idx

from nnabla_nas.cli import main
from nnabla_nas.runner import checkpoint as checkpoint_module
from nnabla_nas.runner.loop import Loop


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_mnist_idx(tmp_path_factory.mktemp("digits"))


@pytest.fixture(scope="module")
def reference(tmp_path_factory, data_dir):
    tmp = tmp_path_factory.mktemp("ref")
    assert main(_args(tmp, data_dir, tmp / "run")) == 0
    return tmp / "run"


def _args(tmp: Path, data_dir: Path, out: Path, **overrides) -> list[str]:
    algorithm, cfg = experiment("gradient", data_dir, **overrides)
    path = tmp / f"{out.name}-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps(cfg))
    return ["-f", str(path), "-a", algorithm, "-o", str(out)]


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name != "log.txt" and "tensorboard" not in p.parts}  # fmt: skip


def _after_first_checkpoint(monkeypatch, action) -> dict:
    """Calls ``action()`` once the first checkpoint is complete; returns where it records."""
    seen: dict = {}
    save = checkpoint_module.CheckpointStore.save

    def patched(store, *args, **kwargs):
        path = save(store, *args, **kwargs)
        if not seen:
            seen["files"] = _files(store.folder.parent)
            action()
        return path

    monkeypatch.setattr(checkpoint_module.CheckpointStore, "save", patched)
    return seen


def _temporaries(out: Path) -> list[Path]:
    return [p for p in out.rglob(".*") if ".tmp" in p.name]


def test_non_finite_architecture_values_never_replace_the_exports(
    tmp_path, data_dir, monkeypatch, capsys
):
    # Warm-up epoch 1 exports arch.h5; in epoch 2 an architecture rate of 1e38 sends the
    # logits to +-inf: the run stops before epoch 2's export.
    _, cfg = experiment("gradient", data_dir)
    optimizer = dict(cfg["optimizer"])
    optimizer["valid"] = {"solver": {"name": "Adam", "alpha": 1e38}}
    out = tmp_path / "run"
    seen = _after_first_checkpoint(monkeypatch, lambda: None)
    code = main(_args(tmp_path, data_dir, out, optimizer=optimizer))
    err = capsys.readouterr().err
    assert code == 1, err
    assert "holds NaN or Inf at iteration" in err and "Traceback" not in err
    assert "arch.h5" in seen["files"] and _files(out) == seen["files"]  # arch.h5 untouched


@pytest.fixture
def small_disk(tmp_path):
    """A real 16 MB tmpfs (root and mount(2) needed: skipped otherwise)."""
    folder = tmp_path / "disk"
    folder.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(folder)],
                          capture_output=True, text=True)  # fmt: skip
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip() or proc.returncode})")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def _fill(folder: Path, keep: int) -> Path:
    """Fills the disk of ``folder`` but ``keep`` bytes."""
    filler = folder / "filler"
    st = os.statvfs(folder)
    size = st.f_bavail * st.f_frsize - keep
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT)
    try:
        os.posix_fallocate(fd, 0, size)
    finally:
        os.close(fd)
    return filler


@pytest.mark.parametrize("keep", [4096, 64 * 1024], ids=["4KB-left", "64KB-left"])
def test_a_real_full_disk_names_the_file_and_resumes_exactly(
    small_disk, tmp_path, data_dir, reference, monkeypatch, capsys, keep
):
    out = small_disk / "run"
    filler: list[Path] = []
    _after_first_checkpoint(monkeypatch, lambda: filler.append(_fill(small_disk, keep)))
    code = main(_args(tmp_path, data_dir, out))
    err = capsys.readouterr().err
    assert code == 1, err
    assert filler and "No space left on device" in err and "the disk is full" in err, err
    assert f"writing {out}/" in err and "the files written before are intact" in err
    assert "Traceback" not in err and "Exception" not in err, err
    assert err.strip().splitlines()[-1] == f"resume with: nnabla-nas --resume -o {out}"
    assert not _temporaries(out)
    for name in _files(out):  # every file there is whole (the last good one or a newer one)
        if name.endswith(".h5"):
            with h5py.File(out / name, "r") as f:
                assert len(f.keys()) > 0, name
        elif name.endswith(".json"):
            json.loads((out / name).read_text())
    filler[0].unlink()  # space freed
    monkeypatch.undo()
    assert main(["--resume", "-o", str(out)]) == 0
    assert_same_run(out, reference)


def test_sigterm_during_the_final_export_stops_cleanly(
    tmp_path, data_dir, reference, monkeypatch, capsys
):
    save = Loop.save_weights

    def interrupted_save(loop):
        os.kill(os.getpid(), signal.SIGTERM)  # (delivered now: the handler sets the stop flag)
        save(loop)

    monkeypatch.setattr(Loop, "save_weights", interrupted_save)
    out = tmp_path / "run"
    code = main(_args(tmp_path, data_dir, out))
    err = capsys.readouterr().err
    assert code == 143, err
    assert err.strip().splitlines()[-1] == f"resume with: nnabla-nas --resume -o {out}"
    assert "Traceback" not in err and not _temporaries(out)
    assert not (out / "results.json").exists()
    monkeypatch.undo()
    assert main(["--resume", "-o", str(out)]) == 0
    assert_same_run(out, reference)


class _FullDisk:
    def write(self, text):
        raise OSError(28, "No space left on device")

    def flush(self):
        raise OSError(28, "No space left on device")


def test_log_lines_and_event_threads_failing_on_a_full_disk_print_no_traceback(
    tmp_path, capsys, monkeypatch
):
    import logging
    import threading

    from nnabla_nas.runner import faults as faults_module
    from nnabla_nas.runner.faults import LogFile, quiet_event_threads

    handler = LogFile(tmp_path / "log.txt")
    handler.stream = _FullDisk()
    handler.emit(logging.LogRecord("nnabla_nas", logging.INFO, __file__, 1, "a line", (), None))
    quiet_event_threads()
    printed: list = []  # what the previous hook (Python's: a traceback) was given
    monkeypatch.setattr(faults_module, "_PREVIOUS_HOOK", [printed.append])
    # A thread of tensorboardX's writer failing to write (its class's module is tensorboardX's).
    writer_class = type("_AsyncWriterThread", (threading.Thread,), {"__module__": "tensorboardX.x"})

    def fail():
        raise OSError(28, "No space left on device")

    thread = writer_class(target=fail)
    thread.start()
    thread.join()
    assert capsys.readouterr().err == "" and printed == []
    other = threading.Thread(target=fail)  # another thread's failure is still printed
    other.start()
    other.join()
    assert len(printed) == 1 and isinstance(printed[0].exc_value, OSError)


def test_an_output_folder_deleted_mid_run_is_reported(tmp_path, data_dir, monkeypatch, capsys):
    import shutil

    out = tmp_path / "run"
    _after_first_checkpoint(monkeypatch, lambda: shutil.rmtree(out))
    code = main(_args(tmp_path, data_dir, out))
    err = capsys.readouterr().err
    assert code == 1, err
    assert f"the output folder {out} was deleted or moved while the run was going" in err
    assert "Traceback" not in err
