"""ImageNet-style datasets: a class-per-folder tree or file lists, decoded lazily with PIL."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

from ..errors import DatasetNotFoundError
from .base import DATASETS, DatasetSplits
from .images import ImageFileDataset, ImageFolderDataset, file_splits, read_file_list

logger = logging.getLogger(__name__)

DEFAULT_SIZE = (224, 224)
LAYOUT = (
    "expected either class folders DATA_DIR/train/<class>/<image> and DATA_DIR/val/<class>/<image> "
    "(classes = sorted folder names of train/), or file lists DATA_DIR/train.txt and "
    "DATA_DIR/val.txt with one 'relative/path label' line per image (paths relative to DATA_DIR)"
)


def load_imagenet(
    data_dir: Path | None,
    seed: int = 0,
    image_size: Sequence[int] | None = None,
    channels: int | None = None,
) -> DatasetSplits:
    """An image-classification dataset in ImageNet's layout (any number of classes).

    File lists (``train.txt``/``val.txt``) are used when present, otherwise the ``train/`` and
    ``val/`` class folders. Images are decoded on demand, converted to RGB (or grey), scaled so
    that the short side fits ``image_size`` and centre-cropped to it.

    Args:
        data_dir: the dataset's root folder.
        seed: unused (the train/val parts are given by the layout).
        image_size: ``(H, W)`` of the delivered images (default 224x224).
        channels: 3 (RGB, default) or 1 (grey).

    Raises:
        DatasetNotFoundError: ``data_dir`` missing or in neither layout (naming the layouts).
    """
    if data_dir is None:
        raise DatasetNotFoundError(f"imagenet needs a data folder; {LAYOUT}", key="data_dir")
    if not data_dir.is_dir():
        raise DatasetNotFoundError(f"folder {data_dir} does not exist; {LAYOUT}", key="data_dir")
    size = tuple(image_size) if image_size is not None else DEFAULT_SIZE
    channels = channels or 3
    if (data_dir / "train.txt").is_file():
        (trp, trl), (tep, tel) = (read_file_list(data_dir / f) for f in ("train.txt", "val.txt"))
        train = ImageFileDataset(trp, trl, size, channels)
        test = ImageFileDataset(tep, tel, size, channels)
        num_classes = int(max(train.labels.max(), test.labels.max())) + 1
        source = f"file lists {data_dir / 'train.txt'}, {data_dir / 'val.txt'}"
    elif (data_dir / "train").is_dir():
        if not (data_dir / "val").is_dir():
            raise DatasetNotFoundError(f"{data_dir / 'val'} does not exist; {LAYOUT}")
        train = ImageFolderDataset(data_dir / "train", size, channels)
        test = ImageFolderDataset(data_dir / "val", size, channels, classes=train.classes)
        num_classes = len(train.classes)
        source = f"class folders in {data_dir}"
    else:
        raise DatasetNotFoundError(f"no train.txt or train/ in {data_dir}; {LAYOUT}", "data_dir")
    return file_splits(train, test, num_classes, source)


DATASETS.add("imagenet", load_imagenet)
