"""Image datasets listed in CSV files: ``train.csv`` and ``test.csv`` with ``path,label`` rows."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Sequence

from ..errors import ConfigError, DatasetNotFoundError
from .base import DATASETS, DatasetSplits
from .images import ImageFileDataset, file_splits

logger = logging.getLogger(__name__)

DEFAULT_SIZE = (224, 224)
HEADER_LABELS = {"label", "labels", "class", "target", "y", "category"}
LAYOUT = (
    "expected DATA_DIR/train.csv and DATA_DIR/test.csv with 'path,label' rows (optional header "
    "row 'path,label'; paths relative to the CSV's folder; labels 0..K-1 or class names)"
)


def read_csv_rows(path: Path) -> list[tuple[str, str]]:
    """The ``(path, label)`` rows of a CSV file, without its header row if it has one.

    A first row whose label cell is one of ``label, labels, class, target, y, category``
    (any case) is a header.
    """
    if not path.is_file():
        raise DatasetNotFoundError(f"{path} does not exist; {LAYOUT}", key="data_dir")
    rows = []
    with open(path, newline="") as f:
        for lineno, row in enumerate(csv.reader(f), 1):
            if not row or not "".join(row).strip():
                continue
            if len(row) < 2:
                raise ConfigError(f"{path}:{lineno}: expected 'path,label', got {row!r}")
            rows.append((row[0].strip(), row[1].strip()))
    if rows and rows[0][1].lower() in HEADER_LABELS:
        rows = rows[1:]
    if not rows:
        raise DatasetNotFoundError(f"{path} lists no images; {LAYOUT}")
    return rows


def _int_or_none(s: str) -> int | None:
    try:
        return int(s)
    except ValueError:
        return None


def load_csv(
    data_dir: Path | None,
    seed: int = 0,
    image_size: Sequence[int] | None = None,
    channels: int | None = None,
) -> DatasetSplits:
    """Images listed in ``data_dir/train.csv`` and ``data_dir/test.csv``.

    Labels are integers ``0 .. K-1``, or class names (then numbered in sorted order of the
    training set's names). Images are decoded on demand like ``imagenet``'s.

    Args:
        data_dir: the folder of the two CSV files.
        seed: unused.
        image_size: ``(H, W)`` of the delivered images (default 224x224).
        channels: 3 (RGB, default) or 1 (grey: images are converted with PIL's ``L`` mode).

    Raises:
        DatasetNotFoundError: a CSV or an image it lists is missing.
        ConfigError: a malformed row, a negative label, or a test class absent from training.
    """
    if data_dir is None:
        raise DatasetNotFoundError(f"csv needs a data folder; {LAYOUT}", key="data_dir")
    tr_rows, te_rows = read_csv_rows(data_dir / "train.csv"), read_csv_rows(data_dir / "test.csv")
    tr_ints = [_int_or_none(label) for _, label in tr_rows]
    te_ints = [_int_or_none(label) for _, label in te_rows]
    if None not in tr_ints and None not in te_ints:
        if min(tr_ints + te_ints) < 0:
            raise ConfigError(f"labels in {data_dir} must be >= 0", key="data_dir")
        tr_labels, te_labels = tr_ints, te_ints
        num_classes = max(tr_ints + te_ints) + 1
    else:
        classes = sorted({label for _, label in tr_rows})
        index = {c: i for i, c in enumerate(classes)}
        unknown = sorted({label for _, label in te_rows} - set(classes))
        if unknown:
            raise ConfigError(
                f"{data_dir / 'test.csv'} has classes absent from train.csv: "
                f"{', '.join(unknown[:5])}"
            )
        tr_labels = [index[label] for _, label in tr_rows]
        te_labels = [index[label] for _, label in te_rows]
        num_classes = len(classes)
    size = tuple(image_size) if image_size is not None else DEFAULT_SIZE
    channels = channels or 3
    train = ImageFileDataset([data_dir / p for p, _ in tr_rows], tr_labels, size, channels)
    test = ImageFileDataset([data_dir / p for p, _ in te_rows], te_labels, size, channels)
    return file_splits(train, test, num_classes, f"CSV files in {data_dir}")


DATASETS.add("csv", load_csv)
