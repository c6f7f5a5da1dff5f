"""Image sources: folders of pictures, .npy/.npz arrays, MNIST-style IDX files, the embedded faces.

Everything is loaded as uint8 (N, C, S, S), resized so the shorter side is S and center-cropped,
and converted to the requested channel count; float model-space data is made per batch.
"""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from latentgen import Examples, UserError
from latentgen.data import (
    allocate,
    decode_uint8,
    encode_uint8,
    open_picture,
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
                        "with --crops N (and --latent-field to synthesize larger textures)")
    path = Path(source)
    if not path.exists():
        raise UserError(f"{source} does not exist; give a folder of images, a .npy/.npz "
                        "file or an MNIST IDX file (training without --data uses the embedded "
                        "faces)")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES
                       and p.is_file())
        if files:
            return _from_files(files, size, channels, str(path))
        idx = sorted(p for p in path.rglob("*") if _is_idx_name(p))
        # An MNIST folder holds train and t10k files, often both raw and .gz: keep the training
        # images, once each, so held-out images never leak into training.
        train = [p for p in idx if p.name.lower().startswith("train")]
        idx = train or idx
        stems = {p.name.removesuffix(".gz") for p in idx}
        idx = [p for p in idx if not (p.suffix == ".gz" and p.name.removesuffix(".gz") in stems
                                      and p.with_suffix("").exists())]
        if idx:
            return _from_array(np.concatenate([_read_idx(p) for p in idx]), size, channels,
                               str(path))
        raise UserError(f"{source} holds no images (PNG, JPEG, BMP, WebP) or IDX files; "
                        "point it at a folder that does")
    suffix = path.suffix.lower()
    if suffix in ARRAY_SUFFIXES:
        return _from_array(read_array(path), size, channels, str(path))
    if _is_idx_name(path):
        return _from_array(_read_idx(path), size, channels, str(path))
    if suffix in IMAGE_SUFFIXES:
        return _from_files([path], size, channels, str(path))
    raise UserError(f"{source}: unsupported file type '{path.suffix}'; use a folder of "
                    "images, .npy/.npz, or MNIST IDX (…-idx3-ubyte[.gz])")


def open_crops(source: str, size: int, channels: int, count: int) -> Examples:
    """``count`` random ``size`` px crops of each picture of ``source`` (``--crops``)."""
    if source not in TEXTURES and not Path(source).exists():
        raise UserError(f"{source} does not exist; give a texture picture, a folder of them or "
                        "an array of pictures (without --data: the embedded builtin:texture)")
    pictures = native_pictures(source, channels, IMAGE_SUFFIXES, ARRAY_SUFFIXES)
    return Examples(torch.from_numpy(random_crops(pictures, size, count, source)), decode,
                    source)


def native_size(source: str | None) -> int | None:
    """The side of square images, read from array or IDX headers or from the first picture
    (in name order) of a folder; None for non-square data and anything unreadable (opening
    the data reports that properly)."""
    if source is None or source in BUILTIN:
        return None
    path = Path(source)
    try:
        if path.is_dir():
            pictures = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            idx = sorted(p for p in path.rglob("*") if _is_idx_name(p))
            idx = [p for p in idx if p.name.lower().startswith("train")] or idx
            if not pictures and not idx:
                return None
            path = pictures[0] if pictures else idx[0]
        if path.suffix.lower() in IMAGE_SUFFIXES:
            with open_picture(path) as img:
                w, h = img.size
            return w if w == h else None
        if path.suffix.lower() == ".npy":
            shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
        elif path.suffix.lower() == ".npz":
            shape = read_array(path).shape
        elif _is_idx_name(path):
            opener = gzip.open if path.suffix == ".gz" else open
            with opener(path, "rb") as fh:
                head = fh.read(16)
            shape = struct.unpack(">III", head[4:16])
        else:
            return None
    except (OSError, ValueError, struct.error, EOFError, UserError):
        return None
    if len(shape) in (3, 4) and shape[1] == shape[2]:
        return int(shape[1])
    return None


def _from_files(files: list[Path], size: int, channels: int, source: str) -> Examples:
    mode = "L" if channels == 1 else "RGB"
    # allocate: `latentgen prepare` streams the pictures into its output file
    out = allocate((len(files), channels, size, size), np.uint8)
    for i, f in enumerate(files):
        with open_picture(f) as opened:  # refuses unreadable files and decompression bombs
            try:
                img = ImageOps.exif_transpose(opened).convert(mode)
                img = ImageOps.fit(img, (size, size), Image.Resampling.LANCZOS)
            except (UnidentifiedImageError, OSError, ValueError, EOFError) as exc:
                raise UserError(f"cannot read image {f} ({exc}); remove or replace the "
                                "file") from None
        arr = np.asarray(img)
        out[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    return Examples(torch.from_numpy(out), decode, source, names=[str(f) for f in files])


def _is_idx_name(p: Path) -> bool:
    name = p.name.lower()
    return p.is_file() and ("idx3-ubyte" in name or name.endswith((".idx", ".idx.gz")))


def _read_idx(path: Path) -> np.ndarray:
    """MNIST / Fashion-MNIST image files: big-endian header, magic 0x00000803, uint8 pixels."""
    try:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            raw = fh.read()
        zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype != 0x08 or ndim != 3:
            raise ValueError("not an IDX uint8 image file (magic 0x00000803)")
        dims = struct.unpack(">" + "I" * ndim, raw[4:4 + 4 * ndim])
        data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
        return data[: int(np.prod(dims))].reshape(dims).copy()
    except (OSError, ValueError, struct.error, EOFError) as exc:
        raise UserError(f"cannot read IDX file {path} ({exc}); give an uncorrupted MNIST-style "
                        "image file") from None


def _from_array(arr: np.ndarray, size: int, channels: int, source: str) -> Examples:
    return Examples(pictures_from_array(arr, size, channels, source), decode, source)
