"""Mini-batches for the runner: a reproducible, resumable order per (seed, epoch)."""

from __future__ import annotations

import logging
import math
import queue
import threading
from typing import Iterator

import numpy as np

from ..errors import ConfigError
from .base import Dataset
from .transforms import Augment

logger = logging.getLogger(__name__)

_DONE = object()


class DataLoader:
    """Iterates ``(x float32 (B, C, H, W), y int32 (B, 1))`` batches over (a subset of) a dataset.

    The order of an epoch is a pure function of ``(seed, epoch)``: ``set_epoch(e)`` before
    iterating makes epoch ``e`` reproducible, which is how a resumed run continues exactly. The
    augmentation of epoch ``e`` draws from its own RandomState seeded by ``(seed, epoch)`` too.
    After a complete pass the loader moves on to the next epoch by itself, so forgetting
    ``set_epoch`` still gives a new order each epoch (an interrupted pass does not advance).

    In-memory datasets are fancy-indexed in the calling thread. File datasets are decoded one
    batch ahead in a background thread (``prefetch`` batches queued), so decoding overlaps the
    network's work; an error in that thread is re-raised by the iteration.

    Args:
        dataset: a dataset (``len``, ``labels``, ``get``, ``in_memory``).
        indices: the examples to use (e.g. one part of ``split_stratified``); ``None`` for all.
        batch_size: examples per batch.
        shuffle: a new random order every epoch; otherwise ``indices`` in the given order.
        seed: seed of the order and of the augmentation.
        transform: applied to each uint8 batch; ``None`` only casts to float32 (0..255).
        drop_last: drop the last, smaller batch of an epoch.
        num_shards: data-parallel workers; each sees a disjoint ``1/num_shards`` of every epoch's
            order: shard ``r`` takes the examples ``r, r + num_shards, ...``, so batch ``k`` of
            every shard together are batch ``k`` of one worker with ``num_shards`` times the
            batch size. Each shard augments with its own random stream.
        shard: this worker's rank, ``0 <= shard < num_shards``.
        equal_shards: truncate every epoch's order to a multiple of ``num_shards`` so all shards
            have as many examples (needed when the workers step together: training); False
            uses every example, the shards differing by at most one (evaluation).
        prefetch: batches prepared ahead for file datasets (0 = none, decode in the caller).
    """

    def __init__(
        self,
        dataset: Dataset,
        indices: np.ndarray | None = None,
        batch_size: int = 1,
        shuffle: bool = False,
        seed: int = 0,
        transform: Augment | None = None,
        drop_last: bool = False,
        num_shards: int = 1,
        shard: int = 0,
        prefetch: int = 2,
        equal_shards: bool = True,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"batch size must be >= 1, got {batch_size}")
        if not 0 <= shard < num_shards:
            raise ConfigError(f"shard {shard} is not in [0, {num_shards})")
        n = len(dataset)
        self.indices = (
            np.arange(n, dtype=np.int64) if indices is None else np.asarray(indices, np.int64)
        )
        if self.indices.ndim != 1 or (
            len(self.indices) and (self.indices.min() < 0 or self.indices.max() >= n)
        ):
            raise ConfigError(f"indices must be a 1-D array of values in [0, {n})")
        self.dataset = dataset
        self.batch_size = int(batch_size)
        self.shuffle = bool(shuffle)
        self.seed = int(seed)
        self.transform = transform
        self.drop_last = bool(drop_last)
        self.num_shards = int(num_shards)
        self.shard = int(shard)
        self.equal_shards = bool(equal_shards)
        self.prefetch = int(prefetch)
        self.epoch = 0

    @property
    def num_examples(self) -> int:
        """Examples this shard sees per epoch (before ``drop_last``)."""
        if self.equal_shards:
            return len(self.indices) // self.num_shards
        return len(range(self.shard, len(self.indices), self.num_shards))

    def __len__(self) -> int:
        n = self.num_examples
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def set_epoch(self, epoch: int) -> None:
        """Selects the epoch whose order (and augmentation) the next iteration produces."""
        self.epoch = int(epoch)

    def _rng(self, stream: int) -> np.random.RandomState:
        key = [self.seed, self.epoch, stream]
        if stream == 1 and self.num_shards > 1:
            key.append(self.shard)  # each shard its own augmentation (the order is shared)
        seq = np.random.SeedSequence(key)
        return np.random.RandomState(seq.generate_state(4))

    def order(self) -> np.ndarray:
        """The example indices of the current epoch for this shard, in batch order."""
        order = self.indices
        if self.shuffle:
            order = order[self._rng(0).permutation(len(order))]
        if self.num_shards > 1:
            if self.equal_shards:
                order = order[: self.num_examples * self.num_shards]
            order = order[self.shard :: self.num_shards]
        return order

    def _batches(
        self, order: np.ndarray, rng: np.random.RandomState
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        stop = len(self) * self.batch_size
        for start in range(0, stop, self.batch_size):
            x, y = self.dataset.get(order[start : start + self.batch_size])
            if self.transform is not None:
                x = self.transform(x, rng)
            yield np.asarray(x, np.float32), np.asarray(y, np.int32).reshape(-1, 1)

    def __iter__(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        epoch = self.epoch
        batches = self._batches(self.order(), self._rng(1))
        if not getattr(self.dataset, "in_memory", False) and self.prefetch > 0:
            batches = self._prefetched(batches)
        yield from batches
        self.epoch = epoch + 1

    def _prefetched(
        self, batches: Iterator[tuple[np.ndarray, np.ndarray]]
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        q: queue.Queue = queue.Queue(maxsize=self.prefetch)
        stop = threading.Event()

        def put(item: object) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        def work() -> None:
            try:
                for batch in batches:
                    if not put(batch):
                        return
                put(_DONE)
            except BaseException as e:  # handed to the consumer, re-raised there
                put(e)

        thread = threading.Thread(target=work, name="DataLoader-prefetch", daemon=True)
        thread.start()
        try:
            while True:
                item = q.get()
                if item is _DONE:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            thread.join()

    def __repr__(self) -> str:
        return (
            f"DataLoader(n={len(self.indices)}, batch_size={self.batch_size}, "
            f"shuffle={self.shuffle}, batches={len(self)}, transform={self.transform})"
        )
