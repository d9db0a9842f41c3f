"""CIFAR-10 from archives and folders in the official format, and the download fallback."""

from __future__ import annotations

import hashlib
import socket

import numpy as np
import pytest

from nnabla_nas.data import CIFAR10_MEAN, CIFAR10_STD, load_dataset
from nnabla_nas.data import cifar10 as cifar_mod
from nnabla_nas.errors import DatasetNotFoundError

TRAIN = [f"data_batch_{i}" for i in range(1, 6)]


def expected(batches, names):
    data = np.concatenate([batches[n][b"data"] for n in names])
    labels = np.concatenate([batches[n][b"labels"] for n in names])
    return data, labels


@pytest.mark.parametrize("archive", [True, False], ids=["tar.gz", "extracted"])
def test_reads_both_layouts_exactly(tmp_path, write_cifar, cifar_batches, archive):
    write_cifar(tmp_path, archive=archive)
    splits = load_dataset("cifar10", tmp_path)
    data, labels = expected(cifar_batches, TRAIN)
    x, y = splits.train.get(np.arange(len(splits.train)))
    assert x.dtype == np.uint8 and x.shape == (20, 3, 32, 32)
    np.testing.assert_array_equal(x.reshape(20, -1), data)
    np.testing.assert_array_equal(y, labels)
    np.testing.assert_array_equal(splits.train.labels, labels)
    tdata, tlabels = expected(cifar_batches, ["test_batch"])
    xt, yt = splits.test.get(np.arange(6))
    np.testing.assert_array_equal(xt.reshape(6, -1), tdata)
    np.testing.assert_array_equal(yt, tlabels)
    assert splits.num_classes == 10 and splits.image_shape == (3, 32, 32)
    assert splits.mean == CIFAR10_MEAN and splits.std == CIFAR10_STD


def test_chw_layout_of_a_known_image(tmp_path, write_cifar, cifar_batches):
    # The official row is 1024 red (row-major 32x32), then 1024 green, then 1024 blue values.
    row = np.zeros(3072, np.uint8)
    row[0 * 1024 + 0 * 32 + 1] = 11  # red, y=0, x=1
    row[1 * 1024 + 2 * 32 + 0] = 22  # green, y=2, x=0
    row[2 * 1024 + 31 * 32 + 30] = 33  # blue, y=31, x=30
    cifar_batches["data_batch_2"][b"data"][3] = row
    write_cifar(tmp_path, archive=True)
    x, _ = load_dataset("cifar10", tmp_path).train.get(np.array([4 + 3]))
    img = x[0]
    assert img[0, 0, 1] == 11 and img[1, 2, 0] == 22 and img[2, 31, 30] == 33
    assert np.count_nonzero(img) == 3


def test_fancy_indexing_order(tmp_path, write_cifar, cifar_batches):
    write_cifar(tmp_path, archive=False)
    data, labels = expected(cifar_batches, TRAIN)
    idx = np.array([17, 2, 2, 9])
    x, y = load_dataset("cifar10", tmp_path).train.get(idx)
    np.testing.assert_array_equal(x.reshape(4, -1), data[idx])
    np.testing.assert_array_equal(y, labels[idx])


def test_grey_and_resized(tmp_path, write_cifar, cifar_batches):
    write_cifar(tmp_path, archive=True)
    grey = load_dataset("cifar10", tmp_path, channels=1)
    x, _ = grey.train.get(np.array([0]))
    rgb = cifar_batches["data_batch_1"][b"data"][0].reshape(3, 32, 32).astype(float)
    luma = np.rint(0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2])
    assert grey.image_shape == (1, 32, 32)
    assert np.abs(x[0, 0] - luma).max() <= 1  # float rounding vs. hand computation
    assert grey.mean == pytest.approx((0.299 * 0.4914 + 0.587 * 0.4822 + 0.114 * 0.4465,))
    small = load_dataset("cifar10", tmp_path, image_size=(16, 16))
    xs, _ = small.train.get(np.array([0]))
    assert small.image_shape == (3, 16, 16)
    # Halving with bilinear filtering keeps the mean brightness of each channel.
    np.testing.assert_allclose(xs[0].mean(axis=(1, 2)), rgb.mean(axis=(1, 2)), atol=4)


