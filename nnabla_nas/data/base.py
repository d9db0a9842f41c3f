"""Datasets as batched arrays: the dataset registry, in-memory datasets and ``load_dataset``.

A dataset is anything with ``len(ds)``, ``ds.labels`` (int64 array, one label per example),
``ds.in_memory`` (bool) and ``ds.get(indices) -> (x, y)`` where ``x`` is uint8 ``(B, C, H, W)``
and ``y`` int64 ``(B,)``. Normalisation and augmentation happen later, in
:class:`nnabla_nas.data.transforms.Augment`, batch-wise.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, Sequence, runtime_checkable

import numpy as np

from ..errors import ConfigError
from ..registry import Registry

logger = logging.getLogger(__name__)

DATASETS = Registry("dataset")
"""Dataset name -> loader ``f(data_dir, seed=0, image_size=None, channels=None)``."""

CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2470, 0.2435, 0.2616)
MNIST_MEAN = (0.1307,)
MNIST_STD = (0.3081,)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# ITU-R 601-2 luma weights, the ones PIL's convert("L") uses.
LUMA = (0.299, 0.587, 0.114)


@runtime_checkable
class Dataset(Protocol):
    """What the DataLoader and the split need from a dataset."""

    labels: np.ndarray
    in_memory: bool

    def __len__(self) -> int: ...

    def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class ArrayDataset:
    """A dataset held in memory as a uint8 ``(N, C, H, W)`` array and int labels.

    Args:
        images: uint8 array ``(N, C, H, W)``.
        labels: integer array ``(N,)``.
    """

    in_memory = True

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        images = np.asarray(images)
        labels = np.asarray(labels)
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype}{images.shape}")
        if labels.shape != (len(images),) or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"labels must be ints of shape ({len(images)},), got {labels.shape}")
        self.images = images
        self.labels = labels.astype(np.int64, copy=False)

    def __len__(self) -> int:
        return len(self.images)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """``(C, H, W)`` of every example."""
        return tuple(int(s) for s in self.images.shape[1:])  # type: ignore[return-value]

    def get(self, indices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Examples ``indices`` as ``(uint8 (B, C, H, W), int64 (B,))`` by fancy indexing."""
        indices = np.asarray(indices, dtype=np.int64)
        return self.images[indices], self.labels[indices]

    def __repr__(self) -> str:
        return f"ArrayDataset(n={len(self)}, image_shape={self.image_shape})"


