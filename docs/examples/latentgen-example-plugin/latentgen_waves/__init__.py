"""Example third-party latentgen plugin: a 'waves' modality of short 1D signals.

It shows every piece a modality needs: options, a generator built from latentgen's shared
UpsamplingGenerator, a dataset opener with an embedded default and a named decode function
(so `latentgen prepare` can pack its data), and writers (.npy files per example, a PNG plot for
the grid). It imports only latentgen's stable API; tests/test_waves.py runs the modality
contract from ``latentgen.testing`` on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image, ImageDraw

from latentgen import Examples, Modality, UpsamplingGenerator, UserError, hookimpl, option

__version__ = "0.1.0"


def decode(batch: torch.Tensor) -> torch.Tensor:
    """Stored batch -> model-space data. A module-level function, not a lambda: a file packed
    by `latentgen prepare` names it (``latentgen_waves:decode``) and training imports it again."""
    return batch.float()


@dataclass
class WaveOptions:
    # the declaration is the check: latentgen refuses any other value, naming the option
    length: Literal[16, 32, 64, 128] = option(64, "samples per signal")
    count: int = option(256, "signals in the embedded default set", minimum=1)


class WavesModality(Modality):
    name = "waves"
    Options = WaveOptions
    data_range = (-1.0, 1.0)
    metric_range = (-1.0, 1.0)
    metric_units = "per-element MSE on samples in [-1, 1]"

    def build_generator(self, latent_dim: int, opts: WaveOptions) -> UpsamplingGenerator:
        # 1D: latent -> 4 samples, then x2 twice: 16; the last layer x(length/16)
        last = opts.length // 16
        strides = [2, 2] + ([last] if last > 1 else [])
        widths = [64, 32] + ([16] if last > 1 else [])
        return UpsamplingGenerator(dims=1, latent_dim=latent_dim, out_channels=1, base=4,
                                   strides=strides, widths=widths)

    def open_dataset(self, source: str | None, opts: WaveOptions) -> Examples:
        if source is None:
            rng = np.random.default_rng(0)
            t = np.linspace(0, 1, opts.length, dtype=np.float32)
            freq = rng.uniform(1, 4, (opts.count, 1))
            phase = rng.uniform(0, 2 * math.pi, (opts.count, 1))
            amp = rng.uniform(0.3, 0.9, (opts.count, 1))
            arr = (amp * np.sin(2 * math.pi * freq * t + phase)).astype(np.float32)
        else:
            path = Path(source)
            if path.suffix != ".npy" or not path.is_file():
                raise UserError(f"--data {source}: give a .npy file of shape (N, {opts.length})")
            arr = np.load(path).astype(np.float32)
            if arr.ndim != 2 or arr.shape[1] != opts.length:
                raise UserError(f"--data {source}: shape {arr.shape}, expected (N, {opts.length})")
        return Examples(torch.from_numpy(arr[:, None, :]), decode, source or "builtin")

    def write_examples(self, x: torch.Tensor, out_dir: Path, prefix: str, opts: Any,
                       start: int = 0) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        paths = []
        for i, wave in enumerate(x.cpu().numpy()):
            path = out_dir / f"{prefix}_{start + i:05d}.npy"
            np.save(path, wave[0])
            paths.append(path)
        return paths

    def read_examples(self, paths: list[Path], opts: Any) -> torch.Tensor:
        return torch.from_numpy(np.stack([np.load(p) for p in paths]))[:, None, :]

    def write_grid(self, table: torch.Tensor, path: Path, opts: Any) -> list[Path]:
        rows, cols = table.shape[:2]
        cw, ch = 96, 48
        img = Image.new("RGB", (cols * cw, rows * ch), "white")
        draw = ImageDraw.Draw(img)
        for r in range(rows):
            for c in range(cols):
                wave = table[r, c, 0].clamp(-1, 1).tolist()
                pts = [(c * cw + 2 + i * (cw - 4) / (len(wave) - 1),
                        r * ch + ch / 2 - v * (ch / 2 - 2)) for i, v in enumerate(wave)]
                draw.line(pts, fill=(30, 80, 200))
                draw.rectangle([c * cw, r * ch, (c + 1) * cw - 1, (r + 1) * ch - 1],
                               outline=(200, 200, 200))
        out = path.with_suffix(".png")
        out.parent.mkdir(parents=True, exist_ok=True)
        img.save(out)
        return [out]


@hookimpl
def register_modalities(register: Callable) -> None:
    register(WavesModality())
