"""Fixtures writing small datasets in the official on-disk formats."""

from __future__ import annotations

import gzip
import io
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def cifar_batches() -> dict[str, dict]:
    """Six small batches in the official CIFAR-10 python format (5 train of 4, test of 6)."""
    rng = np.random.RandomState(0)
    batches = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for b, name in enumerate(names):
        n = 6 if name == "test_batch" else 4
        data = rng.randint(0, 256, size=(n, 3072)).astype(np.uint8)
        batches[name] = {
            b"batch_label": f"batch {b + 1} of 5".encode(),
            b"labels": [int(v) for v in rng.randint(0, 10, size=n)],
            b"data": data,
            b"filenames": [f"img_{b}_{i}.png".encode() for i in range(n)],
        }
    return batches


def _cifar_meta() -> bytes:
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer"]
    names += [b"dog", b"frog", b"horse", b"ship", b"truck"]
    meta = {b"num_cases_per_batch": 10000, b"label_names": names, b"num_vis": 3072}
    return pickle.dumps(meta, protocol=2)


@pytest.fixture
def write_cifar(cifar_batches):
    """write_cifar(folder, archive: bool) writes the official archive or extracted folder."""

    def write(folder: Path, archive: bool) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        files = {name: pickle.dumps(d, protocol=2) for name, d in cifar_batches.items()}
        files["batches.meta"] = _cifar_meta()
        files["readme.html"] = b"<html></html>"
        if not archive:
            sub = folder / "cifar-10-batches-py"
            sub.mkdir()
            for name, blob in files.items():
                (sub / name).write_bytes(blob)
            return sub
        path = folder / "cifar-10-python.tar.gz"
        with tarfile.open(path, "w:gz") as tar:
            for name, blob in files.items():
                info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
                info.size = len(blob)
                tar.addfile(info, io.BytesIO(blob))
        return path

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
