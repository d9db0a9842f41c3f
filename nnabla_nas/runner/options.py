"""What a run is given besides the model and the loaders (:class:`~nnabla_nas.data.DataBundle`):
the loop's options (:class:`LoopOptions`), as a typed object (the CLI builds it from the
experiment file through :mod:`nnabla_nas.assemble`; Python users build it directly)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

from ..data.bundle import DataBundle, Loader
from ..errors import ConfigError

__all__ = ["DataBundle", "Loader", "LoopOptions", "NoOptions"]


@dataclass
class NoOptions:
    """An algorithm without options of its own (the ``searcher`` section must be empty)."""


@dataclass
class LoopOptions:
    """The loop's settings (the experiment file's top-level keys of the same names).

    Attributes:
        epochs: epochs after warm-up (``epoch``).
        warmup: warm-up epochs (searchers: weights only; the ``warmup`` optimizer).
        mini_batch_train: examples per forward pass of a weight step (None: the whole batch);
            gradients are accumulated over the passes.
        mini_batch_valid: the same for architecture steps and evaluation.
        print_frequency: a log line every N steps.
        checkpoint_every: a checkpoint every N iterations too (0: after each epoch only).
        aux_weight: weight of an auxiliary head's loss.
        input_shape: one example's shape ``(C, H, W)``: for hardware estimates and drawings
            (None: read from the first validation batch).
        eval_every: the validation (searchers: the architecture split) and test evaluation
            after every N-th epoch, and always after the last one (``docs/benchmarks.rst``:
            its cost).
        eval_examples: evaluate on the first N examples of the validation and test loaders
            only, the same ones every time (None: all of them).
        test_at_end: evaluate the test set only after the last epoch.
    """

    epochs: int = 1
    warmup: int = 0
    mini_batch_train: int | None = None
    mini_batch_valid: int | None = None
    print_frequency: int = 25
    checkpoint_every: int = 0
    aux_weight: float = 0.0
    input_shape: Sequence[int] | None = None
    eval_every: int = 1
    eval_examples: int | None = None
    test_at_end: bool = False

    def check(self) -> None:
        """Raises ConfigError (naming the key) on an impossible value."""
        for key in ("epochs", "warmup", "checkpoint_every"):
            if getattr(self, key) < 0:
                raise ConfigError(f"must be >= 0, got {getattr(self, key)}", key=key)
        if self.epochs + self.warmup < 1:
            raise ConfigError("epochs + warmup must be at least 1", key="epochs")
        for key in ("print_frequency", "eval_every"):
            if getattr(self, key) < 1:
                raise ConfigError(f"must be >= 1, got {getattr(self, key)}", key=key)
        if self.eval_examples is not None and self.eval_examples < 1:
            raise ConfigError(
                f"must be >= 1 (or null: every example), got {self.eval_examples}",
                key="eval_examples",
            )
        for key in ("mini_batch_train", "mini_batch_valid"):
            value = getattr(self, key)
            if value is not None and value < 1:
                raise ConfigError(f"must be >= 1 (or null), got {value}", key=key)
        if not (math.isfinite(self.aux_weight) and self.aux_weight >= 0):
            raise ConfigError(f"must be a number >= 0, got {self.aux_weight}", "aux_weight")

    @property
    def total_epochs(self) -> int:
        """Warm-up plus search/training epochs."""
        return self.warmup + self.epochs

    def evaluates(self, epoch: int) -> tuple[bool, bool]:
        """Whether the end of ``epoch`` (0-based, warm-up included) evaluates the validation
        and the test loader (``eval_every``, ``test_at_end``)."""
        last = epoch + 1 == self.total_epochs
        valid = last or (epoch + 1) % self.eval_every == 0
        return valid, valid and (last or not self.test_at_end)