@dataclass
class DatasetSplits:
    """A loaded dataset: its train and test parts and what the network needs to know of it.

    Attributes:
        train: the training set (search mode splits it further with ``split_stratified``).
        test: the held-out test (validation) set.
        num_classes: number of classes; labels are ``0 .. num_classes - 1``.
        image_shape: ``(C, H, W)`` of the uint8 images ``get`` returns.
        mean: per-channel mean of ``x / 255`` used for normalisation.
        std: per-channel standard deviation of ``x / 255``.
        source: where the data came from (a path, or the embedded subset), for the log.
    """

    train: Dataset
    test: Dataset
    num_classes: int
    image_shape: tuple[int, int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    source: str = ""


def resize_crop(img, size: tuple[int, int]):
    """Resizes a PIL image so that it covers ``size = (H, W)``, then centre-crops it to ``size``.

    The short side (relative to the target aspect ratio) is scaled to fit, so the image is never
    stretched; an image already of size ``(H, W)`` is returned unchanged.
    """
    from PIL import Image

    h, w = size
    iw, ih = img.size
    if (ih, iw) == (h, w):
        return img
    scale = max(h / ih, w / iw)
    nw, nh = max(w, round(iw * scale)), max(h, round(ih * scale))
    img = img.resize((nw, nh), Image.BILINEAR)
    left, top = (nw - w) // 2, (nh - h) // 2
    return img.crop((left, top, left + w, top + h))


def adapt_images(
    images: np.ndarray,
    name: str,
    image_size: Sequence[int] | None,
    channels: int | None,
) -> np.ndarray:
    """Makes in-memory uint8 ``(N, C, H, W)`` images match the requested input shape.

    A different ``image_size`` resizes every image with PIL (:func:`resize_crop`). One channel
    asked of a 3-channel dataset is converted to luma; three asked of a 1-channel dataset repeat
    the grey channel. Any other channel count is a ConfigError naming ``input_shape``.
    """
    n, c, h, w = images.shape
    if channels is not None and channels != c:
        if c == 1 and channels == 3:
            images = np.repeat(images, 3, axis=1)
        elif c == 3 and channels == 1:
            luma = np.tensordot(np.asarray(LUMA, np.float32), images.astype(np.float32), ([0], [1]))
            images = np.clip(np.rint(luma), 0, 255).astype(np.uint8)[:, None]
        else:
            raise ConfigError(
                f"dataset {name!r} has {c} channel(s); {channels} cannot be made from it: "
                f"use input_shape[0] = {c}" + (" (or 3)" if c == 1 else " (or 1)"),
                key="input_shape",
            )
    if image_size is not None and tuple(image_size) != (h, w):
        from PIL import Image

        size = (int(image_size[0]), int(image_size[1]))
        logger.info("resizing %d %s images from %dx%d to %dx%d", n, name, h, w, *size)
        out = np.empty((n, images.shape[1], *size), dtype=np.uint8)
        for i, im in enumerate(images):
            if im.shape[0] == 1:
                out[i, 0] = np.asarray(resize_crop(Image.fromarray(im[0]), size))
            else:
                pil = Image.fromarray(np.ascontiguousarray(im.transpose(1, 2, 0)))
                out[i] = np.asarray(resize_crop(pil, size)).transpose(2, 0, 1)
        images = out
    return images


def adapt_stats(
    mean: Sequence[float], std: Sequence[float], channels: int | None
) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel statistics for ``channels`` channels, from a dataset's own statistics.

    Grey from colour uses the luma-weighted mean and standard deviation (an approximation);
    colour from grey repeats the grey value.
    """
    mean, std = tuple(float(m) for m in mean), tuple(float(s) for s in std)
    if channels is None or channels == len(mean):
        return mean, std
    if len(mean) == 1:
        return mean * channels, std * channels
    if channels == 1:
        return (float(np.dot(LUMA, mean)),), (float(np.dot(LUMA, std)),)
    raise ConfigError(f"cannot derive {channels}-channel statistics", key="input_shape")


def in_memory_splits(
    name: str,
    train: tuple[np.ndarray, np.ndarray],
    test: tuple[np.ndarray, np.ndarray],
    num_classes: int,
    mean: Sequence[float],
    std: Sequence[float],
    image_size: Sequence[int] | None,
    channels: int | None,
    source: str,
) -> DatasetSplits:
    """Builds :class:`DatasetSplits` from in-memory arrays, adapted to the requested shape."""
    xtr = adapt_images(train[0], name, image_size, channels)
    xte = adapt_images(test[0], name, image_size, channels)
    mean, std = adapt_stats(mean, std, xtr.shape[1])
    tr, te = ArrayDataset(xtr, train[1]), ArrayDataset(xte, test[1])
    return DatasetSplits(tr, te, num_classes, tr.image_shape, mean, std, source)


def load_dataset(
    name: str,
    data_dir: str | Path | None,
    seed: int = 0,
    image_size: Sequence[int] | None = None,
    channels: int | None = None,
) -> DatasetSplits:
    """Loads a registered dataset.

    Args:
        name: a name registered in ``DATASETS`` (``cifar10``, ``mnist``, ``imagenet``, ``csv``).
        data_dir: the dataset's folder (see docs/data.rst for each layout); ``None`` for the
            default (CIFAR-10: ``~/.cache/nnabla_nas/cifar10``; MNIST: the embedded subset).
        seed: the run's seed (the built-in datasets have fixed train/test parts and ignore it).
        image_size: ``(H, W)`` the images are delivered at; ``None`` keeps the dataset's own size
            (file datasets: 224x224).
        channels: 1 (grey) or 3 (RGB); ``None`` keeps the dataset's own.

    Returns:
        The train and test datasets with the number of classes, image shape and statistics.

    Raises:
        ConfigError: unknown name (listing the valid ones) or an impossible shape.
        DatasetNotFoundError: the files are missing, naming the folder and the expected layout.
    """
    loader = DATASETS.get(name, key="dataset")
    path = Path(data_dir).expanduser() if data_dir is not None else None
    if image_size is not None:
        image_size = (int(image_size[0]), int(image_size[1]))
        if min(image_size) < 1:
            raise ConfigError(f"image size must be positive, got {image_size}", key="input_shape")
    splits = loader(path, seed=seed, image_size=image_size, channels=channels)
    logger.info(
        "dataset %s from %s: %d train, %d test, %d classes, images %s",
        DATASETS.canonical(name),
        splits.source,
        len(splits.train),
        len(splits.test),
        splits.num_classes,
        "x".join(map(str, splits.image_shape)),
    )
    return splits
