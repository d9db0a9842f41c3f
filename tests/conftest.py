"""Shared fixtures."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import nnabla as nn
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _clean_nnabla_state():
    """Each test starts with nnabla's global parameter scope empty and the CPU context."""
    nn.clear_parameters()
    yield
    nn.clear_parameters()


def tiny_mnist_config(fixed: bool = False, **overrides) -> dict:
    """A tiny experiment on the embedded MNIST digits (seconds per epoch on 2 CPU cores).

    ``fixed``: one candidate per block (a fixed network for the Trainer) instead of a supernet.
    """
    cfg = {
        "dataset": "mnist",
        "epoch": 1,
        "input_shape": [1, 28, 28],
        "batch_size_train": 32,
        "batch_size_valid": 200,
        "mini_batch_train": 16,
        "mini_batch_valid": 200,
        "print_frequency": 20,
        "train_portion": 0.5,
        "network": {
            "search_space": "mobilenet",
            "num_classes": 10,
            "settings": [[8, 1, 2], [16, 2, 2]],
            "width_mult": 0.25,
            "candidates": ["MB3 3x3", "MB3 5x5"],
            "mode": "sample",
        },
        "optimizer": {
            "train": {"solver": {"name": "Momentum", "lr": 0.05}, "weight_decay": 1e-4},
            "valid": {"solver": {"name": "Adam", "alpha": 0.01}},
        },
    }
    if fixed:
        cfg["network"].update(candidates=["MB3 3x3"], skip_connect=False)
        del cfg["network"]["mode"]
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


def write_json(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj, indent=2))
    return path


def run_cli(args, cwd=None, timeout=600):
    """Runs ``python main.py ARGS`` in a subprocess; returns the CompletedProcess."""
    import subprocess

    env = dict(os.environ)
    env.setdefault("PYTHONHASHSEED", "0")
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *map(str, args)],
        cwd=cwd or ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
