"""Small datasets written by the tests in the exact official on-disk formats."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np

CIFAR_NAMES = [b"airplane", b"automobile", b"bird", b"cat", b"deer"]
CIFAR_NAMES += [b"dog", b"frog", b"horse", b"ship", b"truck"]


def cifar_batches(per_batch: int = 4, test: int = 6, seed: int = 0) -> dict[str, dict]:
    """Five train batches of ``per_batch`` images and a test batch of ``test``, in the official
    CIFAR-10 python format (labels cycle through the 10 classes, so every class is present)."""
    rng = np.random.RandomState(seed)
    batches = {}
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for b, name in enumerate(names):
        n = test if name == "test_batch" else per_batch
        data = rng.randint(0, 256, size=(n, 3072)).astype(np.uint8)
        batches[name] = {
            b"batch_label": f"batch {b + 1} of 5".encode(),
            b"labels": [int(v) for v in rng.randint(0, 10, size=n)],
            b"data": data,
            b"filenames": [f"img_{b}_{i}.png".encode() for i in range(n)],
        }
    return batches


def cifar_meta() -> bytes:
    meta = {b"num_cases_per_batch": 10000, b"label_names": CIFAR_NAMES, b"num_vis": 3072}
    return pickle.dumps(meta, protocol=2)


def write_cifar(folder: Path, batches: dict[str, dict], archive: bool) -> Path:
    """Writes ``cifar-10-python.tar.gz`` (``archive``) or ``cifar-10-batches-py/`` in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    files = {name: pickle.dumps(d, protocol=2) for name, d in batches.items()}
    files["batches.meta"] = cifar_meta()
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
