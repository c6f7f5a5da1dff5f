"""Image sources: folders of pictures, .npy/.npz arrays, the standard sets latentgen.data reads
(MNIST / Fashion-MNIST, CIFAR-10/100, SVHN, CelebA, Hugging Face, parquet, webdataset shards,
with ``?split=`` and class selection), the embedded faces.

Everything is loaded as uint8 (N, C, S, S), resized so the shorter side is S and center-cropped
(CelebA: its centre 140 x 140 first), and converted to the requested channel count; float
model-space data is made per batch.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from latentgen import Examples, UserError
from latentgen.data import (
    Found,
    Record,
    allocate,
    decode_records,
    decode_uint8,
    encode_uint8,
    open_picture,
    open_standard,
    picture_side,
    pictures_from_array,
    read_array,
)

from .faces import faces
from .houses import houses
from .textures import TEXTURES, native_pictures, random_crops

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
ARRAY_SUFFIXES = {".npy", ".npz"}
#: the embedded sets: training faces, 128 held-out faces (drawn from another seed, so none is
#: a training face) and 128 houses, another category (`--negative-data`)
BUILTIN = {"builtin:faces", "builtin:faces-test", "builtin:houses"}
HELD_OUT_COUNT = 128
#: pictures of an array converted at a time (their float copy is 4 bytes a pixel)
ARRAY_CHUNK = 4096


decode = decode_uint8  # kept as plugin-level names: the writers and tests use them
encode = encode_uint8


def open_images(source: str | None, size: int, channels: int) -> Examples:
    if source is None or source in BUILTIN:
        source = source or "builtin:faces"
        if source == "builtin:houses":
            arr = houses(HELD_OUT_COUNT, size=size, channels=channels)
        elif source == "builtin:faces-test":
            arr = faces(HELD_OUT_COUNT, size=size, channels=channels, seed=98765)
        else:
            arr = faces(size=size, channels=channels)
        return Examples(torch.from_numpy(arr), decode, source)
    if source in TEXTURES:
        raise UserError(f"{source} is one large picture of a texture; train on crops of it "
                        "with `crops` N (and `latent_field` to synthesize larger textures)")
    # MNIST, CIFAR, SVHN, CelebA, Hugging Face, parquet, webdataset; ?split= and classes
    found = open_standard(source, "image", IMAGE_SUFFIXES)
    if found is not None:
        return _from_found(found, size, channels)
    path = Path(source)
    if not path.exists():
        raise UserError(f"{source} does not exist; give a folder of images, a .npy/.npz "
                        "file or a standard data set (MNIST, CIFAR, SVHN, CelebA, Hugging Face, "
                        "parquet, .tar shards); training without `data` uses the embedded faces")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                       and p.is_file())
        if files:
            return _from_files(files, size, channels, str(path))
        raise UserError(f"{source} holds no images (PNG, JPEG, BMP, WebP) or data set files; "
                        "point it at a folder that does")
    suffix = path.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        return _from_array(read_array(path), size, channels, str(path))
    if suffix in IMAGE_SUFFIXES:
        return _from_files([path], size, channels, str(path))
    raise UserError(f"{source}: unsupported file type '{path.suffix}'; use a folder of "
                    "images, .npy/.npz, MNIST IDX (…-idx3-ubyte[.gz]), SVHN .mat, .parquet "
                    "or .tar shards")


def open_crops(source: str, size: int, channels: int, count: int) -> Examples:
    """``count`` random ``size`` px crops of each picture of ``source`` (``--crops``)."""
    if source not in TEXTURES and not Path(source).exists():
        raise UserError(f"{source} does not exist; give a texture picture, a folder of them or "
                        "an array of pictures (without `data`: the embedded builtin:texture)")
    pictures = native_pictures(source, channels, IMAGE_SUFFIXES, ARRAY_SUFFIXES)
    return Examples(torch.from_numpy(random_crops(pictures, size, count, source)), decode,
                    source)


def native_size(source: str | None) -> int | None:
    """The side of square images, read from array or IDX headers, a standard set's own size
    (CelebA: the 64 px it is usually read at) or from the first picture (in name order) of a
    folder; None for non-square data and anything unreadable (opening the data reports that
    properly)."""
    if source is None or source in BUILTIN:
        return None
    side = picture_side(source, IMAGE_SUFFIXES)
    if side is not None:
        return side
    path = Path(source)
    try:
        if path.is_dir():
            pictures = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            if not pictures:
                return None
            path = pictures[0]
        if path.suffix.lower() in IMAGE_SUFFIXES:
            with open_picture(path) as img:
                w, h = img.size
            return w if w == h else None
        if path.suffix.lower() == ".npy":
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        elif path.suffix.lower() == ".npz":
            shape = read_array(path).shape
        else:
            return None
    except (OSError, ValueError, EOFError, UserError):
        return None
    if len(shape) in (3, 4) and shape[1] == shape[2]:
        return int(shape[1])
    return None


def _from_files(files: list[Path], size: int, channels: int, source: str) -> Examples:
    def records(part: tuple[int, int]) -> Iterator[Record]:
        return (Record(i, files[i], str(files[i])) for i in range(part[0], len(files), part[1]))

    return _from_found(Found(source, "pictures", len(files), records=records,
                             names=[str(f) for f in files]), size, channels)


def _from_found(found: Found, size: int, channels: int) -> Examples:
    """A standard set's pictures (or a folder's) as uint8 (N, channels, size, size)."""
    if found.arrays is not None:
        out = allocate((found.count, channels, size, size), np.uint8)
        at = 0
        for chunk in found.arrays():  # uint8 throughout: chunks scale alike
            for i in range(0, len(chunk), ARRAY_CHUNK):
                part = pictures_from_array(chunk[i:i + ARRAY_CHUNK], size, channels,
                                           found.source)
                out[at:at + len(part)] = part.numpy()
                at += len(part)
    else:
        # decoded one by one into allocate()'s array: `latentgen prepare` streams them to its file
        out = decode_records(found, (channels, size, size), np.uint8,
                             lambda r: _picture(r, size, channels, found.crop))
    return Examples(torch.from_numpy(out), decode, found.source, names=found.names,
                    labels=found.labels)


def _picture(record: Record, size: int, channels: int, crop: tuple[int, int] | None
             ) -> np.ndarray:
    """One encoded picture as (channels, size, size) uint8: resized so the shorter side is
    ``size`` and centre-cropped; with ``crop``, the centre box of that size is cut first
    (CelebA's 140 x 140) and resized bilinearly, as the papers that use it do."""
    if isinstance(record.payload, np.ndarray):
        raise UserError(f"{record.name} holds decoded samples, not a picture; choose the "
                        "picture column with ?column=NAME")
    mode = "L" if channels == 1 else "RGB"
    with open_picture(record.payload, name=record.name) as opened:  # refuses bombs
        try:
            img = ImageOps.exif_transpose(opened).convert(mode)
            if crop is not None:
                w, h = img.size
                cw, ch = min(crop[0], w), min(crop[1], h)
                left, top = round((w - cw) / 2), round((h - ch) / 2)
                img = ImageOps.fit(img.crop((left, top, left + cw, top + ch)), (size, size),
                                   Image.Resampling.BILINEAR)
            else:
                img = ImageOps.fit(img, (size, size), Image.Resampling.LANCZOS)
        except (UnidentifiedImageError, OSError, ValueError, EOFError) as exc:
            raise UserError(f"cannot read image {record.name} ({exc}); remove or replace the "
                            "file") from None
    arr = np.asarray(img)
    return arr[None] if channels == 1 else arr.transpose(2, 0, 1)


def _from_array(arr: np.ndarray, size: int, channels: int, source: str) -> Examples:
    return Examples(pictures_from_array(arr, size, channels, source), decode, source)
