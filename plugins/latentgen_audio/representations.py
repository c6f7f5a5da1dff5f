"""What the audio generator makes: raw waveforms, or log-mel spectrograms turned into sound.

``waveform``: the ABP paper's sound model. The generator lifts the latent to a short sequence
and upsamples it x10 per layer (up to three layers: x1000), each layer a transposed
convolution with kernel 20 and stride 10; the clip length is rounded up to the next multiple
of the upsampling factor and the excess trimmed from the end. The squared error compares
samples, so two clips that sound alike but differ in phase are far apart.

``logmel``: the generator makes the clip's log-mel spectrogram (``spectrogram.log_mel``: 64
mel bands by one frame per 10 ms, in dB from -60 to +20 mapped onto [-1, 1]) as a picture,
with a DCGAN-style 2D generator (x2 per layer in frequency and time). The squared error then
compares what a listener hears, in dB; the writers make the sound from the spectrogram
(``spectrogram.to_waves``: non-negative mel inversion and Griffin-Lim). Its reconstruction
error is reported in dB^2, and the log-mel distance in dB that both representations report
(``log_mel_db``) compares runs of either.
"""

from __future__ import annotations

import math
from typing import Any, ClassVar

import torch
from torch import Tensor

from latentgen import Examples, UpsamplingGenerator
from latentgen.model import halving_widths

from .spectrogram import (
    DB_CEIL,
    DB_FLOOR,
    db_distance,
    db_to_model,
    log_mel,
    mel_shape,
    model_to_db,
    to_waves,
)

STRIDE = 10
#: clips turned into spectrograms this many at a time (bounds the memory a long set takes)
CHUNK = 256


def clip_samples(opts: Any) -> int:
    return int(round(opts.sample_rate * opts.clip_seconds))


class Representation:
    name: ClassVar[str]
    metric_range: ClassVar[tuple[float, float]]
    metric_units: ClassVar[str]
    #: whether a written WAV reads back only approximately (phase estimated)
    lossy: ClassVar[bool]

    def build_generator(self, latent_dim: int, opts: Any) -> UpsamplingGenerator:
        raise NotImplementedError

    def of_waves(self, waves: Tensor, opts: Any) -> Tensor:
        """Waveforms (N, 1, samples) in [-1, 1] -> model-space examples."""
        raise NotImplementedError

    def from_waves(self, waves: Examples, opts: Any) -> Examples:
        """Examples of int16 clips -> examples as the generator makes them."""
        raise NotImplementedError

    def waves(self, x: Tensor, opts: Any) -> Tensor:
        """Model-space examples -> waveforms (N, 1, samples) in [-1, 1]."""
        raise NotImplementedError

    def db(self, x: Tensor, opts: Any) -> Tensor:
        """Model-space examples -> log-mel spectrograms in dB (N, n_mels, frames)."""
        raise NotImplementedError

    def log_mel_db(self, y: Tensor, x: Tensor, opts: Any) -> Tensor:
        """Per-example RMS log-mel difference of ``x`` from ``y``, in dB: the same measure
        for every representation, so runs of either compare."""
        return db_distance(self.db(y, opts), self.db(x, opts))


class Waveform(Representation):
    name = "waveform"
    metric_range = (-1.0, 1.0)
    metric_units = "per-sample MSE on waveforms in [-1, 1]"
    lossy = False

    def build_generator(self, latent_dim: int, opts: Any) -> UpsamplingGenerator:
        samples = clip_samples(opts)
        layers = 3 if samples >= 4000 else 2 if samples >= 400 else 1
        base = math.ceil(samples / STRIDE ** layers)
        return UpsamplingGenerator(dims=1, latent_dim=latent_dim, out_channels=1, base=base,
                                   strides=[STRIDE] * layers,
                                   widths=halving_widths(opts.width, layers),
                                   latent_field=base if opts.latent_field else None,
                                   crop=samples)

    def of_waves(self, waves: Tensor, opts: Any) -> Tensor:
        return waves

    def from_waves(self, waves: Examples, opts: Any) -> Examples:
        return waves

    def waves(self, x: Tensor, opts: Any) -> Tensor:
        return x

    def db(self, x: Tensor, opts: Any) -> Tensor:
        return log_mel(x, opts.sample_rate)


#: x2 layers of the log-mel generator, in time (and in frequency while the bands allow)
LOGMEL_LAYERS = 4
#: mel bands of the first layer's field (at least)
MEL_BASE = 4


def logmel_plan(n_mels: int, frames: int) -> tuple[tuple[int, int], list[tuple[int, int]]]:
    """(base field, strides) of the log-mel generator: x2 per layer in time, and in frequency
    down to a base of 4 bands (64 bands: 4 -> 64; 8 bands, at 1 kHz: 4 -> 8)."""
    up_mel = max(0, min(LOGMEL_LAYERS, int(math.log2(max(1, n_mels // MEL_BASE)))))
    base = (math.ceil(n_mels / 2 ** up_mel), math.ceil(frames / 2 ** LOGMEL_LAYERS))
    strides = [(2 if i < up_mel else 1, 2) for i in range(LOGMEL_LAYERS)]
    return base, strides


class LogMel(Representation):
    name = "logmel"
    metric_range = (DB_FLOOR, DB_CEIL)
    metric_units = "per-bin MSE of log-mel spectrograms in dB^2"
    lossy = True

    def build_generator(self, latent_dim: int, opts: Any) -> UpsamplingGenerator:
        n_mels, frames = mel_shape(clip_samples(opts), opts.sample_rate)
        base, strides = logmel_plan(n_mels, frames)
        return UpsamplingGenerator(dims=2, latent_dim=latent_dim, out_channels=1, base=base,
                                   strides=strides,
                                   widths=halving_widths(opts.width, len(strides)),
                                   latent_field=base if opts.latent_field else None,
                                   crop=(n_mels, frames))

    def of_waves(self, waves: Tensor, opts: Any) -> Tensor:
        return db_to_model(log_mel(waves, opts.sample_rate)).unsqueeze(1)

    def from_waves(self, waves: Examples, opts: Any) -> Examples:
        # stored as float16 model-space pictures: 0.02 dB steps, and 40 % of the int16 clips'
        # size at 16 kHz
        parts = [self.of_waves(waves.get(torch.arange(i, min(i + CHUNK, len(waves)))),
                               opts).half() for i in range(0, len(waves), CHUNK)]
        return Examples(torch.cat(parts), decode_pictures, waves.source, names=waves.names)

    def waves(self, x: Tensor, opts: Any) -> Tensor:
        return to_waves(model_to_db(x[:, 0]), opts.sample_rate, clip_samples(opts)
                        ).unsqueeze(1)

    def db(self, x: Tensor, opts: Any) -> Tensor:
        return model_to_db(x[:, 0])


def decode_pictures(batch: Tensor) -> Tensor:
    """Stored float16 log-mel pictures -> float32 model space, shape (N, 1, n_mels, frames)."""
    return batch.float()


REPRESENTATIONS: dict[str, Representation] = {r.name: r for r in (Waveform(), LogMel())}
