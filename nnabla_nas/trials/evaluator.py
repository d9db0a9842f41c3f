"""The evaluator interface: how one trial (one architecture) is scored on a worker.

Life cycle
    The driver builds the evaluator and calls :meth:`Evaluator.check` with the search space
    before anything runs or is written (an evaluator that does not fit the space is a
    ``ConfigError`` naming the key). The evaluator object is then pickled to the Dask workers
    with every trial. On each worker PROCESS, the first trial calls :meth:`Evaluator.load`
    once; what it returns (the resources: a benchmark table, datasets, a supernet's weights)
    is kept in that process (:func:`nnabla_nas.trials.worker.worker_resources`) and handed to
    :meth:`Evaluator.evaluate` for every later trial there. A restarted worker loads again.
    So an evaluator keeps only small, picklable settings (paths, options) in its attributes and
    does the heavy loading in ``load``.

    ``evaluate(request, resources)`` returns the trial's figures, ``{name: value}`` (JSON
    values; numbers are what TensorBoard, the objective and the plots read), among them
    :attr:`Evaluator.metric`, the one maximised. An exception is recorded as the trial's error
    (the experiment goes on); a dead worker is retried by the driver.

The evaluators of the second part (on the new loop API; not built on ``nnabla_nas.runner``)
    ``train`` (``TrainEvaluator``)
        Options: the experiment's dataset section, ``trial_epochs``, the optimizer section, the
        space's configuration. ``load``: the dataset (train and validation splits of the search
        split, and the test set), once per worker. ``evaluate``: builds the child network of
        ``request.architecture`` as a FIXED network (the space built from the genotype
        ``space.genotype(architecture)``, not a supernet under ``use_architecture``), trains it
        from scratch for ``trial_epochs`` epochs with the experiment's optimizers, seeding
        nnabla and the data order with ``request.seed``; returns ``valid_acc`` (the metric),
        ``valid_loss``, ``train_loss``, ``epochs``, and the child's ``params``. The test
        accuracy is evaluated only for the best trial at the end of the experiment (a driver
        step, so that test data never steers the search).
    ``supernet`` (``SupernetEvaluator``)
        Options: the supernet's configuration and its checkpoint or ``weights.h5`` (from a
        one-shot search, e.g. SPOS-style uniform sampling), ``bn_batches`` (default 10).
        ``load``: the supernet with its weights, and the validation data. ``evaluate``: under
        ``nnabla_nas.module.use_architecture(model, request.architecture)``, resets the batch
        normalization statistics, recomputes them over ``bn_batches`` training batches in
        training mode without updates (the BN recalibration of Guo et al., "Single Path One-Shot
        NAS", ECCV 2020), then scores the validation set: ``valid_acc`` (the metric),
        ``valid_loss``. The weights are restored between trials (the trial only reads them).

    The ``table`` evaluator (:mod:`nnabla_nas.trials.table`) is the first implementation.
"""

from __future__ import annotations

import abc
import json
from typing import Any, ClassVar

from .record import TrialRequest
from .space import SearchSpace

__all__ = ["Evaluator"]


class Evaluator(abc.ABC):
    """Base of the evaluators (see the module docstring)."""

    #: The evaluator's registry name (``"table"``, ``"train"``, ``"supernet"``).
    kind: ClassVar[str] = ""

    @property
    @abc.abstractmethod
    def metric(self) -> str:
        """The figure the search maximises (a key of what :meth:`evaluate` returns)."""

    @abc.abstractmethod
    def metrics(self) -> list[str]:
        """The numeric figures :meth:`evaluate` returns (the metric among them)."""

    def check(self, space: SearchSpace) -> None:  # noqa: B027 - optional hook
        """Refuses a space the evaluator cannot score (``ConfigError`` naming the key).

        Called once in the driver before anything runs.
        """

    def load(self) -> Any:
        """Loads what trials need (data, a table, weights), once per worker process."""
        return None

    @abc.abstractmethod
    def evaluate(self, request: TrialRequest, resources: Any) -> dict[str, Any]:
        """Scores ``request.architecture``; ``resources`` is what :meth:`load` returned."""

    def describe(self) -> dict[str, Any]:
        """A JSON description of the evaluator's settings (what a resumed experiment must
        match); also the key of the per-process resource cache."""
        return {"kind": self.kind}

    def cache_key(self) -> str:
        """The key under which a worker process keeps this evaluator's resources."""
        return json.dumps({"class": type(self).__qualname__, **self.describe()}, sort_keys=True)
