"""Optional extras: without torchaudio / soundfile (``latentgen[audio]``) or PyAV
(``latentgen[video]``) the audio and video modalities still register, pictures still train, and
using what needs a missing package is one line naming it and the extra to install.

A missing package is stood in for by ``sys.modules[name] = None``: importing it then raises
``ModuleNotFoundError``, as on an install without it.
"""

from __future__ import annotations

import sys
import wave
from pathlib import Path

import numpy as np
import pytest
import torch

import latentgen
from latentgen import UserError
from latentgen.plugins import registry as plugins

AUDIO_PACKAGES = ("soundfile", "torchaudio", "torchaudio.functional", "torchaudio.transforms")
VIDEO_PACKAGES = ("av",)
RATE = 4000
AUDIO = {"sample_rate": RATE, "clip_seconds": 0.25, "width": 8, "normalize": False}
VIDEO = {"frames": 4, "image_size": 16, "channels": 1, "width": 4}


def block(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Make ``import name`` fail as if the package were not installed (undone after the test)."""
    from latentgen_audio import spectrogram

    spectrogram._mel.cache_clear()  # a cached transform would hide a missing torchaudio
    for name in names:
        monkeypatch.setitem(sys.modules, name, None)


def _modality(name: str, **values):
    mod = plugins.get_registry().modality(name)
    return mod, mod.make_options(values)


def _one_line(exc: pytest.ExceptionInfo[UserError], package: str, extra: str) -> str:
    text = str(exc.value)
    assert "\n" not in text
    assert f"needs {package} " in text and f"pip install 'latentgen[{extra}]'" in text, text
    return text


def _write_wav(path: Path, samples: np.ndarray, rate: int) -> None:
    """16-bit mono WAV through the standard library (soundfile is what is missing)."""
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes((samples * 32767).astype("<i2").tobytes())


# -- audio ---------------------------------------------------------------------------------
def test_sound_files_need_soundfile(monkeypatch, tmp_path):
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)
    _write_wav(tmp_path / "tone.wav", tone, RATE)
    block(monkeypatch, "soundfile")
    mod, opts = _modality("audio", representation="waveform", **AUDIO)
    with pytest.raises(UserError) as exc:  # reading
        mod.open_dataset(str(tmp_path), opts)
    assert _one_line(exc, "soundfile", "audio") == (
        "the audio modality needs soundfile to read and write sound files: "
        "pip install 'latentgen[audio]'")
    with pytest.raises(UserError) as exc:  # writing
        mod.write_examples(torch.zeros(2, 1, RATE // 4), tmp_path / "out", "s", opts)
    _one_line(exc, "soundfile", "audio")
    assert not (tmp_path / "out").exists()
    with pytest.raises(UserError) as exc:
        mod.read_examples([tmp_path / "tone.wav"], opts)
    _one_line(exc, "soundfile", "audio")


def test_spectrograms_and_resampling_need_torchaudio(monkeypatch):
    from latentgen_audio.datasets import read_mono

    block(monkeypatch, "torchaudio", "torchaudio.functional", "torchaudio.transforms")
    mod, opts = _modality("audio", representation="logmel", **AUDIO)
    with pytest.raises(UserError) as exc:  # the default representation: log-mel pictures
        mod.open_dataset(None, opts)
    assert "to make spectrograms" in _one_line(exc, "torchaudio", "audio")
    with pytest.raises(UserError) as exc:  # samples at another rate are resampled
        read_mono(np.zeros(800, np.float32), RATE, "clip", rate=2 * RATE)
    assert "to resample" in _one_line(exc, "torchaudio", "audio")
    # at the run's own rate nothing is resampled
    assert read_mono(np.zeros(800, np.float32), RATE, "clip", rate=RATE).shape == (800,)


# -- video ---------------------------------------------------------------------------------
def test_mp4_needs_av_and_gif_does_not(monkeypatch, tmp_path):
    block(monkeypatch, "av")
    mod, opts = _modality("video", **VIDEO)
    clips = torch.rand(2, 1, 4, 16, 16) * 2 - 1
    with pytest.raises(UserError) as exc:  # writing MP4
        mod.write_examples(clips, tmp_path / "mp4", "c", opts)
    assert _one_line(exc, "av", "video") == (
        "the video modality needs av to write MP4 video: pip install 'latentgen[video]'")
    (tmp_path / "clip.mp4").write_bytes(b"never opened: the import fails first")
    with pytest.raises(UserError) as exc:  # reading MP4
        mod.open_dataset(str(tmp_path / "clip.mp4"), opts)
    assert "to read MP4" in _one_line(exc, "av", "video")
    # GIF goes through Pillow: written and read back without PyAV
    paths = mod.write_examples(clips, tmp_path / "gif", "c", opts, fmt="gif")
    assert mod.read_examples(paths, opts).shape == (2, 1, 4, 16, 16)


# -- pictures and the plugin list without any of them ------------------------------------
def test_plugins_register_and_pictures_train_without_the_extras(monkeypatch, tmp_path):
    block(monkeypatch, *AUDIO_PACKAGES, *VIDEO_PACKAGES)
    # the built-in plugins imported afresh, as in a process where the packages are missing
    for name in [m for m in sys.modules if m.split(".")[0] in ("latentgen_audio",
                                                                "latentgen_video")]:
        monkeypatch.delitem(sys.modules, name)
    plugins.reset()
    reg = plugins.get_registry()
    for name in ("audio", "video"):
        assert reg.plugins[name].error is None and reg.plugins[name].modalities == [name]
    run = latentgen.train(modality="image", epochs=1, max_steps=2, device="cpu", seed=0,
                          out=tmp_path / "faces", latent_dim=4, batch_size=32,
                          langevin_steps=2, image_size=16, channels=1, width=8)
    assert run is not None and (tmp_path / "faces" / "config.toml").exists()


def test_cli_says_which_extra_to_install_in_one_line(monkeypatch, cli, tmp_path):
    block(monkeypatch, "torchaudio", "torchaudio.functional", "torchaudio.transforms")
    res = cli("train", "--modality", "audio", "--sample-rate", RATE, "--clip-seconds", "0.25",
              "--latent-dim", "4", "--batch-size", "16", "--langevin-steps", "1", "--width",
              "8", "--epochs", "1", "--device", "cpu", "--out", tmp_path / "sounds")
    assert res.code != 0, res
    lines = [line for line in res.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in res.err, res.err
    assert "torchaudio" in lines[0] and "pip install 'latentgen[audio]'" in lines[0], res.err
    assert not (tmp_path / "sounds").exists()
