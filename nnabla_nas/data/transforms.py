"""Batch-wise augmentation and normalisation of uint8 NCHW images, vectorised in numpy."""

from __future__ import annotations

from typing import Sequence

import numpy as np

from ..errors import ConfigError


class Augment:
    """Random crop with zero padding, horizontal flip, Cutout, then normalisation.

    Applied to a whole batch ``x`` uint8 ``(B, C, H, W)``, in this order:

    1. random crop: ``x`` is zero-padded by ``pad`` pixels on every side and a ``crop``-sized
       window (default: the input size) is cut at an offset drawn uniformly per image;
    2. horizontal flip of each image with probability 1/2 (if ``flip``);
    3. normalisation ``(x / 255 - mean) / std`` per channel, to float32;
    4. Cutout (DeVries & Taylor, 2017): per image one ``cutout`` x ``cutout`` square, centred at a
       pixel drawn uniformly over the image and clipped at the borders, is set to 0 (the mean
       colour, since it comes after normalisation).

    With the defaults only normalisation is done, which is what evaluation uses.

    Args:
        pad: zero padding of the random crop (0 = no padding).
        crop: ``(H, W)`` of the random crop; ``None`` keeps the input size (so with ``pad = 0``
            there is no crop at all).
        flip: random horizontal flip.
        cutout: side of the Cutout square (0 = off).
        mean: per-channel mean of ``x / 255`` (one value is used for every channel).
        std: per-channel standard deviation of ``x / 255``.
    """

    def __init__(
        self,
        pad: int = 0,
        crop: Sequence[int] | None = None,
        flip: bool = False,
        cutout: int = 0,
        mean: Sequence[float] = (0.0,),
        std: Sequence[float] = (1.0,),
    ) -> None:
        if pad < 0:
            raise ConfigError(f"padding must be >= 0, got {pad}")
        if cutout < 0:
            raise ConfigError(f"must be >= 0 (0 = off), got {cutout}", key="cutout")
        if crop is not None and (len(crop) != 2 or min(crop) < 1):
            raise ConfigError(f"crop must be (H, W) with positive sizes, got {crop}")
        if min(std) <= 0:
            raise ConfigError(f"std must be positive, got {std}")
        self.pad = int(pad)
        self.crop = None if crop is None else (int(crop[0]), int(crop[1]))
        self.flip = bool(flip)
        self.cutout = int(cutout)
        self.mean = np.asarray(mean, np.float32).reshape(1, -1, 1, 1)
        self.std = np.asarray(std, np.float32).reshape(1, -1, 1, 1)

    @property
    def random(self) -> bool:
        """Whether the transform draws random numbers at all."""
        return self.pad > 0 or self.crop is not None or self.flip or self.cutout > 0

    def __call__(self, x: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
        """Transforms a uint8 ``(B, C, H, W)`` batch into a float32 normalised batch."""
        if x.ndim != 4:
            raise ValueError(f"expected a (B, C, H, W) batch, got shape {x.shape}")
        if self.pad > 0 or self.crop is not None:
            x = self.random_crop(x, rng)
        if self.flip:
            flip = rng.rand(len(x)) < 0.5
            if flip.any():
                x = x.copy()
                x[flip] = x[flip, :, :, ::-1]
        out = self.normalize(x)
        if self.cutout > 0:
            out *= self.cutout_mask(out.shape, rng)[:, None]
        return out

    def normalize(self, x: np.ndarray) -> np.ndarray:
        """``(x / 255 - mean) / std`` per channel, as float32."""
        c = x.shape[1]
        if self.mean.size not in (1, c) or self.std.size not in (1, c):
            raise ConfigError(
                f"mean/std have {self.mean.size}/{self.std.size} values for {c}-channel images"
            )
        scale = 1.0 / (255.0 * self.std)
        return x.astype(np.float32) * scale - self.mean / self.std

    def random_crop(self, x: np.ndarray, rng: np.random.RandomState) -> np.ndarray:
        """Crops each zero-padded image at a random offset (fancy indexing, no Python loop)."""
        b, c, h, w = x.shape
        p = self.pad
        ch, cw = self.crop if self.crop is not None else (h, w)
        if ch > h + 2 * p or cw > w + 2 * p:
            raise ConfigError(f"crop {ch}x{cw} exceeds the padded image {h + 2 * p}x{w + 2 * p}")
        if p > 0:
            x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
        oy = rng.randint(0, h + 2 * p - ch + 1, size=b)
        ox = rng.randint(0, w + 2 * p - cw + 1, size=b)
        rows = (oy[:, None] + np.arange(ch))[:, None, :, None]
        cols = (ox[:, None] + np.arange(cw))[:, None, None, :]
        return x[np.arange(b)[:, None, None, None], np.arange(c)[None, :, None, None], rows, cols]

    def cutout_mask(self, shape: tuple[int, ...], rng: np.random.RandomState) -> np.ndarray:
        """A float32 ``(B, H, W)`` mask: 0 inside each image's Cutout square, 1 elsewhere."""
        b, _, h, w = shape
        cy = rng.randint(0, h, size=b)
        cx = rng.randint(0, w, size=b)
        y0, x0 = cy - self.cutout // 2, cx - self.cutout // 2
        ys, xs = np.arange(h), np.arange(w)
        inside_y = (ys >= y0[:, None]) & (ys < (y0 + self.cutout)[:, None])
        inside_x = (xs >= x0[:, None]) & (xs < (x0 + self.cutout)[:, None])
        return (~(inside_y[:, :, None] & inside_x[:, None, :])).astype(np.float32)

    def __repr__(self) -> str:
        return (
            f"Augment(pad={self.pad}, crop={self.crop}, flip={self.flip}, cutout={self.cutout}, "
            f"mean={self.mean.ravel().tolist()}, std={self.std.ravel().tolist()})"
        )


Transform = Augment