def test_damaged_archive_names_the_file(tmp_path):
    (tmp_path / "cifar-10-python.tar.gz").write_bytes(b"not a gzip file at all")
    with pytest.raises(DatasetNotFoundError, match="cifar-10-python.tar.gz"):
        load_dataset("cifar10", tmp_path)


def test_archive_missing_a_batch(tmp_path, write_cifar, cifar_batches):
    del cifar_batches["data_batch_4"]
    write_cifar(tmp_path, archive=True)
    with pytest.raises(DatasetNotFoundError, match="data_batch_4"):
        load_dataset("cifar10", tmp_path)


def test_missing_with_unreachable_network(tmp_path, monkeypatch):
    attempts = []

    def refuse(*args, **kwargs):
        attempts.append(args[:1])
        raise OSError("network is unreachable (test)")

    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)
    folder = tmp_path / "nowhere"
    with pytest.raises(DatasetNotFoundError) as info:
        load_dataset("cifar10", folder)
    msg = str(info.value)
    assert str(folder) in msg
    assert "cifar-10-python.tar.gz" in msg and "cifar-10-batches-py" in msg
    assert attempts and all("toronto" in str(a) for a in attempts)
    assert not folder.exists()


def test_injected_download_is_used(tmp_path, write_cifar, cifar_batches):
    source = write_cifar(tmp_path / "src", archive=True)
    calls = []

    def fake_download(url, dest, md5):
        calls.append((url, dest, md5))
        dest.parent.mkdir(parents=True)
        dest.write_bytes(source.read_bytes())
        return True

    target = tmp_path / "data"
    splits = cifar_mod.load_cifar10(target, download=fake_download)
    assert calls == [(cifar_mod.CIFAR10_URL, target / cifar_mod.ARCHIVE, cifar_mod.CIFAR10_MD5)]
    assert cifar_mod.CIFAR10_MD5 == "c58f30108f718f92721af3b95e74349a"
    np.testing.assert_array_equal(splits.train.labels, expected(cifar_batches, TRAIN)[1])


def test_no_download_when_disabled(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="could not be downloaded") as err:
        cifar_mod.load_cifar10(tmp_path, download=None)
    assert err.value.key == "data_dir" and "--data-dir DIR" in err.value.message


def test_download_file_checks_md5(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"payload" * 1000)
    good = hashlib.md5(src.read_bytes()).hexdigest()
    dest = tmp_path / "out" / "file.tar.gz"
    assert cifar_mod.download_file(src.as_uri(), dest, good)
    assert dest.read_bytes() == src.read_bytes()
    dest.unlink()
    with pytest.raises(DatasetNotFoundError, match="md5"):
        cifar_mod.download_file(src.as_uri(), dest, "0" * 32)
    assert not dest.exists() and list(dest.parent.iterdir()) == []
    assert cifar_mod.download_file((tmp_path / "absent").as_uri(), dest, good) is False


@pytest.mark.parametrize("batch, label", [("data_batch_3", 42), ("test_batch", -1)])
def test_labels_outside_the_classes_name_the_file(tmp_path, write_cifar, cifar_batches,
                                                  batch, label):  # fmt: skip
    labels = list(cifar_batches[batch][b"labels"])
    labels[1] = label
    cifar_batches[batch][b"labels"] = labels
    write_cifar(tmp_path, archive=True)
    with pytest.raises(DatasetNotFoundError) as err:
        load_dataset("cifar10", tmp_path)
    message = str(err.value)
    assert batch in message and f"e.g. {label} at position 1" in message
    assert "classes 0..9" in message and err.value.key == "data_dir"
