"""A toy space with a known accuracy/cost trade-off, for the one-shot searchers (ENAS, random
search): ``wide`` (two linear layers) fits the data but costs 512 MACs more than the two others,
``mean`` keeps a little information, ``zero`` none. With no hardware term the best architecture
is ``wide``; with the FLOPs in the reward at a weight of 0.5 it is ``mean`` (the accuracy of
``wide`` is about twice that of ``mean``, its cost 22 times: ``2 < sqrt(22)``)."""

from __future__ import annotations

import shutil
from typing import Any

import nnabla as nn
import numpy as np
from searcher_toy import (
    CLASSES,
    HIDDEN,
    IN,
    _mean_broadcast,
    make_data,
    make_optimizers,
    make_options,
)

from nnabla_nas.contrib.model import Model
from nnabla_nas.estimator import FlopsEstimator
from nnabla_nas.estimator.regularizer import Regularizer
from nnabla_nas.module import Lambda, Linear, MixedOp, Sequential, Zero
from nnabla_nas.runner import ALGORITHMS

NAMES = ["zero", "mean", "wide"]
#: The FLOPs estimate (MACs) of each candidate's architecture: the head's 24 plus the choice's.
MACS = {"zero": 24.0, "mean": 24.0, "wide": 24.0 + 8 * 32 + 32 * 8}


class CostToy(Model):
    """choice(zero, mean, wide) -> linear head (see the module docstring)."""

    space_name = "toy"

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.RandomState(seed)
        wide = Sequential(Linear(IN, 32, rng=rng), Linear(32, HIDDEN, rng=rng))
        self.choice = MixedOp([Zero(), Lambda(_mean_broadcast), wide], names=NAMES)
        self.head = Linear(HIDDEN, CLASSES, rng=rng)

    def call(self, x):
        return self.head(self.choice(x))


def flops_regularizer(weight: float, **kw: Any) -> dict[str, Regularizer]:
    """A ``latency`` constraint measured in MACs (any estimator drives the reward)."""
    return {"latency": Regularizer("latency", FlopsEstimator((IN,)), bound=100.0, weight=weight,
                                   **kw)}  # fmt: skip


def searcher(name: str, output, options: dict, epoch: int = 2, warmup: int = 2, seed: int = 0,
             regularizers=None, model=None) -> Any:  # fmt: skip
    """A searcher of ``name`` on the toy space (the output folder emptied first)."""
    shutil.rmtree(output, ignore_errors=True)
    nn.clear_parameters()
    return ALGORITHMS.get(name)(
        model if model is not None else CostToy(seed), make_data(16), output, options=options,
        loop=make_options(epoch=epoch, warmup=warmup),
        optimizers=make_optimizers(valid={"solver": {"name": "Adam", "alpha": 0.05}}),
        regularizers=regularizers, seed=seed,
    )  # fmt: skip
