"""The embedded default sound set: short clips synthesized on the fly (nothing downloaded).

Four families a listener tells apart at once, each with continuous factors of variation:
  - notes: a plucked-string tone (harmonics fading with their order) on one of the eight
    steps of the A major scale from A3, with its brightness and decay varying;
  - chords: three such notes of a major or minor triad on a scale step from A2;
  - hits: a drum (a sine whose pitch falls quickly) or a snare-like burst of filtered noise;
  - chirps: a sine sweeping up or down over one to one and a half octaves under a smooth
    envelope.
Loudness, decay and brightness vary continuously. Every clip starts with its attack at time 0:
a waveform model then learns the recognisable part first, where random onsets and a continuum
of pitches would blur into noise (measured: they gave noise-like samples after 3 minutes).
The clips are deterministic for a given seed.
"""

from __future__ import annotations

from typing import cast

import numpy as np

DEFAULT_COUNT = 256
FAMILIES = ("note", "chord", "hit", "chirp")


def sounds(n: int = DEFAULT_COUNT, sample_rate: int = 16000, seconds: float = 1.0,
           seed: int = 1234) -> np.ndarray:
    """(n, samples) float32 clips in [-1, 1]; the families take turns."""
    rng = np.random.default_rng(seed)
    length = int(round(sample_rate * seconds))
    t = np.arange(length) / sample_rate
    out = np.zeros((n, length), dtype=np.float32)
    for i in range(n):
        family = FAMILIES[i % len(FAMILIES)]
        onset = 0.0
        tt = np.clip(t - onset, 0.0, None)
        on = (t >= onset).astype(np.float64)
        if family == "note":
            wave = _pluck(tt, _scale_pitch(rng), rng, sample_rate)
        elif family == "chord":
            root = _scale_pitch(rng, base=110.0)
            third = 4 if rng.random() < 0.5 else 3
            wave = cast(np.ndarray, sum(_pluck(tt, root * 2 ** (k / 12), rng, sample_rate)
                                        for k in (0, third, 7)))
        elif family == "hit":
            wave = _hit(tt, rng, sample_rate)
        else:
            wave = _chirp(tt, rng, seconds, sample_rate)
        wave = wave * on
        peak = np.abs(wave).max()
        if peak > 0:
            wave = wave / peak * rng.uniform(0.4, 0.9)
        out[i] = wave
    return out


#: semitones of the major scale; notes and chord roots take these steps above A3, so the set
#: has a few distinct pitches (as music does) rather than a continuum a waveform model blurs
SCALE = (0, 2, 4, 5, 7, 9, 11, 12)


def _pitch(rng: np.random.Generator, low: float = 110.0, high: float = 880.0) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _scale_pitch(rng: np.random.Generator, base: float = 220.0) -> float:
    return base * 2 ** (SCALE[int(rng.integers(len(SCALE)))] / 12)


def _pluck(t: np.ndarray, f0: float, rng: np.random.Generator, sr: int) -> np.ndarray:
    decay = rng.uniform(3.0, 8.0)
    bright = rng.uniform(1.0, 2.5)
    wave = np.zeros_like(t)
    for k in range(1, 9):
        if f0 * k >= sr / 2:
            break
        wave += np.sin(2 * np.pi * f0 * k * t) / k ** bright * np.exp(-decay * k ** 0.5 * t)
    attack = np.clip(t / 0.005, 0.0, 1.0)
    return wave * attack


def _hit(t: np.ndarray, rng: np.random.Generator, sr: int) -> np.ndarray:
    if rng.random() < 0.5:  # drum: pitch falls from ~3x to the body frequency
        body = rng.uniform(60.0, 90.0)
        freq = body * (1 + 2 * np.exp(-t * rng.uniform(20.0, 40.0)))
        phase = 2 * np.pi * np.cumsum(freq) / sr
        return np.sin(phase) * np.exp(-t * rng.uniform(6.0, 12.0))
    noise = rng.standard_normal(t.shape)
    kernel = rng.integers(2, 6)  # a short moving average darkens the noise a little
    noise = np.convolve(noise, np.ones(kernel) / kernel, mode="same")
    tone = np.sin(2 * np.pi * rng.uniform(150.0, 250.0) * t)
    return (0.8 * noise + 0.4 * tone) * np.exp(-t * rng.uniform(12.0, 25.0))


def _chirp(t: np.ndarray, rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    f0 = _pitch(rng, 300.0, 600.0)
    f1 = f0 * (rng.uniform(2.0, 3.0) if rng.random() < 0.5 else 1 / rng.uniform(2.0, 3.0))
    span = max(seconds * rng.uniform(0.5, 0.9), 1e-3)
    freq = f0 * (f1 / f0) ** np.clip(t / span, 0.0, 1.0)
    phase = 2 * np.pi * np.cumsum(freq) / sr
    env = np.sin(np.pi * np.clip(t / span, 0.0, 1.0)) ** 2
    return np.sin(phase) * env
