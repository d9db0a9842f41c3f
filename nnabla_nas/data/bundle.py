"""The loaders of a run (:class:`DataBundle`), made from a dataset by :func:`make_loaders`.

Search: the training set is split (stratified) into a weight part and a disjoint architecture
part by ``train_portion``; validation metrics are measured on the architecture part. Training:
``valid_portion`` of the training set is held out for validation (choosing the best epoch); the
test set is only reported.

Data-parallel processes (``num_shards`` of them, this one ``shard``; docs/distributed.rst): every
process takes ``batch_size_train / num_shards`` examples of each weight batch (and
``batch_size_valid / num_shards`` of each architecture batch) from its shard, so the batch sizes
stay those of the whole step; evaluation shards use every example once.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol, Sequence

from ..errors import ConfigError
from .base import DatasetSplits, load_dataset
from .loader import DataLoader
from .split import split_stratified
from .transforms import Augment

__all__ = ["DataBundle", "Loader", "make_loaders"]

logger = logging.getLogger(__name__)


class Loader(Protocol):
    """What the loop needs of a loader (:class:`~nnabla_nas.data.DataLoader` is one): batches
    ``(x, y)`` of numpy arrays, their number, and the epoch that seeds shuffling/augmentation."""

    def __len__(self) -> int: ...

    def __iter__(self) -> Any: ...

    def set_epoch(self, epoch: int) -> None: ...


@dataclass
class DataBundle:
    """The loaders a run uses.

    Attributes:
        train: the weight split (searchers) or training part (Trainer), augmented.
        valid: evaluation loader for the validation metric (searchers: the architecture split;
            Trainer: the held-out validation part of the training set).
        test: evaluation loader on the test set.
        arch: the architecture split (searchers only), augmented like ``train``.
        config: how the loaders were made (the experiment file's keys: dataset, batch sizes,
            ...), written into ``config.json`` by runs started from Python.
    """

    train: Loader
    valid: Loader
    test: Loader
    arch: Loader | None = None
    config: dict[str, Any] = field(default_factory=dict)


def _batch_split(batch: int, mini: int, size: int, key: str, mini_key: str) -> int:
    from ..distributed import check_batch_split, process_mini_batch

    share = check_batch_split(batch, mini, size, key, mini_key)
    own = process_mini_batch(batch, mini, size)
    if own != mini:
        logger.info("%s %d over %d processes: %d examples each, in mini-batches of %d "
                    "(%s %d does not divide %d)", key, batch, size, share, own, mini_key, mini,
                    share)  # fmt: skip
    return share


def make_loaders(
    dataset: str,
    search: bool,
    *,
    splits: DatasetSplits | None = None,
    data_dir: str | None = None,
    input_shape: Sequence[int] | None = None,
    batch_size_train: int = 64,
    batch_size_valid: int = 64,
    mini_batch_train: int | None = None,
    mini_batch_valid: int | None = None,
    train_portion: float = 0.9,
    valid_portion: float = 0.1,
    cutout: int = 0,
    seed: int = 0,
    num_shards: int = 1,
    shard: int = 0,
) -> DataBundle:
    """The loaders of a run (see the module docstring), e.g. ``make_loaders("mnist", True)``.

    Args:
        dataset: a registered dataset name (read from ``data_dir``; ``mnist`` without one is the
            embedded digits).
        search: split the training set for a searcher (weights / architecture).
        splits: the dataset already loaded (:func:`~nnabla_nas.data.load_dataset`); None loads
            it.
        data_dir: where the dataset's files are.
        input_shape: ``(C, H, W)`` the images are adapted to (default: the dataset's).
        batch_size_train, batch_size_valid: examples per weight / architecture step.
        mini_batch_train, mini_batch_valid: examples per forward pass (None: whole batches).
        train_portion: search only: the fraction of the training set for the weights.
        valid_portion: training only: the fraction held out for validation.
        cutout: Cutout length of the training augmentation (0: off).
        seed: the split, shuffling and augmentation seed.
        num_shards, shard: data-parallel processes and this one's index.

    Raises:
        ConfigError: (naming the experiment file's key) a split with fewer examples than one
            batch, or batches that do not split over the processes.
    """
    from .base import DATASETS

    name = DATASETS.canonical(dataset, key="dataset")
    if splits is None:
        c, h, w = input_shape if input_shape is not None else (None, None, None)
        size = (h, w) if h is not None else None
        splits = load_dataset(name, data_dir, seed=seed, image_size=size, channels=c)
    _, h, w = tuple(splits.image_shape)
    portion = train_portion if search else 1.0 - valid_portion
    first, second = split_stratified(splits.train.labels, portion, seed=seed)
    if len(first) < batch_size_train:
        raise ConfigError(
            f"the train part has {len(first)} examples, fewer than one batch of {batch_size_train}",
            key="batch_size_train",
        )
    train_batch, arch_batch = batch_size_train, batch_size_valid
    eval_batch = -(-batch_size_valid // num_shards)
    if num_shards > 1:
        train_batch = _batch_split(train_batch, mini_batch_train or train_batch, num_shards,
                                   "batch_size_train", "mini_batch_train")  # fmt: skip
        if search:
            arch_batch = _batch_split(arch_batch, mini_batch_valid or arch_batch, num_shards,
                                      "batch_size_valid", "mini_batch_valid")  # fmt: skip
    shards = {"num_shards": num_shards, "shard": shard}
    evaluation = {"equal_shards": False, **shards}  # every example evaluated once
    augment = Augment(pad=max(2, h // 8) if h <= 64 else 0, crop=(h, w), flip=name != "mnist",
                      cutout=cutout, mean=splits.mean, std=splits.std)  # fmt: skip
    plain = Augment(mean=splits.mean, std=splits.std)
    train = DataLoader(splits.train, first, train_batch, shuffle=True, seed=seed,
                       transform=augment, drop_last=True, **shards)  # fmt: skip
    valid = DataLoader(splits.train, second, eval_batch, transform=plain, **evaluation)
    test = DataLoader(splits.test, None, eval_batch, transform=plain, **evaluation)
    arch = None
    if search:
        if len(second) < batch_size_valid:
            raise ConfigError(
                f"the architecture part has {len(second)} examples, fewer than one batch of "
                f"{batch_size_valid}; raise the dataset size or lower train_portion",
                key="batch_size_valid",
            )
        arch = DataLoader(splits.train, second, arch_batch, shuffle=True, seed=seed + 7,
                          transform=augment, drop_last=True, **shards)  # fmt: skip
    logger.info(
        "data %s (%s): %d train / %d %s / %d test examples",
        name, splits.source, len(first), len(second),
        "architecture" if search else "validation", len(splits.test),
    )  # fmt: skip
    config = {"dataset": name, "data_dir": data_dir, "input_shape": [int(v) for v in
              splits.image_shape], "batch_size_train": batch_size_train,
              "batch_size_valid": batch_size_valid, "train_portion": train_portion,
              "valid_portion": valid_portion, "cutout": cutout}  # fmt: skip
    return DataBundle(train=train, valid=valid, test=test, arch=arch, config=config)
