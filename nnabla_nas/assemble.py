"""Assembling components from a parsed experiment: the genotype, the model, the loaders, the
hardware constraints, the loop's options and the algorithm.

The only place (with the CLI) that reads :class:`~nnabla_nas.config.ExperimentConfig`: every
component below receives typed constructor arguments. Called by the CLI (and by tests and
benchmarks that build runs without it).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from .config import ExperimentConfig
from .data.bundle import DataBundle
from .errors import ConfigError
from .runner.options import LoopOptions

logger = logging.getLogger(__name__)


def load_network_genotype(cfg: ExperimentConfig) -> Any:
    """The genotype named by ``network.genotype`` (checked against the space), or None."""
    path = getattr(cfg.network.space, "genotype", None)
    if not path:
        return None
    from .genotype import load_genotype

    return load_genotype(path, expected_space=cfg.network.search_space, key="network.genotype")


def build_model(cfg: ExperimentConfig, genotype: Any, rng: np.random.RandomState) -> Any:
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
        "network %s: %d choices, %s weights",
        cfg.network.search_space,
        len(model.choices()),
        f"{model.num_params():,}",
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


def build_data(
    cfg: ExperimentConfig, splits: Any, search: bool, num_shards: int = 1, shard: int = 0
) -> DataBundle:
    """The loaders of a run (:func:`~nnabla_nas.data.make_loaders` with the experiment's keys).

    Raises:
        ConfigError: the network has fewer outputs than the dataset classes, the images are
            not ``input_shape``, or a split is smaller than a batch (naming the key).
    """
    from .data import make_loaders

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
    return make_loaders(
        cfg.dataset, search, splits=splits, data_dir=cfg.data_dir, input_shape=cfg.input_shape,
        batch_size_train=cfg.batch_size_train, batch_size_valid=cfg.batch_size_valid,
        mini_batch_train=cfg.mini_batch_train, mini_batch_valid=cfg.mini_batch_valid,
        train_portion=cfg.train_portion, valid_portion=cfg.valid_portion, cutout=cfg.cutout,
        seed=cfg.seed, num_shards=num_shards, shard=shard,
    )  # fmt: skip


def loop_options(cfg: ExperimentConfig, processes: int = 1) -> LoopOptions:
    """The loop's options of an experiment run by ``processes`` data-parallel processes (the
    mini-batches are each process's: :func:`~nnabla_nas.distributed.process_mini_batch`)."""
    from .distributed import process_mini_batch

    mini = {}
    for part in ("train", "valid"):
        batch, given = getattr(cfg, f"batch_size_{part}"), getattr(cfg, f"mini_batch_{part}")
        if processes > 1 and given is not None and batch % processes == 0:
            given = process_mini_batch(batch, given, processes)
        mini[part] = given
    return LoopOptions(
        epochs=cfg.epoch,
        warmup=cfg.warmup,
        mini_batch_train=mini["train"],
        mini_batch_valid=mini["valid"],
        print_frequency=cfg.print_frequency,
        checkpoint_every=cfg.checkpoint_every,
        aux_weight=cfg.aux_weight,
        input_shape=tuple(cfg.input_shape),
        eval_every=cfg.eval_every,
        eval_examples=cfg.eval_examples,
        test_at_end=cfg.test_at_end,
    )


def build_algorithm(
    cfg: ExperimentConfig,
    algorithm: type,
    model: Any,
    data: DataBundle,
    output: Any,
    options: Any,
    regularizers: dict[str, Any],
    comm: Any = None,
) -> Any:
    """The algorithm of an experiment (``-a``), ready to :meth:`run`."""
    return algorithm(
        model,
        data,
        output,
        options=options,
        loop=loop_options(cfg, comm.size if comm is not None else 1),
        optimizers=cfg.optimizer,
        regularizers=regularizers,
        seed=cfg.seed,
        comm=comm,
    )
