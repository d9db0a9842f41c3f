"""Datasets of image files decoded lazily with PIL: file lists and class-per-folder trees."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import numpy as np

from ..errors import ConfigError, DataError, DatasetNotFoundError
from .base import IMAGENET_MEAN, IMAGENET_STD, DatasetSplits, adapt_stats, resize_crop

logger = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (
    ".jpeg",
    ".jpg",
    ".png",
    ".bmp",
    ".ppm",
    ".pgm",
    ".gif",
    ".tif",
    ".tiff",
    ".webp",
)
MODES = {1: "L", 3: "RGB"}


def decode_image(path: str | Path, size: tuple[int, int], channels: int = 3) -> np.ndarray:
    """Reads an image file as uint8 ``(channels, H, W)``.

    The image is converted to RGB (``channels = 3``) or grey (``channels = 1``), scaled so that
    it covers ``size = (H, W)`` and centre-cropped to it (see :func:`base.resize_crop`).

    Raises:
        DataError: the file cannot be decoded (the message names it). The run is going by
            then (the files' headers were checked when the dataset was made: see
            :func:`check_image_headers`), so this is a failure while running, not bad input.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            # JPEG only: decode at a reduced scale when the image is much larger than needed.
            img.draft(MODES[channels], (size[1], size[0]))
            img = img.convert(MODES[channels])
            arr = np.asarray(resize_crop(img, size), dtype=np.uint8)
    except (OSError, UnidentifiedImageError, ValueError) as e:
        raise DataError(
            f"cannot decode image {path}: {e}; replace the file, then continue the run with "
            "--resume"
        ) from e
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


#: Datasets of more files than this are not checked in advance (reading every header of
#: ImageNet's 1.28 million files would take minutes): a bad file then stops the run.
HEADER_CHECK_LIMIT = 50_000


def check_image_headers(paths: Sequence[str]) -> None:
    """Refuses a dataset with a file that is not an image: every header is read (no pixel is
    decoded), so that a stray file is bad input before the run, not a failure during it. Lists
    of more than :data:`HEADER_CHECK_LIMIT` files are not checked (logged).

    Raises:
        ConfigError: naming the first file PIL cannot identify (and how many others fail).
    """
    from PIL import Image, UnidentifiedImageError

    if len(paths) > HEADER_CHECK_LIMIT:
        logger.info(
            "%d images: their headers are not checked in advance (more than %d); a file that "
            "cannot be decoded stops the run",
            len(paths),
            HEADER_CHECK_LIMIT,
        )
        return
    bad: list[tuple[str, Exception]] = []
    for path in paths:
        try:
            with Image.open(path):
                pass
        except (OSError, UnidentifiedImageError, ValueError) as e:
            bad.append((path, e))
    if bad:
        more = f" (and {len(bad) - 1} more)" if len(bad) > 1 else ""
        raise ConfigError(
            f"{bad[0][0]} is not a readable image ({bad[0][1]}){more}; replace or remove the file",
            key="data_dir",
        )


class ImageFileDataset:
    """Images listed by path with integer labels, decoded (and resized) on demand.

    Args:
        paths: image file paths.
        labels: one integer label per path.
        image_size: ``(H, W)`` every image is resized and centre-cropped to.
        channels: 3 (RGB) or 1 (grey).
        check: verify at construction that every file exists (DatasetNotFoundError otherwise)
            and is an image (its header: :func:`check_image_headers`).
    """

    in_memory = False

    def __init__(
        self,
        paths: Sequence[str | Path],
        labels: Sequence[int] | np.ndarray,
        image_size: Sequence[int] = (224, 224),
        channels: int = 3,
        check: bool = True,
    ) -> None:
        if channels not in MODES:
            raise ConfigError(f"image datasets have 1 or 3 channels, got {channels}", "input_shape")
        self.paths = [str(p) for p in paths]
        self.labels = np.asarray(labels, dtype=np.int64).reshape(-1)
        if len(self.labels) != len(self.paths):
            raise ValueError(f"{len(self.paths)} paths but {len(self.labels)} labels")
        self.image_size = (int(image_size[0]), int(image_size[1]))
        self.channels = int(channels)
        if check:
            missing = [p for p in self.paths if not Path(p).is_file()]
            if missing:
                more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
                raise DatasetNotFoundError(f"image file {missing[0]} does not exist{more}")
            check_image_headers(self.paths)

    def __len__(self) -> int:
        return len(self.paths)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every decoded example."""
        return (self.channels, *self.image_size)

    def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Decodes examples ``indices`` into ``(uint8 (B, C, H, W), int64 (B,))``."""
        indices = np.asarray(indices, dtype=np.int64).reshape(-1)
        x = np.empty((len(indices), *self.image_shape), dtype=np.uint8)
        for i, j in enumerate(indices):
            x[i] = decode_image(self.paths[j], self.image_size, self.channels)
        return x, self.labels[indices]

    def __repr__(self) -> str:
        return f"{type(self).__name__}(n={len(self)}, image_shape={self.image_shape})"


