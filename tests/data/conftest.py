"""Fixtures writing small datasets in the official on-disk formats."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests import datasets


@pytest.fixture
def cifar_batches() -> dict[str, dict]:
    """Six small batches in the official CIFAR-10 python format (5 train of 4, test of 6)."""
    return datasets.cifar_batches(per_batch=4, test=6, seed=0)


@pytest.fixture
def write_cifar(cifar_batches):
    """write_cifar(folder, archive: bool) writes the official archive or extracted folder."""

    def write(folder: Path, archive: bool) -> Path:
        return datasets.write_cifar(folder, cifar_batches, archive)

    return write


def idx_bytes(arr: np.ndarray) -> bytes:
    """An uint8 array in the IDX format (magic 0x0000 08 ndim, big-endian dims, data)."""
    header = struct.pack(">BBBB", 0, 0, 0x08, arr.ndim) + struct.pack(f">{arr.ndim}I", *arr.shape)
    return header + np.ascontiguousarray(arr, dtype=np.uint8).tobytes()


@pytest.fixture
def write_idx():
    """write_idx(path, array) writes an IDX file, gzipped when the name ends in .gz."""

    def write(path: Path, arr: np.ndarray) -> None:
        blob = idx_bytes(arr)
        path.write_bytes(gzip.compress(blob) if path.suffix == ".gz" else blob)

    return write


@pytest.fixture
def write_png():
    """write_png(path, array HxWx3 or HxW uint8) saves a PNG (lossless), creating folders."""

    def write(path: Path, arr: np.ndarray) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path)

    return write
