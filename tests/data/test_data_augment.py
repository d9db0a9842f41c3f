"""Augment: normalisation, padded random crop, flip and Cutout against hand computation."""

from __future__ import annotations

import numpy as np
import pytest

from nnabla_nas.data import Augment
from nnabla_nas.errors import ConfigError

MEAN, STD = (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)


def batch(b=4, c=3, h=6, w=7, seed=0, low=0):
    return np.random.RandomState(seed).randint(low, 256, size=(b, c, h, w)).astype(np.uint8)


def test_normalisation_matches_hand_computation():
    x = batch()
    out = Augment(mean=MEAN, std=STD)(x, np.random.RandomState(0))
    assert out.dtype == np.float32 and out.shape == x.shape
    expected = np.empty(x.shape)
    for c in range(3):
        expected[:, c] = (x[:, c] / 255.0 - MEAN[c]) / STD[c]
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)
    grey = Augment(mean=(0.1307,), std=(0.3081,))(x[:, :1], np.random.RandomState(0))
    np.testing.assert_allclose(grey, (x[:, :1] / 255.0 - 0.1307) / 0.3081, rtol=1e-5, atol=1e-5)


def shifted(img, dy, dx):
    """img moved by (dy, dx) with zeros filling the uncovered border."""
    c, h, w = img.shape
    out = np.zeros_like(img)
    out[:, max(dy, 0) : h + min(dy, 0), max(dx, 0) : w + min(dx, 0)] = img[
        :, max(-dy, 0) : h + min(-dy, 0), max(-dx, 0) : w + min(-dx, 0)
    ]
    return out


def test_padded_crop_is_a_shifted_copy():
    p = 2
    x = batch(b=32, low=1)  # no zero pixels, so padding is recognisable
    aug = Augment(pad=p, mean=(0,), std=(1 / 255,))  # identity normalisation: out == x
    out = aug(x, np.random.RandomState(5))
    np.testing.assert_array_equal(out, np.round(out))
    shifts = set()
    for img, o in zip(x, out):
        matches = [
            (dy, dx)
            for dy in range(-p, p + 1)
            for dx in range(-p, p + 1)
            if np.array_equal(shifted(img, dy, dx), o)
        ]
        assert len(matches) == 1
        shifts.add(matches[0])
    assert len(shifts) > 5  # offsets are drawn per image
    np.testing.assert_array_equal(aug(x, np.random.RandomState(5)), out)
    assert not np.array_equal(aug(x, np.random.RandomState(6)), out)


def test_padded_crop_matches_explicit_offsets():
    # One image, fixed rng: the window of the zero-padded image at the drawn offset.
    x = batch(b=1, c=2, h=5, w=5, low=1)
    out = Augment(pad=3, mean=(0,), std=(1 / 255,))(x, np.random.RandomState(11))
    rng = np.random.RandomState(11)
    oy, ox = rng.randint(0, 7, size=1)[0], rng.randint(0, 7, size=1)[0]
    padded = np.pad(x[0], ((0, 0), (3, 3), (3, 3)))
    np.testing.assert_array_equal(out[0], padded[:, oy : oy + 5, ox : ox + 5])
    np.testing.assert_array_equal(out[0], shifted(x[0], 3 - oy, 3 - ox))


def test_smaller_random_crop_is_a_window():
    x = batch(b=8, h=8, w=8)
    out = Augment(crop=(4, 5), mean=(0,), std=(1 / 255,))(x, np.random.RandomState(0))
    assert out.shape == (8, 3, 4, 5)
    for img, o in zip(x, out):
        windows = [img[:, i : i + 4, j : j + 5] for i in range(5) for j in range(4)]
        assert any(np.array_equal(wd, o) for wd in windows)


def test_flip():
    x = batch(b=40)
    out = Augment(flip=True, mean=(0,), std=(1 / 255,))(x, np.random.RandomState(1))
    flipped = [np.array_equal(o, img[:, :, ::-1]) for img, o in zip(x, out)]
    kept = [np.array_equal(o, img) for img, o in zip(x, out)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert 5 < sum(flipped) < 35 and sum(kept) == 40 - sum(flipped)
    # The input batch is not modified in place.
    np.testing.assert_array_equal(x, batch(b=40))


@pytest.mark.parametrize("length", [4, 3])
def test_cutout_zeroes_one_square(length):
    x = np.full((64, 3, 16, 16), 255, np.uint8)
    aug = Augment(cutout=length, mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    out = aug(x, np.random.RandomState(2))
    # Normalised value of 255 is (1 - 0.5) / 0.25 = 2; the Cutout square is 0 after normalising.
    assert set(np.unique(out)) == {0.0, 2.0}
    interior = 0
    for o in out:
        zero = o == 0
        assert (zero == zero[0]).all()  # the same square in every channel
        ys, xs = np.nonzero(zero[0])
        y0, y1, x0, x1 = ys.min(), ys.max() + 1, xs.min(), xs.max() + 1
        assert zero[0, y0:y1, x0:x1].all() and zero[0].sum() == (y1 - y0) * (x1 - x0)
        assert y1 - y0 <= length and x1 - x0 <= length
        if 0 < y0 and y1 < 16 and 0 < x0 and x1 < 16:  # away from the borders
            assert (y1 - y0, x1 - x0) == (length, length)
            interior += 1
    assert interior > 20


def test_cutout_clipped_at_border():
    x = np.full((200, 1, 8, 8), 255, np.uint8)
    out = Augment(cutout=4)(x, np.random.RandomState(0))
    sizes = {int((o == 0).sum()) for o in out}
    assert 16 in sizes and min(sizes) == 4  # a centre in a corner keeps a 2x2 quarter


def test_mismatched_statistics():
    with pytest.raises(ConfigError, match="mean/std"):
        Augment(mean=MEAN, std=STD)(batch(c=1), np.random.RandomState(0))
    with pytest.raises(ConfigError, match="cutout"):
        Augment(cutout=-1)
