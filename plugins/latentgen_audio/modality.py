"""The audio modality: mono clips, learned as raw waveforms or as log-mel spectrograms
(``--representation``; see ``representations``), written as WAV files and spectrograms."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from latentgen import Examples, Modality, UpsamplingGenerator, UserError, option
from latentgen.data import need

from .datasets import decode, encode, open_sounds
from .representations import REPRESENTATIONS, Representation, clip_samples
from .spectrogram import colorize

MIN_RATE, MAX_RATE = 1000, 192000
#: the longest clip (10 minutes) and the fewest samples one holds
MAX_SECONDS, MIN_SAMPLES = 600, 40
GRID_GAP_SECONDS, ROW_GAP_SECONDS = 0.15, 0.5


@dataclass
class AudioOptions:
    sample_rate: int = option(16000, "samples per second of the clips (data is resampled)",
                              unit="Hz", minimum=MIN_RATE, maximum=MAX_RATE)
    clip_seconds: float = option(1.0, "length of each clip in seconds (at least 40 samples)",
                                 unit="seconds", positive=True, maximum=MAX_SECONDS)
    representation: str = option("logmel", "what the generator makes: 'logmel' (log-mel "
                                           "spectrograms, made into sound by Griffin-Lim) "
                                           "or 'waveform' (raw samples; trains with the "
                                           "seed's `step_size` 0.1 and the schema's other "
                                           "defaults unless set)",
                                 choices=tuple(REPRESENTATIONS))
    width: int = option(16, "channels of the last hidden layer; each earlier layer doubles it",
                        minimum=1)
    latent_field: bool = option(False, "a latent sequence (d x t) instead of a vector: the "
                                       "generator is then fully convolutional and a longer "
                                       "latent gives a longer sound")
    normalize: bool = option(True, "scale each file so its peak is 0.9 before cutting clips")


def representation(opts: AudioOptions) -> Representation:
    return REPRESENTATIONS[opts.representation]


class AudioModality(Modality):
    name = "audio"
    description = ("1D sound: log-mel spectrogram or waveform ConvNet generator, WAV + "
                   "spectrogram output")
    Options = AudioOptions
    data_range = (-1.0, 1.0)
    # the defaults' (log-mel) units; a run's own come from metric_units_for
    metric_range = REPRESENTATIONS["logmel"].metric_range
    metric_units = REPRESENTATIONS["logmel"].metric_units
    # Log-mel spectrograms (the default representation) are pictures: the picture defaults
    # (five Langevin steps, sigma learned, the rate falling to a tenth, 60 epochs) with d = 8,
    # chosen on the embedded sounds' held-out error and synthesis (docs/audio.md).
    train_defaults = {"latent_dim": 8, "langevin_steps": 5, "epochs": 60,
                      "learn_sigma": True, "lr_end": 0.1}
    # Waveforms: the seed's sound experiment used delta = 0.1: the energy sums over every
    # sample of a clip, so its gradient is large and a step of 0.3 makes the chains overshoot.
    waveform_train_defaults = {"step_size": 0.1}
    # runs and prepared files from before --representation learned waveforms
    legacy_options = {"representation": "waveform"}

    def train_defaults_for(self, options: Mapping[str, Any]) -> dict[str, Any]:
        if options.get("representation", AudioOptions.representation) == "waveform":
            return dict(self.waveform_train_defaults)
        return dict(self.train_defaults)

    def validate_options(self, opts: AudioOptions) -> None:
        # the declarations bound each option; a clip also needs samples enough at its rate
        if clip_samples(opts) < MIN_SAMPLES:
            raise UserError(f"`clip_seconds` must give at least {MIN_SAMPLES} samples at "
                            f"{opts.sample_rate} Hz, got {opts.clip_seconds}")

    def metric_scale_for(self, opts: AudioOptions) -> float:
        lo, hi = representation(opts).metric_range
        return ((hi - lo) / (self.data_range[1] - self.data_range[0])) ** 2

    def metric_units_for(self, opts: AudioOptions) -> str:
        return representation(opts).metric_units

    def writes_lossily(self, opts: AudioOptions) -> bool:
        return representation(opts).lossy

    def build_generator(self, latent_dim: int, opts: AudioOptions) -> UpsamplingGenerator:
        return representation(opts).build_generator(latent_dim, opts)

    def open_dataset(self, source: str | None, opts: AudioOptions) -> Examples:
        waves = open_sounds(source, opts.sample_rate, opts.clip_seconds, opts.normalize)
        examples = representation(opts).from_waves(waves, opts)
        examples.labels = waves.labels  # a representation keeps the clips in their order
        return examples

    def feature_pictures(self, x: torch.Tensor, opts: AudioOptions) -> torch.Tensor:
        """Log-mel spectrograms (N, 1, mel bands, frames), in dB: what a listener hears,
        without the phase that makes equal-sounding waves differ sample by sample. For a
        log-mel run, the generator's own pictures (the vocoder's cost is not the model's)."""
        return representation(opts).db(x, opts).unsqueeze(1)

    def extra_metrics(self, y: torch.Tensor, x: torch.Tensor, opts: AudioOptions
                      ) -> dict[str, torch.Tensor]:
        return {"log_mel_db": representation(opts).log_mel_db(y, x, opts)}

    # -- writers -------------------------------------------------------------------------
    def write_examples(self, x: torch.Tensor, out_dir: Path, prefix: str, opts: AudioOptions,
                       start: int = 0) -> list[Path]:
        """``prefix_NNNNN.wav`` (16-bit PCM) and its spectrogram ``prefix_NNNNN.png``."""
        sf = need("soundfile", "the audio modality", "audio", "to read and write sound files")

        out_dir.mkdir(parents=True, exist_ok=True)
        rep = representation(opts)
        pcm = encode(rep.waves(x, opts).cpu()).numpy()
        pictures = _spectrogram_images(rep.db(x, opts))
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
        sf = need("soundfile", "the audio modality", "audio", "to read and write sound files")

        rows, cols = table.shape[:2]
        rep = representation(opts)
        flat = table.flatten(0, 1)
        pictures = _spectrogram_images(rep.db(flat, opts))
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
        pcm = encode(rep.waves(flat, opts).cpu()).numpy().reshape(rows, cols, -1)
        parts = [np.concatenate([p for c in row for p in (c, gap)] + [row_gap]) for row in pcm]
        sf.write(str(wav), np.concatenate(parts), opts.sample_rate, subtype="PCM_16")
        return [png, wav]

    def read_examples(self, paths: list[Path], opts: AudioOptions) -> torch.Tensor:
        """The WAVs, as the generator makes them (a log-mel run: their spectrograms)."""
        sf = need("soundfile", "the audio modality", "audio", "to read and write sound files")

        waves = decode(torch.from_numpy(np.stack(
            [sf.read(str(p), dtype="int16")[0] for p in paths if p.suffix == ".wav"])))
        return representation(opts).of_waves(waves, opts)


def _spectrogram_images(db: torch.Tensor) -> list[Image.Image]:
    db = db.detach().cpu()
    scale = 2  # 64 mel bands -> 128 px tall; frames stretched to at least 128 px wide
    width = max(128, db.shape[-1] * scale)
    return [Image.fromarray(colorize(d)).resize((width, db.shape[1] * scale),
                                                Image.Resampling.NEAREST)
            for d in db]
