"""A toy search space with a known best candidate, fixed data and a searcher factory."""

from __future__ import annotations

import math
from typing import Any

import nnabla.functions as F
import numpy as np

from nnabla_nas.contrib.model import Model
from nnabla_nas.module import Lambda, Linear, MixedOp, Zero
from nnabla_nas.runner import DataBundle, LoopOptions
from nnabla_nas.runner.searcher.proxyless import ProxylessNasConfig, ProxylessNasSearcher

IN, HIDDEN, CLASSES = 8, 8, 3
NAMES = ["zero", "mean", "linear"]


def _mean_broadcast(x):
    return F.broadcast(F.mean(x, axis=1, keepdims=True), x.shape)


class ToySpace(Model):
    """One choice among ``zero`` (no information), ``mean`` (the per-example mean of the
    features, little information) and ``linear`` (a trainable layer that can fit the data),
    followed by a trainable linear classifier. ``linear`` is the best candidate."""

    space_name = "toy"

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.RandomState(seed)
        ops = [Zero(), Lambda(_mean_broadcast), Linear(IN, HIDDEN, rng=rng)]
        self.choice = MixedOp(ops, mode="full", names=NAMES)
        self.head = Linear(HIDDEN, CLASSES, rng=rng)

    def call(self, x):
        return self.head(self.choice(x))


class ArrayLoader:
    """The part of DataLoader the runner uses, over fixed numpy batches (no shuffling)."""

    def __init__(self, x: np.ndarray, y: np.ndarray, batch_size: int) -> None:
        self.x, self.y, self.batch_size = x, y, batch_size

    def __len__(self) -> int:
        return math.ceil(len(self.x) / self.batch_size)

    def __iter__(self):
        for i in range(0, len(self.x), self.batch_size):
            yield self.x[i : i + self.batch_size], self.y[i : i + self.batch_size]

    def set_epoch(self, epoch: int) -> None:
        pass


def toy_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` examples of a linearly separable 3-class problem, ``y = argmax(x @ W)`` with one
    fixed ``W`` (``seed`` draws only ``x``)."""
    w = np.random.RandomState(1234).randn(IN, CLASSES)
    x = np.random.RandomState(seed).randn(n, IN).astype(np.float32)
    y = np.argmax(x @ w, axis=1).astype(np.int32)[:, None]
    return x, y


def make_options(epoch: int = 1, mini: int = 8, warmup: int = 0, **extra: Any) -> LoopOptions:
    """The loop's options of a toy run."""
    return LoopOptions(epochs=epoch, warmup=warmup, mini_batch_train=mini, mini_batch_valid=mini,
                       print_frequency=1000, input_shape=(IN,), **extra)  # fmt: skip


def make_optimizers(
    train: dict[str, Any] | None = None, valid: dict[str, Any] | None = None
) -> dict[str, Any]:
    """The optimizer sections: by default Momentum(lr=0.1) for the weights, Adam(alpha=0.05)
    for the logits."""
    return {
        "train": train or {"solver": {"name": "Momentum", "lr": 0.1}},
        "valid": valid or {"solver": {"name": "Adam", "alpha": 0.05}},
    }


def make_searcher(
    model: Model,
    output: str,
    estimator: str = "gradient",
    seed: int = 0,
    num_samples: int = 4,
    baseline_decay: float = 0.9,
    epoch: int = 1,
    batch: int = 16,
    mini: int = 8,
    train: dict[str, Any] | None = None,
    valid: dict[str, Any] | None = None,
    regularizers: dict[str, Any] | None = None,
    **keys: Any,
) -> ProxylessNasSearcher:
    """A ProxylessNasSearcher on ``model`` with the toy data, set up (its loop built); ``keys``:
    other searcher keys."""
    options = ProxylessNasConfig(estimator, num_samples, baseline_decay, **keys)
    options.check()
    searcher = ProxylessNasSearcher(
        model, make_data(batch), output, options=options, loop=make_options(epoch, mini),
        optimizers=make_optimizers(train, valid), regularizers=regularizers, seed=seed,
    )  # fmt: skip
    searcher.loop()  # builds the loop: the searcher is set up
    return searcher


def make_data(batch: int = 16) -> DataBundle:
    """64 training examples for the weights, 32 others for the architecture and evaluation."""
    x, y = toy_data(64, seed=0)
    xa, ya = toy_data(32, seed=1)
    return DataBundle(
        train=ArrayLoader(x, y, batch),
        valid=ArrayLoader(xa, ya, batch),
        test=ArrayLoader(xa, ya, batch),
        arch=ArrayLoader(xa, ya, batch),
    )
