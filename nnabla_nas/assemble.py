"""Assembling components from a parsed experiment: the genotype, the model and the loaders.

Called by the CLI (and by tests and benchmarks that build runs without it).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .config import ExperimentConfig
from .errors import ConfigError
from .runner.runner import DataBundle

logger = logging.getLogger(__name__)


def load_network_genotype(cfg: ExperimentConfig) -> Any:
    """The genotype named by ``network.genotype`` (checked against the space), or None."""
    path = getattr(cfg.network.space, "genotype", None)
    if not path:
        return None
    from .genotype import load_genotype

    return load_genotype(path, expected_space=cfg.network.search_space, key="network.genotype")


def build_model(
    cfg: ExperimentConfig, genotype: Any, search: bool, rng: np.random.RandomState
) -> Any:
    """The network of ``cfg.network`` (the fixed network when a genotype is given)."""
    from .contrib import SPACES

    space = SPACES.get(cfg.network.search_space)
    try:
        model = space(cfg.network.space, genotype=genotype, rng=rng)
    except ConfigError as err:
        if err.key and not err.key.startswith("network."):
            raise type(err)(err.message, key=f"network.{err.key}") from None
        raise
    logger.info(
        "network %s: %d choices, %d weights",
        cfg.network.search_space,
        len(model.choices()),
        model.num_params(),
    )
    return model


def build_regularizers(cfg: ExperimentConfig) -> dict[str, Any]:
    """The hardware constraints of the ``regularizer`` section, label -> Regularizer.

    Estimators that read files (a latency lookup table) read them here: a bad file is a
    ConfigError naming ``regularizer.<label>.<key>``.
    """
    from .estimator.regularizer import build_regularizer

    regularizers = {}
    for label, section in cfg.regularizer.items():
        try:
            regularizers[label] = build_regularizer(label, section, cfg.input_shape)
        except ConfigError as err:
            prefix = f"regularizer.{label}"
            if err.key and not err.key.startswith(prefix):
                raise type(err)(err.message, key=f"{prefix}.{err.key}") from None
            raise
        logger.info("regularizer %s: %r", label, regularizers[label])
    return regularizers


def load_data(cfg: ExperimentConfig) -> Any:
    """Loads the dataset (errors name the folder and the expected layout)."""
    from .data import load_dataset

    c, h, w = cfg.input_shape
    return load_dataset(cfg.dataset, cfg.data_dir, seed=cfg.seed, image_size=(h, w), channels=c)


def _num_classes(cfg: ExperimentConfig) -> int | None:
    space = cfg.network.space
    for name in ("num_classes", "n_classes"):
        if hasattr(space, name):
            return int(getattr(space, name))
    return None


def train_augment(cfg: ExperimentConfig, splits: Any) -> Any:
    """The training augmentation: pad-and-crop, flip (not for digits), Cutout, normalisation."""
    from .data import Augment

    _, h, w = cfg.input_shape
    return Augment(
        pad=max(2, h // 8) if h <= 64 else 0,
        crop=(h, w),
        flip=cfg.dataset not in ("mnist",),
        cutout=cfg.cutout,
        mean=splits.mean,
        std=splits.std,
    )


def build_data(
    cfg: ExperimentConfig, splits: Any, search: bool, num_shards: int = 1, shard: int = 0
) -> DataBundle:
    """The loaders of a run.

    Search: the training set is split (stratified, by ``train_portion``) into a weight part and a
    disjoint architecture part; validation metrics are measured on the architecture part.
    Training: ``valid_portion`` of the training set is held out for validation (choosing the best
    epoch); the test set is only reported.

    Data-parallel processes (``num_shards`` of them, this one ``shard``; docs/distributed.rst):
    every process takes ``batch_size_train / num_shards`` examples of each weight batch (and
    ``batch_size_valid / num_shards`` of each architecture batch) from its shard, so the batch
    sizes stay those of the whole step; evaluation shards use every example once.

    Raises:
        ConfigError: with several processes, at ``batch_size_train`` (``batch_size_valid`` when
            searching) when the batch does not split into whole mini-batches on each process.
    """
    from .data import Augment, DataLoader, split_stratified
    from .distributed import check_batch_split

    n_classes = _num_classes(cfg)
    if n_classes is not None and n_classes < splits.num_classes:
        raise ConfigError(
            f"the network has {n_classes} outputs but {cfg.dataset} has {splits.num_classes} "
            "classes",
            key="network.num_classes",
        )
    if tuple(cfg.input_shape) != tuple(splits.image_shape):
        raise ConfigError(
            f"{cfg.dataset} gives images of shape {list(splits.image_shape)}, "
            f"not {cfg.input_shape}",
            key="input_shape",
        )
    portion = cfg.train_portion if search else 1.0 - cfg.valid_portion
    first, second = split_stratified(splits.train.labels, portion, seed=cfg.seed)
    for name, part, batch in (("train", first, cfg.batch_size_train),
                              ("valid", second, cfg.batch_size_valid)):  # fmt: skip
        if len(part) < batch and name == "train":
            raise ConfigError(
                f"the {name} part has {len(part)} examples, fewer than one batch of {batch}",
                key=f"batch_size_{name}",
            )
    train_batch, arch_batch = cfg.batch_size_train, cfg.batch_size_valid
    eval_batch = -(-cfg.batch_size_valid // num_shards)
    if num_shards > 1:
        mini = cfg.mini_batch_train or train_batch
        train_batch = check_batch_split(
            train_batch, mini, num_shards, "batch_size_train", "mini_batch_train"
        )
        if search:
            mini = cfg.mini_batch_valid or arch_batch
            arch_batch = check_batch_split(
                arch_batch, mini, num_shards, "batch_size_valid", "mini_batch_valid"
            )
    shards = {"num_shards": num_shards, "shard": shard}
    evaluation = {"equal_shards": False, **shards}  # every example evaluated once
    augment = train_augment(cfg, splits)
    plain = Augment(mean=splits.mean, std=splits.std)
    train = DataLoader(splits.train, first, train_batch, shuffle=True, seed=cfg.seed,
                       transform=augment, drop_last=True, **shards)  # fmt: skip
    valid = DataLoader(splits.train, second, eval_batch, transform=plain, **evaluation)
    test = DataLoader(splits.test, None, eval_batch, transform=plain, **evaluation)
    arch = None
    if search:
        if len(second) < cfg.batch_size_valid:
            raise ConfigError(
                f"the architecture part has {len(second)} examples, fewer than one batch of "
                f"{cfg.batch_size_valid}; raise the dataset size or lower train_portion",
                key="batch_size_valid",
            )
        arch = DataLoader(splits.train, second, arch_batch, shuffle=True,
                          seed=cfg.seed + 7, transform=augment, drop_last=True,
                          **shards)  # fmt: skip
    logger.info(
        "data %s (%s): %d train / %d %s / %d test examples",
        cfg.dataset, splits.source, len(first), len(second),
        "architecture" if search else "validation", len(splits.test),
    )  # fmt: skip
    return DataBundle(train=train, valid=valid, test=test, arch=arch)
