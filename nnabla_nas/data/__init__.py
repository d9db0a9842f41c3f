"""Datasets, the stratified search split, augmentations and the batch loader.

``load_dataset(name, data_dir, seed, image_size, channels)`` returns a :class:`DatasetSplits`;
``DataLoader`` turns a dataset (or an index subset of it) into normalised float32 batches.
See docs/data.rst for each dataset's on-disk layout.
"""

from __future__ import annotations

from . import cifar10, csv_list, imagenet, mnist  # noqa: F401  (registers the loaders)
from .base import (
    CIFAR10_MEAN,
    CIFAR10_STD,
    DATASETS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    MNIST_MEAN,
    MNIST_STD,
    ArrayDataset,
    Dataset,
    DatasetSplits,
    load_dataset,
)
from .bundle import DataBundle, make_loaders
from .images import ImageFileDataset, ImageFolderDataset, decode_image
from .loader import DataLoader
from .split import split_stratified
from .transforms import Augment, Transform

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "DATASETS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "MNIST_MEAN",
    "MNIST_STD",
    "ArrayDataset",
    "Augment",
    "DataBundle",
    "DataLoader",
    "Dataset",
    "DatasetSplits",
    "ImageFileDataset",
    "ImageFolderDataset",
    "Transform",
    "decode_image",
    "load_dataset",
    "make_loaders",
    "split_stratified",
]
