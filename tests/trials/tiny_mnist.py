"""A tiny MNIST for trials that train: 400 training and 100 test digits of the embedded subset,
written as the four IDX files, and an experiment file on 14x14 images (a trial trains in
seconds on a loaded 2-core machine)."""

from __future__ import annotations

import copy
import struct
from pathlib import Path

import numpy as np

from nnabla_nas.data.mnist import load_embedded
from tests.conftest import tiny_mnist_config

TRAIN, TEST = 400, 100


def _write_idx(path: Path, array: np.ndarray) -> None:
    """An IDX file of unsigned bytes (magic 0x0000 08 ndim, then the dimensions)."""
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    path.write_bytes(header + np.ascontiguousarray(array, dtype=np.uint8).tobytes())


def write_tiny_mnist(folder: Path) -> Path:
    """The IDX files of the tiny MNIST in ``folder`` (returned)."""
    folder.mkdir(parents=True, exist_ok=True)
    x, y = load_embedded()
    order = np.random.RandomState(0).permutation(len(y))[: TRAIN + TEST]
    x, y = x[order], y[order]
    _write_idx(folder / "train-images-idx3-ubyte", x[:TRAIN, 0])
    _write_idx(folder / "train-labels-idx1-ubyte", y[:TRAIN])
    _write_idx(folder / "t10k-images-idx3-ubyte", x[TRAIN:, 0])
    _write_idx(folder / "t10k-labels-idx1-ubyte", y[TRAIN:])
    return folder


def trials_config(data_dir: Path, budget: int = 4, trial_epochs: int = 2, **overrides) -> dict:
    """A multi-trial experiment on the tiny MNIST (3 binary choices, 8 architectures)."""
    cfg = copy.deepcopy(tiny_mnist_config())
    del cfg["epoch"]
    cfg.update(data_dir=str(data_dir), input_shape=[1, 14, 14], batch_size_train=20,
               mini_batch_train=20, batch_size_valid=100, mini_batch_valid=100,
               print_frequency=5)  # fmt: skip
    evaluator = {"name": "train", "trial_epochs": trial_epochs}
    cfg["trials"] = {"budget": budget, "evaluator": evaluator}
    cfg["searcher"] = {}
    cfg.update(overrides)
    return cfg
