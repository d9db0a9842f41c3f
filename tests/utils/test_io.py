"""Atomic writes: the file appears whole or not at all, with the mode ``open(path, "w")`` gives
(the umask's for a new file, the old file's when it replaces one), never mkstemp's 0600."""

from __future__ import annotations

import builtins
import os
import stat
from pathlib import Path

import pytest

from nnabla_nas.genotype import Genotype, save_genotype
from nnabla_nas.module import Linear
from nnabla_nas.utils.io import atomic_path, atomic_write_json, atomic_write_text, current_umask


@pytest.fixture(params=[0o022, 0o077], ids=["umask022", "umask077"])
def umask(request):
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_new_files_get_the_umask_mode(umask, tmp_path):
    expected = 0o666 & ~umask  # 0o644, 0o600
    atomic_write_text(tmp_path / "a.txt", "a")
    atomic_write_json(tmp_path / "results.json", {"x": 1})
    Linear(2, 2).save_parameters(tmp_path / "weights.h5")
    save_genotype(tmp_path / "arch.h5", Genotype("mobilenet", {"blocks/0": "MB3 3x3"}))
    (tmp_path / "plain.txt").write_text("reference: what open() gives")
    assert _mode(tmp_path / "plain.txt") == expected
    for name in ("a.txt", "results.json", "weights.h5", "arch.h5"):
        assert _mode(tmp_path / name) == expected, name
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a.txt", "arch.h5", "plain.txt", "results.json", "weights.h5"
    ]  # fmt: skip


def test_a_replaced_file_keeps_its_mode(umask, tmp_path):
    path = tmp_path / "config.json"
    path.write_text("{}")
    os.chmod(path, 0o640)
    atomic_write_json(path, {"epoch": 2})
    assert _mode(path) == 0o640 and path.read_text() == '{\n  "epoch": 2\n}\n'


def test_the_umask_is_read_without_proc_too(umask, monkeypatch):
    assert current_umask() == umask
    real_open = builtins.open

    def no_proc(file, *args, **kwargs):
        if str(file).startswith("/proc/"):
            raise OSError("no /proc here")
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", no_proc)
    assert current_umask() == umask
    assert current_umask() == umask  # and it was left as it was


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "arch.h5"
    path.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_path(path) as tmp:
        Path(tmp).write_bytes(b"half")
        raise RuntimeError("disk full")
    assert path.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["arch.h5"]
