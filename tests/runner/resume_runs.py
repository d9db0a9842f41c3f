"""Tiny complete runs for the resume, determinism and fault tests (about a second each).

The data: 100 real digits of the embedded MNIST subset (8 train and 2 test per class),
block-averaged to 8x8, written as the standard IDX files; with ``train_portion`` 0.5 and batches
of 8 a search epoch has 5 steps. Every configuration has one warm-up epoch (searchers) and two
epochs (DARTS: one), a dropout (nnabla's global generator) and gradient accumulation over two
mini-batches.
"""

from __future__ import annotations

import json
import os
import re
import struct
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np

from tests.conftest import ROOT, tiny_mnist_config
from tests.events import read_scalars

CRASH = Path(__file__).with_name("crash.py")

#: name -> (algorithm, builder of the experiment dict)
ALGORITHMS = ("gradient", "reinforce", "trainer", "darts")


def write_mnist_idx(folder: Path, train_per_class: int = 8, test_per_class: int = 2) -> Path:
    """Writes the four MNIST IDX files of the tiny 8x8 dataset into ``folder``: the first
    ``train_per_class`` digits of each class for training, the next ``test_per_class`` for
    testing."""
    from nnabla_nas.data.mnist import load_embedded

    x, y = load_embedded()
    small = x[:, 0, 2:26, 2:26].reshape(-1, 8, 3, 8, 3).mean((2, 4)).astype(np.uint8)
    end = train_per_class + test_per_class
    train = np.concatenate([np.flatnonzero(y == c)[:train_per_class] for c in range(10)])
    train = train[np.random.RandomState(0).permutation(len(train))]
    test = np.concatenate([np.flatnonzero(y == c)[train_per_class:end] for c in range(10)])
    folder.mkdir(parents=True, exist_ok=True)
    for name, arr in (("train-images-idx3-ubyte", small[train]),
                      ("train-labels-idx1-ubyte", y[train]),
                      ("t10k-images-idx3-ubyte", small[test]),
                      ("t10k-labels-idx1-ubyte", y[test])):  # fmt: skip
        arr = np.asarray(arr, dtype=np.uint8)
        header = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
        (folder / name).write_bytes(header + arr.tobytes())
    return folder


def experiment(kind: str, data_dir: Path, **overrides) -> tuple[str, dict]:
    """``(algorithm, experiment dict)`` of a tiny run of ``kind`` (see :data:`ALGORITHMS`)."""
    base = dict(
        epoch=2, input_shape=[1, 8, 8], batch_size_train=8, mini_batch_train=4,
        batch_size_valid=8, mini_batch_valid=8, print_frequency=2, data_dir=str(data_dir),
    )  # fmt: skip
    if kind == "trainer":
        cfg = tiny_mnist_config(fixed=True, **base)
        cfg["network"]["drop_rate"] = 0.3
        algorithm = "Trainer"
    elif kind in ("gradient", "reinforce"):
        cfg = tiny_mnist_config(warmup=1, **base)
        cfg["network"]["drop_rate"] = 0.3
        cfg["optimizer"]["train"]["solver"]["momentum"] = 0.9
        if kind == "reinforce":
            cfg["searcher"] = {"estimator": "reinforce", "num_samples": 2}
        algorithm = "ProxylessNasSearcher"
    elif kind == "darts":
        cfg = tiny_mnist_config(warmup=1, **{**base, "epoch": 1})  # DARTS is slower
        cfg["network"] = {
            "search_space": "darts", "init_channels": 4, "num_cells": 3, "num_classes": 10,
            "num_choices": 2, "multiplier": 2, "stem_multiplier": 1, "shared": True,
        }  # fmt: skip
        cfg["optimizer"]["train"]["solver"]["momentum"] = 0.9
        cfg["searcher"] = {"order": 2}
        algorithm = "DartsSearcher"
    else:
        raise ValueError(kind)
    cfg.update(overrides)
    return algorithm, cfg


