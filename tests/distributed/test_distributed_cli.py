"""``mpirun -n 2 python main.py ...`` end to end on tiny MNIST files: search, resume, retrain, and
the refusal of a batch that does not split across the processes."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

from nnabla_nas.data.mnist import load_embedded
from tests.conftest import ROOT, tiny_mnist_config, write_json
from tests.data.conftest import idx_bytes
from tests.distributed.launch import mpirun

MAIN = ROOT / "main.py"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """240 training and 100 test digits of the embedded subset as the four MNIST IDX files."""
    folder = tmp_path_factory.mktemp("mnist")
    x, y = load_embedded()
    parts = {"train": (x[:240], y[:240]), "t10k": (x[4000:4100], y[4000:4100])}
    for name, (images, labels) in parts.items():
        (folder / f"{name}-images-idx3-ubyte").write_bytes(idx_bytes(images[:, 0]))
        (folder / f"{name}-labels-idx1-ubyte").write_bytes(idx_bytes(labels.astype(np.uint8)))
    return folder


def search_config(data_dir, **overrides) -> dict:
    # 120 weight examples (3 steps of 32: 16 per process), 120 architecture examples
    # (batches of 40: 20 per process); REINFORCE's 2 samples evaluated one per process.
    cfg = tiny_mnist_config(epoch=2, batch_size_valid=40, mini_batch_valid=20,
                            data_dir=str(data_dir), print_frequency=1)  # fmt: skip
    cfg["searcher"] = {"estimator": "reinforce", "num_samples": 2}
    cfg.update(overrides)
    return cfg


def _ok(proc):
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    return proc


def _logits(path):
    out = {}

    def keep(name, item):
        if isinstance(item, h5py.Dataset):
            out[name] = item[()]

    with h5py.File(path, "r") as f:
        f.visititems(keep)
    return out


@pytest.fixture(scope="module")
def searched(tmp_path_factory, data_dir):
    """A 2-epoch search on 2 processes: (output folder, stdout)."""
    tmp = tmp_path_factory.mktemp("search")
    exp = write_json(tmp / "exp.json", search_config(data_dir))
    out = tmp / "out"
    proc = _ok(mpirun(2, [MAIN, "--search", "-f", exp, "-a", "ProxylessNasSearcher", "-o", out]))
    return out, proc.stdout


def test_search_on_two_processes_writes_each_file_once(searched):
    out, stdout = searched
    names = {p.name for p in out.iterdir()}
    expected = {".lock", "arch.h5", "checkpoint", "config.json", "log.txt", "results.json"}
    expected |= {"tensorboard", "weights.h5"} | ({"arch.png"} if shutil.which("dot") else set())
    assert names == expected
    events = [p.name for p in (out / "tensorboard").glob("events.out.tfevents.*")]
    assert len({name.split(".")[-2] for name in events}) == 1, events  # one process wrote them
    checkpoints = [p.name for p in (out / "checkpoint").iterdir() if p.is_dir()]
    iterations = [name.split("-")[1] for name in checkpoints]
    assert len(iterations) == len(set(iterations)), checkpoints  # no checkpoint written twice
    log = (out / "log.txt").read_text()
    assert log.count("epoch 2/2 done") == 1 and "[rank 1]" not in log
    assert "2 data-parallel processes (MpiCommunicator)" in log
    assert "each takes 16 examples of every batch" in log
    assert stdout.count("] finished: ") == 1  # the end-of-run summary; rank 1 logs nothing
    res = json.loads((out / "results.json").read_text())
    assert res["steps"] == 2 * 3 and len(res["history"]) == 2  # global batches of 32
    assert 0.0 <= res["final"]["valid_error"] <= 1.0
    final = res["final"]
    assert final["train_arch_reward"] == pytest.approx(1.0 - final["train_arch_error"])


def test_resume_on_two_processes_continues_the_run_exactly(searched, tmp_path, data_dir):
    full, _ = searched
    out = tmp_path / "out"
    exp = write_json(tmp_path / "exp.json", search_config(data_dir, epoch=1))
    _ok(mpirun(2, [MAIN, "--search", "-f", exp, "-a", "ProxylessNasSearcher", "-o", out]))
    assert json.loads((out / "results.json").read_text())["epochs"] == 1
    proc = _ok(mpirun(2, [MAIN, "--resume", "-o", out, "--set", "epoch=2"]))
    assert "resumed from" in proc.stdout
    a, b = _logits(full / "arch.h5"), _logits(out / "arch.h5")
    assert a.keys() == b.keys() and a
    for key in a:
        np.testing.assert_allclose(b[key], a[key], rtol=1e-6, atol=1e-7, err_msg=key)
    ra = json.loads((full / "results.json").read_text())
    rb = json.loads((out / "results.json").read_text())
    assert rb["steps"] == ra["steps"] == 6
    for ha, hb in zip(ra["history"], rb["history"]):
        assert hb["valid_error"] == pytest.approx(ha["valid_error"], abs=1e-6)
        assert hb["train_loss"] == pytest.approx(ha["train_loss"], rel=1e-5)


def test_retrain_the_searched_architecture_on_two_processes(searched, tmp_path, data_dir):
    arch = searched[0] / "arch.h5"
    cfg = tiny_mnist_config(fixed=True, epoch=1, batch_size_valid=50, mini_batch_valid=50,
                            data_dir=str(data_dir))  # fmt: skip
    cfg["network"].update(candidates=["MB3 3x3", "MB3 5x5"], skip_connect=True, genotype=str(arch))
    out = tmp_path / "train"
    exp = write_json(tmp_path / "train.json", cfg)
    _ok(mpirun(2, [MAIN, "-f", exp, "-a", "Trainer", "-o", out]))
    assert {p.name for p in out.iterdir()} == {
        ".lock",
        "checkpoint",
        "config.json",
        "log.txt",
        "results.json",
        "tensorboard",
        "weights.h5",
    }
    res = json.loads((out / "results.json").read_text())
    # 240 x 0.9 = 216 training examples: 6 steps of 32 on either 1 or 2 processes
    assert res["steps"] == 216 // 32 and 0.0 <= res["final"]["test_error"] <= 1.0
    with h5py.File(out / "weights.h5", "r") as f:
        assert len(f.keys()) > 0


def test_a_batch_that_does_not_split_across_the_processes_is_refused(tmp_path, data_dir):
    exp = write_json(tmp_path / "exp.json", search_config(data_dir, batch_size_train=45,
                                                        mini_batch_train=15))  # fmt: skip
    out = tmp_path / "out"
    proc = mpirun(2, [MAIN, "--search", "-f", exp, "-a", "ProxylessNasSearcher", "-o", out])
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.count("error: batch_size_train: 45 does not split across the 2 "
                             "processes") == 1, proc.stderr  # fmt: skip
    assert "must be a multiple of 2 (e.g. 44 or 46" in proc.stderr
    assert not out.exists()  # refused before the output folder is touched
