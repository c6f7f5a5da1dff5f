"""The audio modality: raw mono waveforms from a 1D transposed-convolution generator.

As in the ABP paper's sound experiment, the generator lifts the latent to a short sequence
and upsamples it x10 per layer (three layers: x1000), each layer a transposed convolution with
kernel 20 and stride 10. The clip length (sample rate x seconds) is rounded up to the next
multiple of the upsampling factor and the excess trimmed from the end.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from latentgen import Examples, Modality, UpsamplingGenerator, UserError, option
from latentgen.model import halving_widths

from .datasets import decode, encode, open_sounds
from .spectrogram import colorize, log_mel, log_mel_distance

MIN_RATE, MAX_RATE = 1000, 192000
STRIDE = 10
GRID_GAP_SECONDS, ROW_GAP_SECONDS = 0.15, 0.5


@dataclass
class AudioOptions:
    sample_rate: int = option(16000, "samples per second of the clips (data is resampled)")
    clip_seconds: float = option(1.0, "length of each clip in seconds")
    width: int = option(16, "channels of the last hidden layer; each earlier layer doubles it")
    latent_field: bool = option(False, "a latent sequence (d x t) instead of a vector: the "
                                       "generator is then fully convolutional and a longer "
                                       "latent gives a longer sound")
    normalize: bool = option(True, "scale each file so its peak is 0.9 before cutting clips")


def clip_samples(opts: AudioOptions) -> int:
    return int(round(opts.sample_rate * opts.clip_seconds))


def upsampling_plan(samples: int) -> tuple[int, int]:
    """(layers, base length): up to three x10 layers, base = samples / 10^layers rounded up."""
    layers = 3 if samples >= 4000 else 2 if samples >= 400 else 1
    return layers, math.ceil(samples / STRIDE ** layers)


class AudioModality(Modality):
    name = "audio"
    description = "1D sound: transposed-convolution waveform generator, WAV + spectrogram output"
    Options = AudioOptions
    data_range = (-1.0, 1.0)
    metric_range = (-1.0, 1.0)
    metric_units = "per-sample MSE on waveforms in [-1, 1]"
    # The seed's sound experiment used delta = 0.1: the energy sums over every sample of a
    # clip, so its gradient is large and a step of 0.3 makes the Langevin chains overshoot.
    train_defaults = {"step_size": 0.1}

    def validate_options(self, opts: AudioOptions) -> None:
        if not MIN_RATE <= opts.sample_rate <= MAX_RATE:
            raise UserError(f"--sample-rate must be between {MIN_RATE} and {MAX_RATE}, got "
                            f"{opts.sample_rate}")
        if not 0 < opts.clip_seconds <= 600 or clip_samples(opts) < 40:
            raise UserError(f"--clip-seconds must give at least 40 samples and at most 10 "
                            f"minutes, got {opts.clip_seconds}")
        if opts.width < 1:
            raise UserError(f"--width must be at least 1, got {opts.width}")

    def build_generator(self, latent_dim: int, opts: AudioOptions) -> UpsamplingGenerator:
        samples = clip_samples(opts)
        layers, base = upsampling_plan(samples)
        widths = halving_widths(opts.width, layers)
        return UpsamplingGenerator(dims=1, latent_dim=latent_dim, out_channels=1, base=base,
                                   strides=[STRIDE] * layers, widths=widths,
                                   latent_field=base if opts.latent_field else None,
                                   crop=samples)

    def open_dataset(self, source: str | None, opts: AudioOptions) -> Examples:
        return open_sounds(source, opts.sample_rate, opts.clip_seconds, opts.normalize)

    def feature_pictures(self, x: torch.Tensor, opts: AudioOptions) -> torch.Tensor:
        """Log-mel spectrograms (N, 1, mel bands, frames), in dB: what a listener hears,
        without the phase that makes equal-sounding waves differ sample by sample."""
        return log_mel(x, opts.sample_rate).unsqueeze(1)

    def extra_metrics(self, y: torch.Tensor, x: torch.Tensor, opts: AudioOptions
                      ) -> dict[str, torch.Tensor]:
        return {"log_mel_db": log_mel_distance(y, x, opts.sample_rate)}

    # -- writers -------------------------------------------------------------------------
    def write_examples(self, x: torch.Tensor, out_dir: Path, prefix: str, opts: AudioOptions,
                       start: int = 0) -> list[Path]:
        """``prefix_NNNNN.wav`` (16-bit PCM) and its spectrogram ``prefix_NNNNN.png``."""
        import soundfile as sf

        out_dir.mkdir(parents=True, exist_ok=True)
        pcm = encode(x.cpu()).numpy()
        pictures = _spectrogram_images(x, opts)
        paths = []
        for i, (wave, picture) in enumerate(zip(pcm, pictures)):
            stem = out_dir / f"{prefix}_{start + i:05d}"
            sf.write(str(stem.with_suffix(".wav")), wave, opts.sample_rate, subtype="PCM_16")
            picture.save(stem.with_suffix(".png"))
            paths += [stem.with_suffix(".wav"), stem.with_suffix(".png")]
        return paths

    def write_grid(self, table: torch.Tensor, path: Path, opts: AudioOptions) -> list[Path]:
        """``grid.png``: spectrograms in the table's layout; ``grid.wav``: the clips played row
        by row, a short pause between clips and a longer one between rows."""
        import soundfile as sf

        rows, cols = table.shape[:2]
        pictures = _spectrogram_images(table.flatten(0, 1), opts)
        w, h = pictures[0].size
        pad = 4
        sheet = Image.new("RGB", (cols * (w + pad) + pad, rows * (h + pad) + pad), "white")
        for k, picture in enumerate(pictures):
            r, c = divmod(k, cols)
            sheet.paste(picture, (pad + c * (w + pad), pad + r * (h + pad)))
        path.parent.mkdir(parents=True, exist_ok=True)
        png, wav = path.with_suffix(".png"), path.with_suffix(".wav")
        sheet.save(png)
        gap = np.zeros(int(GRID_GAP_SECONDS * opts.sample_rate), np.int16)
        row_gap = np.zeros(int(ROW_GAP_SECONDS * opts.sample_rate), np.int16)
        pcm = encode(table.flatten(0, 1).cpu()).numpy().reshape(rows, cols, -1)
        parts = [np.concatenate([p for c in row for p in (c, gap)] + [row_gap]) for row in pcm]
        sf.write(str(wav), np.concatenate(parts), opts.sample_rate, subtype="PCM_16")
        return [png, wav]

    def read_examples(self, paths: list[Path], opts: AudioOptions) -> torch.Tensor:
        import soundfile as sf

        waves = [sf.read(str(p), dtype="int16")[0] for p in paths if p.suffix == ".wav"]
        return decode(torch.from_numpy(np.stack(waves)))


def _spectrogram_images(x: torch.Tensor, opts: AudioOptions) -> list[Image.Image]:
    db = log_mel(x.detach().cpu(), opts.sample_rate)
    scale = 2  # 64 mel bands -> 128 px tall; frames stretched to at least 128 px wide
    width = max(128, db.shape[-1] * scale)
    return [Image.fromarray(colorize(d)).resize((width, db.shape[1] * scale),
                                                Image.Resampling.NEAREST)
            for d in db]
