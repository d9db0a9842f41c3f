"""Trainer: trains a fixed network (a searched genotype or a reference network) from scratch."""

from __future__ import annotations

from .algorithm import Algorithm


class Trainer(Algorithm):
    """Trains every weight of a fixed network with the ``train`` optimizer: the loop with no
    searcher.

    The best validation epoch's weights are kept in ``weights.h5`` and the test metrics of every
    epoch are reported in ``results.json``. See :class:`~nnabla_nas.runner.algorithm.Algorithm`
    for the arguments.
    """

    search = False