def scan_class_folders(root: Path, classes: Sequence[str] | None = None) -> tuple[list, list, list]:
    """Lists the images of a class-per-folder tree ``root/<class>/<image>``.

    Args:
        root: the tree's root.
        classes: class names in label order; ``None`` for the sorted sub-folder names of ``root``.

    Returns:
        ``(paths, labels, classes)``, paths sorted within each class.

    Raises:
        DatasetNotFoundError: ``root`` is missing, has no class folder, or a folder not in
            ``classes``.
    """
    if not root.is_dir():
        raise DatasetNotFoundError(f"folder {root} does not exist")
    found = sorted(d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not found:
        raise DatasetNotFoundError(f"folder {root} has no class sub-folders (<class>/<image>)")
    if classes is None:
        classes = found
    index = {c: i for i, c in enumerate(classes)}
    unknown = [c for c in found if c not in index]
    if unknown:
        raise DatasetNotFoundError(
            f"{root} has class folders absent from the training set: {', '.join(unknown[:5])}"
        )
    paths, labels = [], []
    for c in found:
        files = sorted(
            p for p in (root / c).rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()
        )
        paths += files
        labels += [index[c]] * len(files)
    if not paths:
        raise DatasetNotFoundError(
            f"no images ({', '.join(IMAGE_EXTENSIONS)}) in the class folders of {root}"
        )
    return paths, labels, list(classes)


class ImageFolderDataset(ImageFileDataset):
    """A class-per-folder image tree ``root/<class>/<image>``; labels follow ``classes``.

    Args:
        root: the tree's root.
        image_size: ``(H, W)`` every image is resized and centre-cropped to.
        channels: 3 (RGB) or 1 (grey).
        classes: class names in label order; ``None`` for the sorted folder names.
    """

    def __init__(
        self,
        root: str | Path,
        image_size: Sequence[int] = (224, 224),
        channels: int = 3,
        classes: Sequence[str] | None = None,
    ) -> None:
        paths, labels, self.classes = scan_class_folders(Path(root), classes)
        super().__init__(paths, labels, image_size, channels, check=False)


def file_splits(
    train: ImageFileDataset, test: ImageFileDataset, num_classes: int, source: str
) -> DatasetSplits:
    """:class:`DatasetSplits` of two file datasets, with ImageNet's statistics.

    For grey images (``channels = 1``) the statistics are the luma-weighted ImageNet ones.
    """
    mean, std = adapt_stats(IMAGENET_MEAN, IMAGENET_STD, train.channels)
    return DatasetSplits(train, test, num_classes, train.image_shape, mean, std, source)


def read_file_list(path: Path) -> tuple[list[Path], list[int]]:
    """Reads a file list: ``relative/path label`` per line, paths relative to the list's folder.

    Blank lines and lines starting with ``#`` are skipped; the label is the last
    whitespace-separated field, so paths may contain spaces.

    Raises:
        DatasetNotFoundError: the list is missing.
        ConfigError: a line without an integer label (naming the file and line).
    """
    if not path.is_file():
        raise DatasetNotFoundError(f"file list {path} does not exist")
    paths, labels = [], []
    for lineno, line in enumerate(path.read_text().splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2 or not _is_int(parts[1]) or int(parts[1]) < 0:
            raise ConfigError(f"{path}:{lineno}: expected 'relative/path label', got {line!r}")
        paths.append(path.parent / parts[0])
        labels.append(int(parts[1]))
    if not paths:
        raise DatasetNotFoundError(f"file list {path} lists no images")
    return paths, labels


def _is_int(s: str) -> bool:
    try:
        int(s)
    except ValueError:
        return False
    return True
