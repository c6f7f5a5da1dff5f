"""Log-mel spectrograms: pictures of sound for grids and reports, and a spectral distance.

Frames of 32 ms every 10 ms, 64 mel bands up to half the sample rate (fewer below 8 kHz),
power in dB on one fixed scale (full-scale tones reach about +20 dB, the floor is -60 dB),
so pictures and distances compare across clips, runs and sample rates.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
from torch import Tensor

N_MELS = 64
DB_FLOOR, DB_CEIL = -60.0, 20.0


@functools.lru_cache(maxsize=8)
def _mel(sample_rate: int) -> torch.nn.Module:
    import torchaudio

    n_fft = 2 ** int(round(np.log2(sample_rate * 0.032)))
    # low sample rates have few frequency bins: fewer bands, so that none is empty
    return torchaudio.transforms.MelSpectrogram(
        sample_rate=sample_rate, n_fft=n_fft, hop_length=max(1, sample_rate // 100),
        n_mels=min(N_MELS, n_fft // 4), f_min=0.0, f_max=sample_rate / 2, normalized=True)


def log_mel(wave: Tensor, sample_rate: int) -> Tensor:
    """(N, 1, samples) or (N, samples) waveforms -> (N, n_mels, frames) in dB, floored."""
    wave = wave.reshape(wave.shape[0], -1).float()
    mel = _mel(sample_rate).to(wave.device)(wave)
    return (10.0 * torch.log10(mel.clamp_min(1e-12))).clamp(DB_FLOOR, DB_CEIL)


def log_mel_distance(y: Tensor, x: Tensor, sample_rate: int) -> Tensor:
    """Per-example RMS difference of the two log-mel spectrograms, in dB."""
    return (log_mel(y, sample_rate) - log_mel(x, sample_rate)).pow(2).flatten(1).mean(1).sqrt()


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