def run(args, kill: str = "none", hash_seed: str = "0") -> subprocess.CompletedProcess:
    """``main.py ARGS`` in a subprocess, killed at ``kill`` (see ``crash.py``)."""
    env = dict(os.environ, PYTHONHASHSEED=hash_seed)
    return subprocess.run(
        [sys.executable, str(CRASH), kill, *map(str, args)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def start(tmp: Path, kind: str, data_dir: Path, out: Path, kill: str = "none", extra=(),
          **overrides) -> subprocess.CompletedProcess:  # fmt: skip
    """Starts a fresh run of ``kind`` into ``out``."""
    algorithm, cfg = experiment(kind, data_dir, **overrides)
    path = tmp / f"{out.name}.json"
    path.write_text(json.dumps(cfg))
    return run(["-f", path, "-a", algorithm, "-o", out, *extra], kill=kill)


def h5_arrays(path: Path) -> dict[str, np.ndarray]:
    """Every dataset of an h5 file."""
    out: dict[str, np.ndarray] = {}

    def visit(name: str, obj) -> None:  # (a value other than None stops the visit)
        if isinstance(obj, h5py.Dataset):
            out[name] = obj[...]

    with h5py.File(path, "r") as f:
        f.visititems(visit)
    assert out, f"{path} holds no arrays"
    return out


def h5_attrs(path: Path) -> dict:
    with h5py.File(path, "r") as f:
        return {k: (v.tolist() if hasattr(v, "tolist") else v) for k, v in f.attrs.items()}


def final_params(out: Path) -> dict[str, np.ndarray]:
    """The parameters of the last checkpoint (every algorithm's final weights)."""
    info = json.loads((out / "checkpoint" / "latest.json").read_text())
    return h5_arrays(out / "checkpoint" / info["name"] / "params.h5")


def assert_same_arrays(a: dict, b: dict, what: str) -> None:
    assert a.keys() == b.keys(), what
    for k in a:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-7, err_msg=f"{what}: {k}")


def assert_same_run(out: Path, ref: Path) -> None:
    """``out`` ended exactly as the uninterrupted ``ref``: arch.h5, weights.h5, the final
    parameters, the metrics of every epoch and TensorBoard's per-step losses."""
    searcher = (ref / "arch.h5").exists()
    names = ["weights.h5"] + (["arch.h5"] if searcher else [])
    for name in names:
        assert_same_arrays(h5_arrays(out / name), h5_arrays(ref / name), name)
    if searcher:
        assert h5_attrs(out / "arch.h5") == h5_attrs(ref / "arch.h5")
    assert_same_arrays(final_params(out), final_params(ref), "checkpoint params.h5")
    res, ref_res = (json.loads((d / "results.json").read_text()) for d in (out, ref))
    assert res["steps"] == ref_res["steps"] and res["best"] == ref_res["best"]
    assert res["history"] == ref_res["history"]
    scalars, ref_scalars = read_scalars(out / "tensorboard"), read_scalars(ref / "tensorboard")
    for tag in ("train/loss", "warmup/loss", "epoch/valid_error"):
        assert scalars.get(tag) == ref_scalars.get(tag), tag  # every step once, same values
    leftovers = [p.name for p in out.rglob(".*.tmp*")]
    assert not leftovers, leftovers
    assert len([p for p in (out / "checkpoint").iterdir() if p.is_dir()]) == 1


def log_lines(out: Path) -> list[str]:
    """log.txt without the timestamps, with the output folder's path replaced (in the
    continuation lines of a multi-line message, e.g. the run's summary, too) and the summary's
    wall time (``finished: ... in 3 s``) masked: what is left is what a seed determines."""
    lines = (out / "log.txt").read_text().splitlines()
    lines = [(line[20:] if line[:4].isdigit() else line).replace(str(out), "OUT") for line in lines]
    return [re.sub(r"^(\[INFO\] finished: .*) in [0-9.]+ (s|min)$", r"\1 in T", line)
            for line in lines]  # fmt: skip
