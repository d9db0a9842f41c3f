"""Batch-normalisation statistics of a supernet: kept unchanged around work that must not touch
them, and recalibrated for one architecture before it is evaluated.

In a weight-sharing supernet a batch normalisation's running statistics average the
activations of every path trained through it, so they fit no single architecture: evaluating a
sampled architecture with them understates it, and unevenly across architectures. Guo et al.
("Single Path One-Shot Neural Architecture Search with Uniform Sampling", ECCV 2020, section
3.3) therefore recompute them for each candidate on a few training batches before scoring it,
and FairNAS (Chu et al., ICCV 2021) does the same. :func:`recalibrated` does this and gives the
supernet's statistics back afterwards:

1. every running mean and variance is saved;
2. they are reset (mean 0, variance 1) and recomputed over the given batches, forward only, for
   the network the caller builds (e.g. inside ``use_architecture(model, arch)``): every module
   in inference mode (no dropout, no drop-path) except the batch normalisations, which use the
   batch statistics and update their running ones with the decay ``(t - 1) / t`` at the ``t``-th
   (mini-)batch, so that the result is the exact mean of the per-batch statistics (nnabla's
   running variance takes the unbiased batch variance) instead of an exponential average
   dominated by the last batches;
3. inside the block the network has these statistics; on exit the saved ones are restored
   exactly (also after an error).

A batch normalisation whose ``batch_stat`` is fixed to False never updates its statistics: it
is left as it is. With data-parallel processes, hand every process the same batches (e.g.
gathered with :meth:`~nnabla_nas.runner.steps.Steps.whole_batch`): the recalibrated statistics
are then identical on every rank without communication.

:func:`preserved_statistics` is step 1 and 3 alone: forwards in training mode inside it (e.g.
the rewards of a controller step) leave the statistics as they were.
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from typing import Any, Iterable, Iterator, Sequence

import nnabla as nn
import nnabla.functions as F
import numpy as np

from ...module import BatchNormalization, Module

__all__ = [
    "batch_norms",
    "preserved_statistics",
    "recalibrate",
    "recalibrated",
    "restore_statistics",
    "statistics",
]

logger = logging.getLogger(__name__)


def batch_norms(model: Module) -> OrderedDict[str, BatchNormalization]:
    """``path -> BatchNormalization`` of every batch normalisation under ``model`` (once each),
    in module order."""
    return OrderedDict((p, m) for p, m in model.get_modules() if isinstance(m, BatchNormalization))


def statistics(model: Module) -> OrderedDict[str, np.ndarray]:
    """A copy of every running statistic: ``"<path>/_mean"`` and ``"<path>/_var"`` -> array."""
    out: OrderedDict[str, np.ndarray] = OrderedDict()
    for path, bn in batch_norms(model).items():
        prefix = f"{path}/" if path else ""
        out[f"{prefix}_mean"] = np.array(bn._mean.d, copy=True)
        out[f"{prefix}_var"] = np.array(bn._var.d, copy=True)
    return out


def restore_statistics(model: Module, saved: dict[str, np.ndarray]) -> None:
    """Sets the running statistics back to a :func:`statistics` copy."""
    for path, bn in batch_norms(model).items():
        prefix = f"{path}/" if path else ""
        bn._mean.d = saved[f"{prefix}_mean"]
        bn._var.d = saved[f"{prefix}_var"]


@contextlib.contextmanager
def preserved_statistics(model: Module) -> Iterator[None]:
    """The running statistics after the block are those before it."""
    saved = statistics(model)
    try:
        yield
    finally:
        restore_statistics(model, saved)


def _mini_batches(batches: Iterable[Any], mini: int | None) -> Iterator[np.ndarray]:
    for batch in batches:
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        step = mini or len(x)
        for i in range(0, len(x), step):
            yield np.asarray(x[i : i + step], np.float32)


def recalibrate(model: Module, batches: Iterable[Any], mini: int | None = None) -> int:
    """Replaces the running statistics by their mean over ``batches`` (see the module
    docstring, step 2), for the network ``model`` builds now; returns the mini-batches used.

    Args:
        model: the network (its modules' ``training`` flags are restored afterwards).
        batches: ``(x, y)`` pairs or input arrays ``x`` (NCHW float32); ``y`` is not used.
        mini: examples per forward pass (None: whole batches); each pass is one batch of the
            mean.

    Raises:
        ValueError: no batch.
    """
    norms = [bn for bn in batch_norms(model).values() if bn._batch_stat is not False]
    flags = [(m, m.training) for _, m in model.get_modules()]
    decays = [(bn, bn._decay_rate) for bn in norms]
    for bn in norms:
        bn._mean.d = 0.0
        bn._var.d = 1.0
    model.apply(training=False)
    for bn in norms:
        bn.training = True
    used = 0
    try:
        for x in _mini_batches(batches, mini):
            used += 1
            for bn in norms:  # read when the graph is built: one graph per batch
                bn._decay_rate = (used - 1) / used
            inputs = nn.Variable.from_numpy_array(x)
            outputs = model(inputs)
            outputs = outputs if isinstance(outputs, tuple) else (outputs,)
            sink = F.sink(*outputs) if len(outputs) > 1 else outputs[0]
            sink.forward(clear_buffer=True)
    finally:
        for bn, decay in decays:
            bn._decay_rate = decay
        for module, flag in flags:
            module.__dict__["_training"] = flag
    if used == 0:
        raise ValueError("batch-norm recalibration needs at least one batch")
    return used


@contextlib.contextmanager
def recalibrated(model: Module, batches: Sequence[Any], mini: int | None = None) -> Iterator[None]:
    """Inside the block, the running statistics are recalibrated on ``batches`` for the network
    built now (:func:`recalibrate`); on exit the supernet's come back exactly.

    Example::

        with use_architecture(model, arch), recalibrated(model, train_batches[:10]):
            ...  # evaluate arch in inference mode
    """
    with preserved_statistics(model):
        recalibrate(model, batches, mini)
        yield
