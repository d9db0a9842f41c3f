"""CIFAR-10 from the official python archive, read in place (no extraction needed).

The archive's batches are pickled dicts (the official format); only open archives you trust.
"""

from __future__ import annotations

import hashlib
import logging
import pickle
import tarfile
import urllib.error
import urllib.request
from pathlib import Path
from typing import IO, Callable, Sequence

import numpy as np

from ..errors import DatasetNotFoundError
from ..utils.io import atomic_path
from .base import CIFAR10_MEAN, CIFAR10_STD, DATASETS, DatasetSplits, in_memory_splits

logger = logging.getLogger(__name__)

CIFAR10_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
CIFAR10_MD5 = "c58f30108f718f92721af3b95e74349a"
ARCHIVE = "cifar-10-python.tar.gz"
FOLDER = "cifar-10-batches-py"
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCH = "test_batch"
NUM_CLASSES = 10
DEFAULT_DIR = Path("~/.cache/nnabla_nas/cifar10")
LAYOUT = (
    f"put the official archive there as {ARCHIVE} (from {CIFAR10_URL}), or its extracted "
    f"folder {FOLDER}/ holding {', '.join(TRAIN_BATCHES)} and {TEST_BATCH}"
)

Downloader = Callable[[str, Path, str], bool]


def md5sum(path: str | Path) -> str:
    """The md5 hex digest of a file."""
    h = hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def download_file(url: str, dest: Path, md5: str, timeout: float = 5.0) -> bool:
    """Downloads ``url`` to ``dest`` atomically if the host answers within ``timeout`` seconds.

    Returns:
        True when ``dest`` was written and its md5 matches; False when the host is unreachable.

    Raises:
        DatasetNotFoundError: the download's checksum is wrong (nothing is left at ``dest``).
    """
    try:
        response = urllib.request.urlopen(url, timeout=timeout)
    except (urllib.error.URLError, OSError, ValueError) as e:
        logger.info("cannot reach %s (%s)", url, e)
        return False
    logger.info("downloading %s to %s", url, dest)
    try:
        with response, atomic_path(dest) as tmp:
            with open(tmp, "wb") as f:
                for chunk in iter(lambda: response.read(1 << 20), b""):
                    f.write(chunk)
            got = md5sum(tmp)
            if got != md5:
                raise DatasetNotFoundError(
                    f"download of {url} has md5 {got}, expected {md5}; "
                    f"retry, or put the file at {dest}"
                )
    except OSError as e:
        raise DatasetNotFoundError(
            f"download of {url} failed ({e}); retry, or put the file at {dest}"
        ) from e
    return True


def _unpickle(f: IO[bytes], name: str) -> tuple[np.ndarray, np.ndarray]:
    try:
        d = pickle.load(f, encoding="bytes")
        data = np.asarray(d[b"data"], dtype=np.uint8)
        labels = np.asarray(d[b"labels"], dtype=np.int64)
    except Exception as e:  # any unpickling/format failure means a damaged file
        raise DatasetNotFoundError(f"{name} is not a CIFAR-10 batch ({e}); {LAYOUT}") from e
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DatasetNotFoundError(
            f"{name}: expected data (N, 3072) and N labels, got {data.shape} and {labels.shape}"
        )
    bad = np.flatnonzero((labels < 0) | (labels >= NUM_CLASSES))
    if len(bad):
        raise DatasetNotFoundError(
            f"{name} holds labels outside CIFAR-10's classes 0..9 ({len(bad)} of {len(labels)}, "
            f"e.g. {int(labels[bad[0]])} at position {int(bad[0])}): the file is damaged; "
            f"replace it ({LAYOUT})",
            key="data_dir",
        )
    return data.reshape(-1, 3, 32, 32), labels


def _read_folder(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    for name in (*TRAIN_BATCHES, TEST_BATCH):
        path = folder / name
        if not path.is_file():
            raise DatasetNotFoundError(f"{path} is missing; {LAYOUT}")
        with open(path, "rb") as f:
            out[name] = _unpickle(f, str(path))
    return out


def _read_archive(archive: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    out = {}
    try:
        with tarfile.open(archive, "r:gz") as tar:
            for member in tar:
                name = Path(member.name).name
                if member.isfile() and name in (*TRAIN_BATCHES, TEST_BATCH):
                    out[name] = _unpickle(tar.extractfile(member), f"{archive}:{member.name}")
    except (tarfile.TarError, OSError, EOFError) as e:
        raise DatasetNotFoundError(
            f"{archive} is damaged ({e}); delete it and download it again ({CIFAR10_URL})"
        ) from e
    missing = [n for n in (*TRAIN_BATCHES, TEST_BATCH) if n not in out]
    if missing:
        raise DatasetNotFoundError(f"{archive} lacks {', '.join(missing)}; {LAYOUT}")
    return out


def load_cifar10(
    data_dir: Path | None,
    seed: int = 0,
    image_size: Sequence[int] | None = None,
    channels: int | None = None,
    download: Downloader | None = download_file,
) -> DatasetSplits:
    """CIFAR-10: 50,000 training and 10,000 test 32x32 colour images of 10 classes.

    Looks in ``data_dir`` (default ``~/.cache/nnabla_nas/cifar10``) for, in this order, the
    extracted ``cifar-10-batches-py/`` folder (or the batch files directly in ``data_dir``), then
    ``cifar-10-python.tar.gz``. When neither is there, ``download(url, dest, md5)`` fetches the
    archive if the host is reachable (checksum verified).

    Args:
        data_dir: the folder holding the archive or its extracted folder.
        seed: unused (the official train/test parts are fixed).
        image_size: ``(H, W)``; anything other than 32x32 resizes every image with PIL.
        channels: 3, or 1 for grey (luma).
        download: ``f(url, dest, md5) -> bool`` (False: unreachable); ``None`` never downloads.

    Raises:
        DatasetNotFoundError: nothing found and no download, naming the folder and both layouts.
    """
    folder = (data_dir if data_dir is not None else DEFAULT_DIR).expanduser()
    archive = folder / ARCHIVE
    if (folder / FOLDER).is_dir():
        source, batches = folder / FOLDER, _read_folder(folder / FOLDER)
    elif (folder / TEST_BATCH).is_file():
        source, batches = folder, _read_folder(folder)
    else:
        if not archive.is_file():
            if download is None or not download(CIFAR10_URL, archive, CIFAR10_MD5):
                raise DatasetNotFoundError(
                    f"CIFAR-10 not found in {folder} and it could not be downloaded: {LAYOUT}; "
                    "or point --data-dir DIR (the file's data_dir) at the folder holding it",
                    key="data_dir",
                )
        source, batches = archive, _read_archive(archive)
    train = tuple(np.concatenate(a) for a in zip(*(batches[n] for n in TRAIN_BATCHES)))
    return in_memory_splits(
        "cifar10",
        train,  # type: ignore[arg-type]
        batches[TEST_BATCH],
        NUM_CLASSES,
        CIFAR10_MEAN,
        CIFAR10_STD,
        image_size,
        channels,
        str(source),
    )


DATASETS.add("cifar10", load_cifar10, "cifar-10")
