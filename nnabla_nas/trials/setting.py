"""What an evaluator is built from: the experiment's space, data, loop and optimizers, typed.

The command line assembles a :class:`TrialSetting` from the experiment file
(``nnabla_nas/cli/trials.py``); an evaluator class takes what it needs from it in
:meth:`~nnabla_nas.trials.evaluator.Evaluator.from_setting` (the ``train`` evaluator: all of it;
the ``table`` evaluator: nothing). Python users build an evaluator directly instead.

Everything here is a small picklable value: evaluators travel to the Dask workers with every
trial, and do their heavy loading there (:meth:`DataSetting.loaders`, once per worker process).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # pragma: no cover - the table evaluator's workers never import nnabla
    from ..runner.options import DataBundle, LoopOptions

__all__ = ["DataSetting", "TrialSetting"]


@dataclass(frozen=True)
class DataSetting:
    """The loaders of a trial, as :func:`~nnabla_nas.data.make_loaders` makes them.

    Trials train on the search split: ``train_portion`` of the training set for the weights,
    the rest (disjoint, stratified) for the validation figures the strategy sees; the test set
    is never part of a trial's score. ``seed`` (the experiment's) draws the split, the batch
    order and the augmentation: every trial sees the same examples in the same order, so their
    validation accuracies compare on the same data.

    Attributes:
        dataset: the registered dataset name.
        data_dir: where its files are (None: the default; ``mnist``: the embedded digits).
        input_shape: ``(C, H, W)`` of the images.
        batch_size_train: examples per weight update.
        batch_size_valid: examples per evaluation batch.
        mini_batch_train: examples per forward pass of a weight update (None: whole batches).
        mini_batch_valid: the same for evaluation.
        train_portion: the fraction of the training set a trial trains on.
        cutout: Cutout length of the training augmentation (0: off).
        seed: the split, order and augmentation seed.
    """

    dataset: str
    data_dir: str | None = None
    input_shape: tuple[int, ...] = (3, 32, 32)
    batch_size_train: int = 64
    batch_size_valid: int = 64
    mini_batch_train: int | None = None
    mini_batch_valid: int | None = None
    train_portion: float = 0.9
    cutout: int = 0
    seed: int = 0

    def splits(self) -> Any:
        """Loads the dataset (:func:`~nnabla_nas.data.load_dataset`: the train and test sets,
        the number of classes).

        Raises:
            ConfigError: the dataset's files are missing (naming the folder and the layout).
        """
        from ..data import load_dataset

        c, h, w = self.input_shape
        return load_dataset(self.dataset, self.data_dir, seed=self.seed, image_size=(h, w),
                            channels=c)  # fmt: skip

    def loaders(self, splits: Any = None) -> DataBundle:
        """The loaders of the search split (``splits``: the dataset already loaded).

        Raises:
            ConfigError: the dataset is missing or a split is smaller than a batch (naming
                the key).
        """
        from ..data import make_loaders

        return make_loaders(
            self.dataset, True, splits=splits if splits is not None else self.splits(),
            data_dir=self.data_dir, input_shape=self.input_shape,
            batch_size_train=self.batch_size_train, batch_size_valid=self.batch_size_valid,
            mini_batch_train=self.mini_batch_train, mini_batch_valid=self.mini_batch_valid,
            train_portion=self.train_portion, cutout=self.cutout, seed=self.seed,
        )  # fmt: skip

    def describe(self) -> dict[str, Any]:
        """The settings that make the data (``data_dir`` left out: where the same data lives
        may change between a run and its resume)."""
        out = dataclasses.asdict(self)
        del out["data_dir"]
        out["input_shape"] = list(self.input_shape)
        return out


@dataclass
class TrialSetting:
    """The parts of an experiment an evaluator may be built from.

    Attributes:
        space_name: the search space's registry name (``network.search_space``).
        space_config: the space's parsed ``Config`` (``network``).
        data: how the trials' loaders are made.
        loop: the loop's options of a trial (its ``epochs`` are the evaluator's to set; None:
            the defaults).
        optimizers: the experiment's ``optimizer`` sections, ``name -> OptimizerConfig``.
        context: nnabla's extension (``cpu``, ``cudnn``; None: the default).
        type_config: ``float`` or ``half`` (None: the default).
        device_id: the GPU of the extension (None: 0).
    """

    space_name: str
    space_config: Any
    data: DataSetting
    loop: LoopOptions | None = None
    optimizers: dict[str, Any] = field(default_factory=dict)
    context: str | None = None
    type_config: str | None = None
    device_id: int | None = None
