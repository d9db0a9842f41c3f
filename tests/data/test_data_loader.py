"""DataLoader: every example once per epoch, order a function of (seed, epoch)."""

from __future__ import annotations

import numpy as np
import pytest

from nnabla_nas.data import ArrayDataset, Augment, DataLoader, ImageFileDataset


def indexed_dataset(n=23):
    """Example i has every pixel equal to i and label i % 5."""
    x = np.broadcast_to(np.arange(n, dtype=np.uint8)[:, None, None, None], (n, 1, 2, 2)).copy()
    return ArrayDataset(x, np.arange(n) % 5)


def epoch_indices(loader):
    out = []
    for x, y in loader:
        idx = x[:, 0, 0, 0].astype(int)
        assert x.dtype == np.float32 and y.dtype == np.int32 and y.shape == (len(x), 1)
        np.testing.assert_array_equal(y[:, 0], idx % 5)
        out.append(idx)
    return out


def test_every_index_once_per_epoch():
    loader = DataLoader(indexed_dataset(), batch_size=5, shuffle=True, seed=3)
    assert len(loader) == 5
    batches = epoch_indices(loader)
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    np.testing.assert_array_equal(np.sort(np.concatenate(batches)), np.arange(23))
    assert not np.array_equal(np.concatenate(batches), np.arange(23))  # shuffled


def test_drop_last_and_subset():
    subset = np.array([1, 4, 6, 7, 10, 12, 20])
    loader = DataLoader(indexed_dataset(), subset, batch_size=3, shuffle=True, drop_last=True)
    assert len(loader) == 2
    seen = np.concatenate(epoch_indices(loader))
    assert len(seen) == 6 and len(set(seen)) == 6 and set(seen) <= set(subset)
    in_order = DataLoader(indexed_dataset(), subset, batch_size=3, shuffle=False)
    np.testing.assert_array_equal(np.concatenate(epoch_indices(in_order)), subset)


def test_order_reproducible_per_seed_and_epoch():
    def order(seed, epoch):
        loader = DataLoader(indexed_dataset(), batch_size=4, shuffle=True, seed=seed)
        loader.set_epoch(epoch)
        return np.concatenate(epoch_indices(loader))

    np.testing.assert_array_equal(order(1, 2), order(1, 2))
    assert not np.array_equal(order(1, 0), order(1, 1))
    assert not np.array_equal(order(1, 0), order(2, 0))


def test_epoch_advances_after_a_full_pass_only():
    loader = DataLoader(indexed_dataset(), batch_size=4, shuffle=True, seed=0)
    first = np.concatenate(epoch_indices(loader))
    for _ in loader:
        break  # an interrupted pass does not advance
    assert loader.epoch == 1
    second = np.concatenate(epoch_indices(loader))
    loader.set_epoch(1)
    np.testing.assert_array_equal(np.concatenate(epoch_indices(loader)), second)
    assert not np.array_equal(first, second)


def test_augmentation_reproducible_per_epoch():
    rng = np.random.RandomState(0)
    ds = ArrayDataset(rng.randint(0, 256, (12, 3, 6, 6)).astype(np.uint8), np.zeros(12, int))
    aug = Augment(pad=1, flip=True, cutout=2, mean=(0.5,), std=(0.5,))

    def run(epoch):
        loader = DataLoader(ds, batch_size=5, shuffle=True, seed=7, transform=aug)
        loader.set_epoch(epoch)
        return np.concatenate([x for x, _ in loader])

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def test_shards_are_disjoint():
    parts = [
        np.concatenate(
            epoch_indices(DataLoader(indexed_dataset(), None, 4, True, 5, num_shards=2, shard=r))
        )
        for r in (0, 1)
    ]
    assert len(parts[0]) == len(parts[1]) == 11
    assert not set(parts[0]) & set(parts[1])


@pytest.mark.parametrize("prefetch", [0, 2])
def test_file_dataset_with_prefetch(tmp_path, write_png, prefetch):
    arrs = np.random.RandomState(0).randint(0, 256, size=(7, 4, 4, 3)).astype(np.uint8)
    for i, a in enumerate(arrs):
        write_png(tmp_path / f"{i}.png", a)
    ds = ImageFileDataset([tmp_path / f"{i}.png" for i in range(7)], np.arange(7), (4, 4))
    loader = DataLoader(ds, batch_size=3, shuffle=True, seed=1, prefetch=prefetch)
    xs, ys = zip(*loader)
    y = np.concatenate(ys)[:, 0]
    np.testing.assert_array_equal(np.sort(y), np.arange(7))
    np.testing.assert_array_equal(np.concatenate(xs), arrs[y].transpose(0, 3, 1, 2))
    memory = DataLoader(ArrayDataset(arrs.transpose(0, 3, 1, 2), np.arange(7)), None, 3, True, 1)
    memory.set_epoch(0)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in memory])[:, 0], y)
    for _ in loader:
        break  # closing early stops the background thread (the test would hang otherwise)
