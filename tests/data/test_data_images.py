"""imagenet (class folders and file lists) and csv datasets of generated PNG images."""

from __future__ import annotations

import numpy as np
import pytest

from nnabla_nas.data import IMAGENET_MEAN, DataLoader, ImageFileDataset, load_dataset
from nnabla_nas.errors import ConfigError, DataError, DatasetNotFoundError

SIZE = (8, 8)


def random_images(n, seed, shape=(8, 8, 3)):
    return np.random.RandomState(seed).randint(0, 256, size=(n, *shape)).astype(np.uint8)


@pytest.fixture
def tree(tmp_path, write_png):
    """train/{cat,dog,eel}/ and val/{cat,eel}/ with random 8x8 PNGs; returns the arrays."""
    imgs = {}
    seed = 0
    for part, counts in (("train", {"dog": 2, "cat": 3, "eel": 1}), ("val", {"eel": 2, "cat": 1})):
        for c, n in counts.items():
            seed += 1
            arrs = random_images(n, seed)
            for i, a in enumerate(arrs):
                write_png(tmp_path / part / c / f"img{i}.png", a)
            imgs[part, c] = arrs
    return tmp_path, imgs


def test_class_folders(tree):
    root, imgs = tree
    splits = load_dataset("imagenet", root, image_size=SIZE)
    assert splits.num_classes == 3 and splits.image_shape == (3, 8, 8)
    assert splits.mean == IMAGENET_MEAN
    x, y = splits.train.get(np.arange(len(splits.train)))
    # Classes are the sorted folder names (cat=0, dog=1, eel=2); files sorted in each.
    np.testing.assert_array_equal(y, [0, 0, 0, 1, 1, 2])
    expected = np.concatenate([imgs["train", "cat"], imgs["train", "dog"], imgs["train", "eel"]])
    np.testing.assert_array_equal(x, expected.transpose(0, 3, 1, 2))
    xv, yv = splits.test.get(np.arange(3))
    np.testing.assert_array_equal(yv, [0, 2, 2])
    np.testing.assert_array_equal(xv[1:], imgs["val", "eel"].transpose(0, 3, 1, 2))


def test_val_class_not_in_train(tree, write_png):
    root, _ = tree
    write_png(root / "val" / "fox" / "a.png", random_images(1, 0)[0])
    with pytest.raises(DatasetNotFoundError, match="fox"):
        load_dataset("imagenet", root, image_size=SIZE)


def test_file_lists(tmp_path, write_png):
    arrs = random_images(3, 5)
    write_png(tmp_path / "a" / "x.png", arrs[0])
    write_png(tmp_path / "my imgs" / "y 1.png", arrs[1])
    write_png(tmp_path / "v.png", arrs[2])
    (tmp_path / "train.txt").write_text("# path label\na/x.png 4\n\nmy imgs/y 1.png 1\n")
    (tmp_path / "val.txt").write_text("v.png 0\n")
    splits = load_dataset("imagenet", tmp_path, image_size=SIZE)
    assert splits.num_classes == 5
    x, y = splits.train.get(np.array([1, 0]))
    np.testing.assert_array_equal(y, [1, 4])
    np.testing.assert_array_equal(x, arrs[[1, 0]].transpose(0, 3, 1, 2))
    xv, yv = splits.test.get(np.array([0]))
    np.testing.assert_array_equal(xv[0], arrs[2].transpose(2, 0, 1))


def test_file_list_errors(tmp_path, write_png):
    write_png(tmp_path / "a.png", random_images(1, 0)[0])
    (tmp_path / "train.txt").write_text("a.png 0\nb.png 1\n")
    (tmp_path / "val.txt").write_text("a.png 0\n")
    with pytest.raises(DatasetNotFoundError, match="b.png"):
        load_dataset("imagenet", tmp_path, image_size=SIZE)
    (tmp_path / "train.txt").write_text("a.png zero\n")
    with pytest.raises(ConfigError, match=r"train.txt:1"):
        load_dataset("imagenet", tmp_path, image_size=SIZE)


def test_missing_folders(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="nowhere") as info:
        load_dataset("imagenet", tmp_path / "nowhere")
    assert "train.txt" in str(info.value) and "<class>" in str(info.value)
    with pytest.raises(DatasetNotFoundError, match="train.txt"):
        load_dataset("imagenet", tmp_path)
    (tmp_path / "train" / "cat").mkdir(parents=True)
    with pytest.raises(DatasetNotFoundError, match="val"):
        load_dataset("imagenet", tmp_path)
    with pytest.raises(DatasetNotFoundError, match="data folder"):
        load_dataset("imagenet", None)


