"""Trainer: trains a fixed network (a searched genotype or a reference network) from scratch."""

from __future__ import annotations

from .runner import Runner


class Trainer(Runner):
    """Trains every weight of a fixed network with the ``train`` optimizer.

    The loop, accumulation, clipping, evaluation and outputs are the shared :class:`Runner`'s;
    the best validation epoch's weights are kept in ``weights.h5`` and the test metrics of every
    epoch are reported in ``results.json``.
    """

    search = False
