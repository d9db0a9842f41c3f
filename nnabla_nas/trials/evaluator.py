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

The evaluators
    ``table`` (:class:`~nnabla_nas.trials.table.TableEvaluator`)
        A lookup in a benchmark table, for testing strategies in seconds.
    ``train`` (:class:`~nnabla_nas.trials.train.TrainEvaluator`)
        Each trial builds the child network of its architecture as a FIXED network (the space
        built from the genotype), trains it from scratch for ``trial_epochs`` with the
        experiment's optimizers through the :class:`~nnabla_nas.runner.trainer.Trainer`, in
        its own folder ``trials/<trial>/``, and reports the validation figures; the test
        accuracy of the best trial is reported at the end only (:meth:`Evaluator.report`).

    The ``supernet`` evaluator (inherited weights of a one-shot supernet with the batch-norm
    recalibration of Guo et al., "Single Path One-Shot NAS", ECCV 2020) waits for the
    recalibration piece of the one-shot searchers.

Building one
    From Python, with its constructor. From the experiment file (the ``trials.evaluator``
    section: ``{"name": "train", "trial_epochs": 2}``), the command line parses the section's
    keys with the class's :attr:`Evaluator.Config` and calls :meth:`Evaluator.from_setting`
    with them and the experiment's parts (:class:`~nnabla_nas.trials.setting.TrialSetting`).
"""

from __future__ import annotations

import abc
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import ConfigError
from ..parsing import parse_dataclass, to_dict
from .record import TrialRecord, TrialRequest
from .space import SearchSpace

if TYPE_CHECKING:  # pragma: no cover
    from .setting import TrialSetting

__all__ = ["Evaluator", "EvaluatorSection", "NoOptions", "parse_evaluator_section"]


@dataclass
class NoOptions:
    """An evaluator without keys of its own in ``trials.evaluator``."""


class Evaluator(abc.ABC):
    """Base of the evaluators (see the module docstring)."""

    #: The evaluator's registry name (``"table"``, ``"train"``).
    kind: ClassVar[str] = ""
    #: Its keys in the experiment file's ``trials.evaluator`` section (besides ``name``).
    Config: ClassVar[type] = NoOptions

    @classmethod
    def from_setting(cls, config: Any, setting: TrialSetting) -> Evaluator:
        """The evaluator of an experiment file: ``config`` (its :attr:`Config`, parsed) and the
        experiment's parts (what the command line assembled).

        Raises:
            ConfigError: the keys do not fit (naming ``trials.evaluator.<key>``).
        """
        raise NotImplementedError(f"the {cls.kind} evaluator is not built from a file")

    @property
    @abc.abstractmethod
    def metric(self) -> str:
        """The figure the search maximises (a key of what :meth:`evaluate` returns)."""

    @abc.abstractmethod
    def metrics(self) -> list[str]:
        """The numeric figures :meth:`evaluate` returns (the metric among them)."""

    def check(self, space: SearchSpace) -> None:  # noqa: B027 - optional hook
        """Refuses a space the evaluator cannot score (``ConfigError`` naming the key).

        Called once in the driver before anything runs or is written.
        """

    def use_output(self, folder: Path) -> None:  # noqa: B027 - optional hook
        """Called in the driver with the experiment's output folder, after :meth:`check` and
        before any trial is submitted (an evaluator that writes files per trial keeps it)."""

    def load(self) -> Any:
        """Loads what trials need (data, a table, weights), once per worker process."""
        return None

    @abc.abstractmethod
    def evaluate(self, request: TrialRequest, resources: Any) -> dict[str, Any]:
        """Scores ``request.architecture``; ``resources`` is what :meth:`load` returned."""

    def report(self, best: TrialRecord) -> dict[str, Any]:
        """Figures of the experiment's best trial that no trial's score may depend on (e.g. its
        test accuracy), computed in the driver once the search is over and written into
        ``results.json`` (``best.final``). Nothing by default."""
        return {}

    def describe(self) -> dict[str, Any]:
        """A JSON description of the evaluator's settings (what a resumed experiment must
        match); also the key of the per-process resource cache."""
        return {"kind": self.kind}

    def cache_key(self) -> str:
        """The key under which a worker process keeps this evaluator's resources."""
        return json.dumps({"class": type(self).__qualname__, **self.describe()}, sort_keys=True)


@dataclass
class EvaluatorSection:
    """The experiment file's ``trials.evaluator`` section, parsed: ``{"name": ..., keys}``.

    Attributes:
        name: the evaluator's registry name.
        options: its keys (the class's :attr:`Evaluator.Config`).
    """

    name: str
    options: Any

    def to_dict(self) -> dict[str, Any]:
        """The section as the experiment file holds it."""
        return {"name": self.name, **to_dict(self.options)}

    def build(self, setting: TrialSetting) -> Evaluator:
        """The evaluator, from its keys and the experiment's parts."""
        from . import EVALUATORS

        return EVALUATORS.get(self.name).from_setting(self.options, setting)


def parse_evaluator_section(data: Any, path: str = "trials.evaluator") -> EvaluatorSection:
    """Parses ``trials.evaluator``: its ``name``, then the evaluator's own keys strictly.

    Raises:
        ConfigError: not an object, no or an unknown ``name``, a bad key (naming its path).
    """
    from . import EVALUATORS

    if not isinstance(data, dict):
        raise ConfigError(f"expected an object like {{\"name\": \"train\", ...}}, got {data!r}",
                          path)  # fmt: skip
    if "name" not in data:
        raise ConfigError(f"missing required key; valid evaluators: {', '.join(EVALUATORS)}",
                          f"{path}.name")  # fmt: skip
    name = EVALUATORS.canonical(data["name"], key=f"{path}.name")
    rest = {k: v for k, v in data.items() if k != "name"}
    return EvaluatorSection(name, parse_dataclass(EVALUATORS.get(name).Config, rest, path))
