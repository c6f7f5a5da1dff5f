"""Log-mel spectrograms: pictures of sound for grids and reports, a spectral distance, and the
representation a log-mel generator learns (``--representation logmel``).

Frames of 32 ms every 10 ms, 64 mel bands up to half the sample rate (fewer below 8 kHz),
power in dB on one fixed scale (full-scale tones reach about +20 dB, the floor is -60 dB),
so pictures and distances compare across clips, runs, sample rates and representations.
"""

from __future__ import annotations

import functools
from typing import Any, cast

import numpy as np
import torch
from torch import Tensor

from latentgen.data import need

N_MELS = 64
DB_FLOOR, DB_CEIL = -60.0, 20.0
#: a log-mel picture in model space: dB mapped linearly onto [-1, 1]
DB_MID, DB_HALF = (DB_FLOOR + DB_CEIL) / 2, (DB_CEIL - DB_FLOOR) / 2


def _settings(sample_rate: int) -> tuple[int, int, int]:
    """(n_fft, hop, mel bands) at this sample rate."""
    n_fft = 2 ** int(round(np.log2(sample_rate * 0.032)))
    # low sample rates have few frequency bins: fewer bands, so that none is empty
    return n_fft, max(1, sample_rate // 100), min(N_MELS, n_fft // 4)


@functools.lru_cache(maxsize=8)
def _mel(sample_rate: int) -> torch.nn.Module:
    torchaudio = need("torchaudio", "the audio modality", "audio", "to make spectrograms")

    n_fft, hop, n_mels = _settings(sample_rate)
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, hop_length=hop, n_mels=n_mels, f_min=0.0,
        f_max=sample_rate / 2, normalized=True)


def _filters(sample_rate: int) -> Tensor:
    """The mel filter bank (frequency bins, mel bands) that ``log_mel`` applies."""
    mel: Any = _mel(sample_rate)
    return cast(Tensor, mel.mel_scale.fb)


def mel_shape(samples: int, sample_rate: int) -> tuple[int, int]:
    """(mel bands, frames) of the log-mel spectrogram of a clip of ``samples``."""
    _, hop, n_mels = _settings(sample_rate)
    return n_mels, 1 + samples // hop


def log_mel(wave: Tensor, sample_rate: int) -> Tensor:
    """(N, 1, samples) or (N, samples) waveforms -> (N, n_mels, frames) in dB, floored."""
    wave = wave.reshape(wave.shape[0], -1).float()
    mel = _mel(sample_rate).to(wave.device)(wave)
    return (10.0 * torch.log10(mel.clamp_min(1e-12))).clamp(DB_FLOOR, DB_CEIL)


def db_distance(a: Tensor, b: Tensor) -> Tensor:
    """Per-example RMS difference of two batches of dB pictures."""
    return (a - b).pow(2).flatten(1).mean(1).sqrt()


def db_to_model(db: Tensor) -> Tensor:
    return (db - DB_MID) / DB_HALF


def model_to_db(x: Tensor) -> Tensor:
    """Model-space log-mel pictures (N, n_mels, frames) -> dB, clamped to the fixed scale (a
    generator's tanh headroom aside, model outputs already lie on it)."""
    return (x.float() * DB_HALF + DB_MID).clamp(DB_FLOOR, DB_CEIL)


@torch.no_grad()
def to_waves(db: Tensor, sample_rate: int, samples: int, iterations: int = 32,
             seed: int = 0) -> Tensor:
    """Log-mel pictures in dB (N, n_mels, frames) -> waveforms (N, samples) in [-1, 1].

    The magnitude spectrum comes from the mel powers by non-negative least squares
    (multiplicative updates from a filter-weighted spread): a plain least-squares inverse
    undoes the mel filters with negative powers, which clamping turns into holes and then
    into a 5.7 dB round-trip error, against 1.6 dB here on the embedded sounds. The phase is
    found by fast Griffin-Lim (momentum 0.99), started from a seeded random phase so that
    the same pictures always give the same sound.
    """
    n_fft, hop, _ = _settings(sample_rate)
    fb = _filters(sample_rate).to(db.device)  # (bins, mels)
    power = torch.pow(10.0, db.float() / 10.0)  # (N, mels, frames)
    # a first guess: each band's power spread over its bins, weighted by the filters
    spread = fb / fb.sum(1, keepdim=True).clamp_min(1e-8)
    spec = (spread @ (power / fb.sum(0).clamp_min(1e-8)[:, None])
            ).clamp_min(1e-12)
    a = fb.T
    for _ in range(100):  # Lee and Seung's multiplicative updates for min |a s - p|^2, s >= 0
        spec = spec * (a.T @ power) / (a.T @ (a @ spec)).clamp_min(1e-30)
    window = torch.hann_window(n_fft, device=db.device)
    # MelSpectrogram(normalized=True) divides the STFT by the window's norm
    magnitude = (spec * window.pow(2).sum()).sqrt()
    rng = torch.Generator(device="cpu").manual_seed(seed)
    angles = torch.polar(torch.ones_like(magnitude), 2 * np.pi * torch.rand(
        magnitude.shape, generator=rng).to(db.device))
    previous = torch.zeros_like(angles)
    momentum = 0.99 / 1.99

    def istft(s: Tensor) -> Tensor:
        return torch.istft(s, n_fft, hop, n_fft, window, length=samples)

    for _ in range(iterations):
        rebuilt = torch.stft(istft(magnitude * angles), n_fft, hop, n_fft, window,
                             center=True, pad_mode="reflect", return_complex=True)
        angles = rebuilt - previous * momentum
        angles = angles / angles.abs().clamp_min(1e-16)
        previous = rebuilt
    return istft(magnitude * angles).float().clamp(-1.0, 1.0)


# A perceptually ordered dark-to-bright colour ramp (anchors close to matplotlib's "magma").
_ANCHORS = np.array([[0, 0, 4], [40, 11, 84], [101, 21, 110], [159, 42, 99], [212, 72, 66],
                     [245, 125, 21], [250, 193, 39], [252, 253, 191]], dtype=np.float64)


def colorize(db: Tensor) -> np.ndarray:
    """(n_mels, frames) dB -> (n_mels, frames, 3) uint8, low frequencies at the bottom."""
    v = ((db.cpu().numpy() - DB_FLOOR) / (DB_CEIL - DB_FLOOR)).clip(0, 1)[::-1]
    pos = v * (len(_ANCHORS) - 1)
    lo = np.floor(pos).astype(int).clip(0, len(_ANCHORS) - 2)
    frac = (pos - lo)[..., None]
    rgb = _ANCHORS[lo] * (1 - frac) + _ANCHORS[lo + 1] * frac
    return rgb.round().astype(np.uint8)
