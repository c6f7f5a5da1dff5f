"""Textures: random crops of a few large pictures, and an embedded texture made on the fly.

A texture model (the seed's texture experiment) learns from one or a few pictures of a texture
by cutting many random crops of the training size out of each (``--crops N``); with a spatial
latent field (``--latent-field``) the generator is fully convolutional, so a larger field
renders a larger picture of the same texture (``synthesize --scale``).

``builtin:texture`` is a cobblestone pavement drawn from a seed: rounded stones of varied
colour in dark mortar, lit from one side, with grain. ``builtin:texture-test`` is another
stretch of the same pavement (another seed): held-out crops of the same texture.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from latentgen import UserError
from latentgen.data import open_picture, pictures_from_array, read_array

#: the embedded texture's side in pixels: room for many 64 px crops and for 256 px ones
TEXTURE_SIZE = 768
TEXTURES = {"builtin:texture": 0, "builtin:texture-test": 1}
#: crop positions depend on the picture's place in the source and on this only
CROP_SEED = 2024
#: a texture whose autocorrelation rises this high again away from zero shift is regular
#: (bricks, tiles, weaves: their pattern repeats); measured at 64 px lags on 256 x 512
#: halves of scikit-image's photographs: brick 0.56, gravel 0.04, grass 0.03, and 0.11 on
#: the embedded cobblestones
REGULAR = 0.25
#: the latent size per field position of a regular texture's model: few numbers per
#: position leave it no room to put mortar anywhere, so the generator draws the repeating
#: pattern itself (bricks at 256 px: SWD 230 at d = 2 against 377 at d = 16, PCA 241)
REGULAR_LATENT_DIM = 2


def cobblestones(size: int = TEXTURE_SIZE, channels: int = 3, seed: int = 0) -> np.ndarray:
    """A (channels, size, size) uint8 picture of cobblestones: a jittered grid of stone
    centres, each pixel belonging to the nearest (a Voronoi pattern), mortar where the second
    nearest is almost as near."""
    rng = np.random.default_rng(seed)
    cell = 40.0
    n = int(np.ceil(size / cell)) + 2
    centres = (np.stack(np.meshgrid(np.arange(n), np.arange(n), indexing="ij"), -1)
               + rng.uniform(0.15, 0.85, (n, n, 2))) * cell - cell
    colours = np.array([[128, 118, 105], [150, 140, 122], [112, 108, 104], [140, 122, 100],
                        [120, 124, 130]], dtype=np.float64)
    stone = colours[rng.integers(0, len(colours), (n, n))] * rng.uniform(0.8, 1.15, (n, n, 1))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    ci, cj = ((yy + cell) // cell).astype(int), ((xx + cell) // cell).astype(int)
    best = np.full((size, size), np.inf)
    second = np.full((size, size), np.inf)
    owner = np.zeros((size, size, 2), dtype=int)
    for di in (-1, 0, 1):
        for dj in (-1, 0, 1):
            i, j = np.clip(ci + di, 0, n - 1), np.clip(cj + dj, 0, n - 1)
            c = centres[i, j]
            dist = np.hypot(yy - c[..., 0], xx - c[..., 1])
            closer = dist < best
            second = np.where(closer, best, np.minimum(second, dist))
            owner = np.where(closer[..., None], np.stack([i, j], -1), owner)
            best = np.where(closer, dist, best)
    colour = stone[owner[..., 0], owner[..., 1]]
    # a dome per stone, lit from the upper left
    c = centres[owner[..., 0], owner[..., 1]]
    light = 1.0 + 0.25 * ((c[..., 0] - yy) + (c[..., 1] - xx)) / cell
    shade = np.clip(light - 0.6 * (best / cell) ** 2, 0.45, 1.3)
    mortar = np.clip((second - best - 1.5) / 3.0, 0.0, 1.0)[..., None]
    grain = rng.normal(0.0, 9.0, (size, size, 1))
    rgb = colour * shade[..., None] * mortar + np.array([55.0, 50.0, 45.0]) * (1 - mortar)
    rgb = np.clip(rgb + grain, 0, 255).astype(np.uint8)
    if channels == 1:
        return np.asarray(Image.fromarray(rgb).convert("L"))[None]
    return rgb.transpose(2, 0, 1).copy()


def native_pictures(source: str, channels: int, images: set[str], arrays: set[str]
                    ) -> list[np.ndarray]:
    """The pictures of ``source`` at their own size, as (channels, H, W) uint8: the embedded
    texture, a picture file, a folder of them, or an array of pictures (N, H, W[, C])."""
    if source in TEXTURES:
        return [cobblestones(channels=channels, seed=TEXTURES[source])]
    path = Path(source)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in images and p.is_file())
        if not files:
            raise UserError(f"{source} holds no pictures (PNG, JPEG, BMP, WebP) to cut crops "
                            "from; point `data` at a folder of texture pictures")
        return [_read_picture(f, channels) for f in files]
    if path.suffix.lower() in images:
        return [_read_picture(path, channels)]
    if path.suffix.lower() in arrays:
        arr = read_array(path)
        side = min(arr.shape[1:3]) if arr.ndim >= 3 else 0
        return list(pictures_from_array(arr, side, channels, source).numpy())
    raise UserError(f"{source}: `crops` cuts pictures or .npy/.npz arrays of pictures; give "
                    "one of those")


def regularity(pictures: list[np.ndarray], reach: int) -> float:
    """How strongly the pictures repeat: the largest normalised autocorrelation of their
    grey levels at a shift of at most ``reach`` pixels beyond the central peak (its first
    minimum along the radius), the largest over the pictures; 1 for a pattern that repeats
    exactly, near 0 for one that never does."""
    best = 0.0
    for pic in pictures:
        grey = pic.astype(np.float64).mean(0)
        grey -= grey.mean()
        h, w = grey.shape
        spectrum = np.fft.rfft2(grey, s=(2 * h, 2 * w))  # zero-padded: no wrap-around
        ac = np.fft.irfft2(np.abs(spectrum) ** 2, s=(2 * h, 2 * w))
        dy = np.minimum(np.arange(2 * h), 2 * h - np.arange(2 * h))[:, None]
        dx = np.minimum(np.arange(2 * w), 2 * w - np.arange(2 * w))[None, :]
        overlap = np.clip(h - dy, 0, None) * np.clip(w - dx, 0, None)
        if ac[0, 0] <= 0:
            continue  # a flat picture
        ac = ac / np.maximum(overlap, 1) / (ac[0, 0] / (h * w))  # unbiased, 1 at zero shift
        r = np.hypot(dy, dx)
        near = r <= min(reach, h // 2, w // 2)
        profile = [ac[(r >= k) & (r < k + 1)].mean() for k in range(int(r[near].max()) + 1)]
        rising = np.flatnonzero(np.diff(profile) > 0)
        peak = int(rising[0]) if len(rising) else len(profile)
        ring = near & (r > max(peak, 2))
        if ring.any():
            best = max(best, float(ac[ring].max()))
    return best


def _read_picture(path: Path, channels: int) -> np.ndarray:
    with open_picture(path) as opened:
        img = ImageOps.exif_transpose(opened).convert("L" if channels == 1 else "RGB")
        arr = np.asarray(img)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def random_crops(pictures: list[np.ndarray], size: int, count: int, source: str) -> np.ndarray:
    """``count`` crops of ``size`` x ``size`` from each picture, at positions drawn from the
    picture's index alone (the same data gives the same crops): (len * count, C, size, size)."""
    out = np.empty((len(pictures) * count, pictures[0].shape[0], size, size), dtype=np.uint8)
    for k, pic in enumerate(pictures):
        h, w = pic.shape[1:]
        if h < size or w < size:
            raise UserError(f"{source}: picture {k} is {w} x {h} pixels, smaller than the "
                            f"{size} px crops asked; lower `image_size` (or `scale`) or give "
                            "larger pictures")
        rng = np.random.default_rng([CROP_SEED, k])
        tops = rng.integers(0, h - size + 1, count)
        lefts = rng.integers(0, w - size + 1, count)
        for c, (t, left) in enumerate(zip(tops, lefts)):
            out[k * count + c] = pic[:, t:t + size, left:left + size]
    return out
