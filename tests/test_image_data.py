"""Image loaders: folders (recursive, mixed formats and sizes), arrays, IDX files."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest
import torch
from PIL import Image

from latentgen.errors import UserError
from latentgen.plugins.registry import get_registry


def _open(source, size=16, channels=1):
    mod = get_registry().modality("image")
    return mod.open_dataset(str(source), mod.make_options({"image_size": size,
                                                            "channels": channels}))


def test_folder_recursive_mixed_formats_resized_and_cropped(tmp_path):
    (tmp_path / "sub").mkdir()
    Image.new("RGB", (40, 20), (255, 0, 0)).save(tmp_path / "a.png")
    Image.new("RGB", (30, 30), (0, 255, 0)).save(tmp_path / "sub" / "b.jpg")
    Image.new("L", (64, 64), 128).save(tmp_path / "sub" / "c.bmp")
    Image.new("RGB", (17, 33), (0, 0, 255)).save(tmp_path / "d.webp")
    (tmp_path / "notes.txt").write_text("ignored")
    data = _open(tmp_path, 16, 3)
    assert len(data) == 4
    x = data.get(torch.arange(4))
    assert x.shape == (4, 3, 16, 16)
    assert x.min() >= -1 and x.max() <= 1
    red = x[0].mean((1, 2))
    assert red[0] > 0.9 and red[1] < -0.9   # a.png is pure red after center crop
    gray = _open(tmp_path, 32, 1)
    assert gray.get(torch.arange(4)).shape == (4, 1, 32, 32)


def test_npy_uint8_and_npz_float(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (5, 28, 28), dtype=np.uint8)
    np.save(tmp_path / "x.npy", arr)
    data = _open(tmp_path / "x.npy", 16, 1)
    assert data.get(torch.arange(5)).shape == (5, 1, 16, 16)
    flt = np.random.default_rng(1).random((3, 32, 32, 3)).astype(np.float32)
    np.savez(tmp_path / "y.npz", images=flt)
    data = _open(tmp_path / "y.npz", 32, 3)
    x = data.get(torch.arange(3))
    expected = torch.from_numpy(flt).permute(0, 3, 1, 2) * 2 - 1
    assert (x - expected).abs().max() < 2 / 255 + 1e-6


def _idx_bytes(arr: np.ndarray) -> bytes:
    return struct.pack(">HBB", 0, 8, 3) + struct.pack(">III", *arr.shape) + arr.tobytes()


def test_idx_raw_and_gz(tmp_path):
    arr = np.arange(2 * 28 * 28, dtype=np.uint8).reshape(2, 28, 28)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(_idx_bytes(arr))
    with gzip.open(tmp_path / "t10k-images-idx3-ubyte.gz", "wb") as fh:
        fh.write(_idx_bytes(arr[:1]))
    assert len(_open(tmp_path / "train-images-idx3-ubyte")) == 2
    assert len(_open(tmp_path / "t10k-images-idx3-ubyte.gz")) == 1
    # a folder without pictures: its training IDX files only (t10k stays held out)
    assert len(_open(tmp_path, 16)) == 2


def test_bad_sources_raise_user_errors(tmp_path):
    (tmp_path / "bad-idx3-ubyte").write_bytes(b"\x00\x00\x09\x03junk")
    with pytest.raises(UserError, match="cannot read IDX"):
        _open(tmp_path / "bad-idx3-ubyte")
    np.save(tmp_path / "v.npy", np.zeros((4, 5, 6, 7, 8)))
    with pytest.raises(UserError, match="is not images"):
        _open(tmp_path / "v.npy")
    np.save(tmp_path / "neg.npy", np.full((2, 8, 8), -0.5, np.float32))
    with pytest.raises(UserError, match="store images as uint8"):
        _open(tmp_path / "neg.npy")
    (tmp_path / "f.xyz").write_text("?")
    with pytest.raises(UserError, match="unsupported file type"):
        _open(tmp_path / "f.xyz")


def test_embedded_faces_are_deterministic():
    mod = get_registry().modality("image")
    opts = mod.make_options({"image_size": 16, "channels": 3})
    a = mod.open_dataset(None, opts).get(torch.arange(8))
    b = mod.open_dataset(None, opts).get(torch.arange(8))
    assert torch.equal(a, b)
    assert a.std() > 0.2  # not blank
