"""Bad input a hostile or unlucky user gives: decompression bombs, files that are not what
they claim, NaN data, out-of-range settings, checkpoints that hold code, text that looks like
markup. Each is one line naming the file or flag, exit code 2, and nothing written.
(Faults of the disk and the run folder: tests/test_reliability.py.)"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

import latentgen
from latentgen import UserError

from .conftest import TINY_TRAIN

# -- pictures that declare enormous sizes, files that are not what they claim ------------

def _png_header(width: int, height: int) -> bytes:
    """A PNG that declares ``width`` x ``height`` pixels and holds one row (a bomb's header)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (struct.pack(">I", len(data)) + kind + data
                + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00" * (width + 1))) + chunk(b"IEND", b""))


def _gif_bomb(path: Path, side: int) -> None:
    from PIL import Image

    Image.new("P", (8, 8)).save(path)
    raw = bytearray(path.read_bytes())
    raw[6:10] = struct.pack("<HH", side, side)  # logical screen
    at = raw.index(b"\x2c")  # image descriptor
    raw[at + 5:at + 9] = struct.pack("<HH", side, side)
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("side", [10_000, 30_000])  # PIL warns above 89 Mpx, fails above 179
def test_pictures_that_declare_enormous_sizes_are_refused(side, tiny_data, tmp_path, cli):
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(3):
        from PIL import Image

        Image.new("L", (16, 16), 40 * i).save(folder / f"ok{i}.png")
    (folder / "bomb.png").write_bytes(_png_header(side, side))
    for args in (["train", "--data", folder, "--out", tmp_path / "run", *TINY_TRAIN],
                 ["prepare", "--data", folder, "--out", tmp_path / "p.u8", "--image-size", "16",
                  "--channels", "1"]):
        res = cli(*args)
        assert res.code == 2, res
        assert "bomb.png" in res.err and "too many pixels" in res.err, res.err
    assert not (tmp_path / "run").exists() and not (tmp_path / "p.u8").exists()


def test_a_gif_that_declares_an_enormous_size_is_refused(tmp_path, cli):
    folder = tmp_path / "videos"
    folder.mkdir()
    _gif_bomb(folder / "bomb.gif", 30_000)
    res = cli("train", "--modality", "video", "--data", folder, "--out", tmp_path / "run",
              "--device", "cpu")
    assert res.code == 2, res
    assert "bomb.gif" in res.err and "too many pixels" in res.err, res.err


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path, cli):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b'epochs = 1\nnote = "\xff\xfe"\n')
    res = cli("train", "--config", bad, "--out", tmp_path / "run")
    assert res.code == 2 and "not UTF-8" in res.err and str(bad) in res.err, res


@pytest.mark.parametrize("seed", [2**64, 10**30, -1])
def test_a_seed_beyond_64_bits_is_refused(seed, tmp_path, cli):
    res = cli("train", "--seed", str(seed), "--out", tmp_path / "run")
    assert res.code == 2 and "--seed" in res.err, res
    assert not (tmp_path / "run").exists()


# -- values that must be refused ------------------------------------------------------

def test_a_picture_array_holding_nan_is_refused(tmp_path, cli):
    arr = np.random.default_rng(0).random((40, 16, 16), dtype=np.float32)
    arr[3, 2, 2] = np.nan
    np.save(tmp_path / "x.npy", arr)
    res = cli("train", "--data", tmp_path / "x.npy", "--out", tmp_path / "run", *TINY_TRAIN)
    assert res.code == 2 and "x.npy holds 1 NaN or infinite value" in res.err, res


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_sound_holding_nan_or_inf_is_refused(bad, tmp_path, cli):
    import soundfile as sf

    clips = (np.random.default_rng(0).random((8, 4000), dtype=np.float32) - 0.5) * 0.5
    clips[1, 5] = bad
    np.save(tmp_path / "x.npy", clips)
    wave = clips.reshape(-1).copy()
    sf.write(tmp_path / "x.wav", wave, 16000, subtype="FLOAT")
    for name in ("x.npy", "x.wav"):
        res = cli("train", "--modality", "audio", "--data", tmp_path / name, "--out",
                  tmp_path / "run", "--device", "cpu")
        assert res.code == 2 and f"{name} holds 1 NaN or infinite value" in res.err, res


def test_examples_refuse_nan_whatever_the_plugin(tmp_path):
    with pytest.raises(UserError, match="mine holds 2 NaN"):
        latentgen.Examples(torch.tensor([[0.0, float("nan")], [float("nan"), 1.0]]),
                           lambda b: b, "mine")


@pytest.mark.parametrize("value", ["inf", "nan", "-inf"])
def test_settings_are_finite(value, tmp_path, cli):
    res = cli("train", "--sigma", value, "--out", tmp_path / "run")
    assert res.code == 2 and "--sigma must be" in res.err, res
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"lr = {value}\n")
    res = cli("train", "--config", cfg, "--out", tmp_path / "run")
    assert res.code == 2 and "setting lr must be a finite number" in res.err, res


# -- checkpoints that hold code -------------------------------------------------------

class _Payload:
    def __reduce__(self):
        return (os.system, ("touch PWNED",))


def test_a_checkpoint_holding_code_is_refused_without_advice_to_run_it(trained_run, tmp_path,
                                                                        cli, monkeypatch):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    torch.save({"epoch": 1, "x": _Payload()}, run / "checkpoints" / "last.pt")
    monkeypatch.chdir(tmp_path)
    res = cli("synthesize", run, "--n", "2", "--out", tmp_path / "s")
    assert res.code == 2, res
    assert "holds Python code" in res.err and "not a latentgen checkpoint" in res.err, res.err
    assert "weights_only" not in res.err and "False" not in res.err
    assert not (tmp_path / "PWNED").exists()


# -- user text printed literally ------------------------------------------------------

@pytest.mark.parametrize("mask", ["pixels:-1", "pixels:[red]x"])
def test_user_text_in_errors_is_printed_literally(mask, tiny_data, tmp_path, cli):
    res = cli("train", "--data", tiny_data["train"], "--out", tmp_path / "run", "--mask", mask,
              *TINY_TRAIN)
    assert res.code == 2 and f"--mask {mask}" in res.err, res


def test_user_paths_in_messages_are_printed_literally(trained_run, tmp_path, cli):
    out = tmp_path / "[bold]out:-1:"
    res = cli("synthesize", trained_run, "--n", "2", "--out", out, "--device", "cpu")
    assert res.code == 0 and str(out) in res.out.replace("\n", ""), res


