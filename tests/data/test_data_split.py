"""split_stratified: the disjoint, stratified search split."""

from __future__ import annotations

import numpy as np
import pytest

from nnabla_nas.data import split_stratified
from nnabla_nas.errors import ConfigError


def labels_fixture():
    # Class sizes 50, 7, 2, 1 and 13, shuffled.
    labels = np.repeat([0, 1, 2, 3, 4], [50, 7, 2, 1, 13])
    return np.random.RandomState(0).permutation(labels)


def test_disjoint_covering_stratified():
    labels = labels_fixture()
    a, b = split_stratified(labels, 0.8, seed=0)
    assert len(np.intersect1d(a, b)) == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([a, b])), np.arange(len(labels)))
    assert (np.diff(a) > 0).all() and (np.diff(b) > 0).all()  # sorted
    # Per class: round(0.8 * n) = 40, 6 (5.6), 1 (clamped: one on each side), 1, 10 (10.4).
    np.testing.assert_array_equal(np.bincount(labels[a], minlength=5), [40, 6, 1, 1, 10])
    np.testing.assert_array_equal(np.bincount(labels[b], minlength=5), [10, 1, 1, 0, 3])


def test_small_portion_keeps_one_per_class():
    labels = labels_fixture()
    a, b = split_stratified(labels, 0.05, seed=0)
    # round(0.05 * n): 3 (2.5 rounds up), 0 -> 1, 0 -> 1, 0 (single example), 1 (0.65)
    np.testing.assert_array_equal(np.bincount(labels[a], minlength=5), [3, 1, 1, 0, 1])


def test_deterministic_per_seed():
    labels = labels_fixture()
    a1, b1 = split_stratified(labels, 0.5, seed=3)
    a2, b2 = split_stratified(labels, 0.5, seed=3)
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_array_equal(b1, b2)
    a3, _ = split_stratified(labels, 0.5, seed=4)
    assert not np.array_equal(a1, a3)
    np.testing.assert_array_equal(np.bincount(labels[a1]), np.bincount(labels[a3]))


@pytest.mark.parametrize("portion", [0.0, 1.0, -0.1, 1.5])
def test_rejects_portion_outside_open_interval(portion):
    with pytest.raises(ConfigError, match="train_portion"):
        split_stratified(np.zeros(10, int), portion, seed=0)
