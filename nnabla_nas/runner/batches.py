"""The batches of an epoch from a position, and the endless architecture batches.

Loaders' orders are pure functions of ``(seed, epoch)``, so a resumed run draws the batches of
the uninterrupted one: the batches of an epoch that were used before the checkpoint are drawn
and dropped (drawing them also advances the epoch's augmentation generator).
"""

from __future__ import annotations

from typing import Any, Iterator

__all__ = ["ArchBatches", "epoch_batches"]


def epoch_batches(loader: Any, epoch: int, start: int) -> Iterator[tuple[int, Any]]:
    """``(i, batch)`` for the batches ``start, start + 1, ...`` of ``loader``'s ``epoch``."""
    loader.set_epoch(epoch)
    for i, batch in enumerate(loader):
        if i >= start:
            yield i, batch


class ArchBatches:
    """Endless batches of the architecture split, from a saved position.

    Args:
        loader: the architecture loader.
        state: the run's state: its ``arch_position`` (epoch of the architecture loader,
            batches used in it) is read at the first batch and kept up to date.
    """

    def __init__(self, loader: Any, state: Any) -> None:
        self.loader = loader
        self.state = state
        self._iter: Iterator | None = None

    def _batches(self) -> Iterator[Any]:
        epoch, used = self.state.arch_position
        if used >= len(self.loader):
            epoch, used = epoch + 1, 0
        while True:
            for i, batch in epoch_batches(self.loader, epoch, used):
                self.state.arch_position = (epoch, i + 1)
                yield batch
            epoch, used = epoch + 1, 0

    def next(self) -> Any:
        """The next batch."""
        if self._iter is None:
            self._iter = self._batches()
        return next(self._iter)

    def reset(self) -> None:
        """Forgets the position read (after a resume); stops a loader's prefetch thread."""
        if self._iter is not None:
            self._iter.close()
            self._iter = None
