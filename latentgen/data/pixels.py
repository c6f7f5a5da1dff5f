"""Pixel helpers shared by modalities whose data is pictures (images, video frames).

Pictures are stored as uint8 [0, 255] and handed to the generator as float [-1, 1], the range
of its tanh output.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError

from latentgen.data.examples import require_finite
from latentgen.errors import UserError


def decode_uint8(batch: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1]."""
    return batch.float().div_(127.5).sub_(1.0)


def encode_uint8(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 [0, 255] (values outside the range are clipped)."""
    return ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)


def doubling_plan(size: int, min_base: int = 4, max_base: int = 7,
                  max_doublings: int = 7) -> tuple[int, int] | None:
    """(base, doublings) with base * 2**doublings == size and min_base <= base <= max_base,
    or None. A 4..7 px base and x2 layers cover the usual sizes: 16, 28 (MNIST), 32, 48, 64,
    96, 128."""
    for n_up in range(1, max_doublings + 1):
        base, rem = divmod(size, 2 ** n_up)
        if rem == 0 and min_base <= base <= max_base:
            return base, n_up
    return None


def fit_square(x: torch.Tensor, size: int, chunk: int = 4096) -> torch.Tensor:
    """Float pictures (N, C, H, W) resized so the shorter side is ``size`` (anti-aliased
    bilinear), then center-cropped to ``size`` x ``size``; processed ``chunk`` at a time."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    parts = [F.interpolate(x[i:i + chunk], size=(nh, nw), mode="bilinear", antialias=True,
                           align_corners=False) for i in range(0, x.shape[0], chunk)]
    x = torch.cat(parts)
    top, left = (nh - size) // 2, (nw - size) // 2
    return x[..., top:top + size, left:left + size]


#: pictures declaring more pixels than this are refused before they are decoded (PIL's own
#: limit for decompression bombs; a 50-megapixel photograph is well within it)
MAX_PICTURE_PIXELS = 89_478_485


@contextmanager
def open_picture(path: Path | bytes, what: str = "image", name: str | None = None
                 ) -> Iterator[Image.Image]:
    """``PIL.Image.open`` for data files: a file PIL cannot read, or one that declares more
    than ``MAX_PICTURE_PIXELS`` pixels (a decompression bomb), is a ``UserError`` naming it,
    raised before any pixel is decoded. ``what`` names the file in messages (image, frame);
    ``path`` may be an encoded file's bytes (a record of a table or shard), which ``name``
    then names."""
    label = name if name is not None else "<bytes>" if isinstance(path, bytes) else str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(path) if isinstance(path, bytes) else path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise UserError(f"{what} {label} declares too many pixels (more than "
                        f"{MAX_PICTURE_PIXELS:,}); shrink it or remove it") from None
    except (UnidentifiedImageError, OSError, ValueError, EOFError) as exc:
        # PIL names a file by its path, but bytes by an object's address: say what it is
        reason = "not a picture PIL reads" if isinstance(path, bytes) and \
            isinstance(exc, UnidentifiedImageError) else exc
        raise UserError(f"cannot read {what} {label} ({reason}); remove or replace the "
                        "file") from None
    with img:
        w, h = img.size
        if w * h > MAX_PICTURE_PIXELS:
            raise UserError(f"{what} {label} declares {w} x {h} pixels (more than "
                            f"{MAX_PICTURE_PIXELS:,}); shrink it or remove it")
        yield img


def read_array(path: Path, keys: tuple[str, ...] = ("images", "videos", "x", "data", "arr_0")
               ) -> np.ndarray:
    """A .npy array, or from a .npz the first of ``keys`` present (or its only array)."""
    try:
        if path.suffix.lower() == ".npy":
            return np.load(path, allow_pickle=False)
        with np.load(path, allow_pickle=False) as z:
            names = list(z.keys())
            for key in keys:
                if key in z:
                    return z[key]
            if len(names) == 1:
                return z[names[0]]
            raise UserError(f"{path} holds arrays {names}; store the data under '{keys[0]}'")
    except UserError:
        raise
    except Exception as exc:
        raise UserError(f"cannot read array file {path} ({exc}); check the file") from None


def pictures_from_array(arr: np.ndarray, size: int, channels: int, source: str,
                        what: str = "images", expected: str = "(N, H, W) or (N, H, W, C)"
                        ) -> torch.Tensor:
    """Pictures (N, H, W[, C]) as uint8 [0, 255] or float [0, 1] (or integers up to 255) ->
    uint8 (N, channels, size, size): RGB(A) to gray by luminance or gray to RGB as asked,
    resized and center-cropped by ``fit_square``."""
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4 or arr.shape[-1] not in (1, 3, 4) or arr.shape[0] == 0:
        raise UserError(f"{source}: array of shape {arr.shape} is not {what}; expected "
                        f"{expected} with C = 1, 3 or 4")
    if arr.dtype == np.uint8:
        x = torch.from_numpy(np.ascontiguousarray(arr)).permute(0, 3, 1, 2).float()
    elif np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer):
        require_finite(arr, source)
        x = torch.from_numpy(arr.astype(np.float32)).permute(0, 3, 1, 2)
        lo, hi = float(x.min()), float(x.max())
        if lo < 0 or hi > 255:
            raise UserError(f"{source}: values span [{lo:g}, {hi:g}]; store {what} as uint8 "
                            "[0, 255] or float [0, 1]")
        x = x * 255.0 if hi <= 1.0 and np.issubdtype(arr.dtype, np.floating) else x
    else:
        raise UserError(f"{source}: unsupported array dtype {arr.dtype}; use uint8 or float")
    x = x[:, :3]
    if channels == 1 and x.shape[1] == 3:
        x = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
    elif channels == 3 and x.shape[1] == 1:
        x = x.expand(-1, 3, -1, -1)
    x = fit_square(x, size)
    return x.round().clamp(0, 255).to(torch.uint8).contiguous()


MIN_SIDE, MAX_SIDE = 8, 256


def picture_size_plan(size: int) -> tuple[int, int] | None:
    """``doubling_plan`` for a picture side within MIN_SIDE..MAX_SIDE, else None."""
    return doubling_plan(size) if MIN_SIDE <= size <= MAX_SIDE else None


def check_picture_size(size: int, flag: str = "`image_size`") -> None:
    """Raise ``UserError`` naming the two nearest sides a generator can make."""
    if picture_size_plan(size) is None:
        near = [s for s in range(MIN_SIDE, MAX_SIDE + 1) if picture_size_plan(s)]
        near = sorted(near, key=lambda s: abs(s - size))[:2]
        raise UserError(f"{flag} must be b * 2^k pixels with b in 4..7 ({MIN_SIDE} to "
                        f"{MAX_SIDE}), got {size}; the nearest are {' and '.join(map(str, near))}")