def test_resize_short_side_then_centre_crop(tmp_path, write_png):
    # 8x16 (HxW): red, green, blue column bands of widths 4, 8, 4. Covering 8x8 needs no
    # scaling; the centre crop keeps columns 4..11: pure green.
    img = np.zeros((8, 16, 3), np.uint8)
    img[:, :4, 0] = 255
    img[:, 4:12, 1] = 255
    img[:, 12:, 2] = 255
    write_png(tmp_path / "band.png", img)
    # A 40x24 (HxW) solid image scaled by 1/3 to 13x8, then cropped to rows 2..9.
    solid = np.zeros((40, 24, 3), np.uint8)
    solid[...] = (10, 200, 30)
    solid[:12] = (250, 0, 0)  # the top 12 rows (4 after scaling) fall outside the crop
    write_png(tmp_path / "tall.png", solid)
    ds = ImageFileDataset([tmp_path / "band.png", tmp_path / "tall.png"], [0, 1], SIZE)
    x, _ = ds.get(np.array([0, 1]))
    np.testing.assert_array_equal(x[0, 1], 255)
    np.testing.assert_array_equal(x[0, [0, 2]], 0)
    # The red band covers scaled rows 0..3; bilinear filtering (support 3 source pixels when
    # shrinking by 3) blends rows 3..4. The centre crop starts at scaled row 2: one red row,
    # two blended rows, five solid ones.
    np.testing.assert_array_equal(x[1, :, 0].T, [[250, 0, 0]] * 8)
    assert (10 < x[1, 0, 1:3]).all() and (x[1, 0, 1:3] < 250).all()
    np.testing.assert_array_equal(x[1, :, 3:].reshape(3, -1).T, [[10, 200, 30]] * 40)


def test_grey_conversion(tmp_path, write_png):
    img = np.zeros((8, 8, 3), np.uint8)
    img[...] = (200, 100, 50)
    write_png(tmp_path / "c.png", img)
    ds = ImageFileDataset([tmp_path / "c.png"], [0], SIZE, channels=1)
    x, _ = ds.get(np.array([0]))
    assert x.shape == (1, 1, 8, 8)
    # ITU-R 601-2 luma: 0.299 * 200 + 0.587 * 100 + 0.114 * 50 = 124.2
    np.testing.assert_array_equal(x, 124)


def test_corrupt_image_names_the_file(tmp_path, write_png):
    write_png(tmp_path / "ok.png", random_images(1, 0)[0])
    (tmp_path / "bad.png").write_bytes(b"\x89PNG garbage")
    # Not an image at all: refused when the dataset is made (bad input, before the run).
    with pytest.raises(ConfigError, match="bad.png is not a readable image") as err:
        ImageFileDataset([tmp_path / "ok.png", tmp_path / "bad.png"], [0, 1], SIZE)
    assert err.value.key == "data_dir"
    # A valid header but truncated pixels: found when decoded, a DataError naming the file.
    whole = (tmp_path / "ok.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(whole[: len(whole) // 2])
    ds = ImageFileDataset([tmp_path / "ok.png", tmp_path / "cut.png"], [0, 1], SIZE)
    with pytest.raises(DataError, match="cut.png"):
        ds.get(np.array([0, 1]))
    # The same error surfaces from the loader's background thread.
    loader = DataLoader(ds, batch_size=1, shuffle=False)
    with pytest.raises(DataError, match="cut.png"):
        list(loader)


def test_csv_with_header_and_int_labels(tmp_path, write_png):
    arrs = random_images(3, 7)
    for i, a in enumerate(arrs):
        write_png(tmp_path / "img" / f"{i}.png", a)
    (tmp_path / "train.csv").write_text("path,label\nimg/0.png,2\nimg/1.png,0\n")
    (tmp_path / "test.csv").write_text("img/2.png,1\n")
    splits = load_dataset("csv", tmp_path, image_size=SIZE)
    assert splits.num_classes == 3 and (len(splits.train), len(splits.test)) == (2, 1)
    x, y = splits.train.get(np.array([0, 1]))
    np.testing.assert_array_equal(y, [2, 0])
    np.testing.assert_array_equal(x, arrs[:2].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(splits.test.get(np.array([0]))[1], [1])


def test_csv_grey_with_class_names(tmp_path, write_png):
    arrs = random_images(3, 8, shape=(8, 8))
    for i, a in enumerate(arrs):
        write_png(tmp_path / f"{i}.png", a)
    (tmp_path / "train.csv").write_text("0.png,zebra\n1.png,ant\n")
    (tmp_path / "test.csv").write_text("file,class\n2.png,zebra\n")
    splits = load_dataset("csv", tmp_path, image_size=SIZE, channels=1)
    assert splits.num_classes == 2 and splits.image_shape == (1, 8, 8)
    assert len(splits.mean) == 1 and splits.mean[0] == pytest.approx(
        0.299 * 0.485 + 0.587 * 0.456 + 0.114 * 0.406
    )
    x, y = splits.train.get(np.array([0, 1]))
    np.testing.assert_array_equal(y, [1, 0])  # ant=0, zebra=1
    np.testing.assert_array_equal(x[:, 0], arrs[:2])
    (tmp_path / "test.csv").write_text("2.png,yak\n")
    with pytest.raises(ConfigError, match="yak"):
        load_dataset("csv", tmp_path, image_size=SIZE)


def test_csv_missing(tmp_path):
    with pytest.raises(DatasetNotFoundError, match="train.csv"):
        load_dataset("csv", tmp_path)
