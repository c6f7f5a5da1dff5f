"""The image modality: options, generator sizes, datasets and writers wired together."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from PIL import Image
from torchvision.utils import make_grid

from latentgen import Examples, Modality, UpsamplingGenerator, UserError, option
from latentgen.data import check_picture_size, open_picture, picture_size_plan
from latentgen.model import GENERATOR_DESIGNS, halving_widths

from .datasets import (
    ARRAY_SUFFIXES,
    IMAGE_SUFFIXES,
    decode,
    encode,
    native_size,
    open_crops,
    open_images,
)
from .textures import REGULAR, REGULAR_LATENT_DIM, native_pictures, regularity

DEFAULT_SIZE = 32
#: the training size of texture crops (--crops) when --image-size is not given
TEXTURE_CROP_SIZE = 64
#: channels of the first hidden layer that the default width keeps at least
MIN_FIRST_WIDTH = 128


@dataclass
class ImageOptions:
    image_size: int = option(0, "image side in pixels (b * 2^k with b in 4..7, e.g. 16, 28, 32, "
                                "64, 128); 0 = the data's own size when it is square and "
                                "fits (the first picture of a folder), else 32")
    channels: Literal[1, 3] = option(3, "1 (grayscale) or 3 (RGB)")
    width: int = option(0, "channels of the last hidden layer; each earlier layer doubles it "
                           "(DCGAN uses 64); 0 = 32, or for transposed convolutions more so "
                           "that the first hidden layer has at least 128 channels (64 at 16 "
                           "and 28 px)", minimum=0)
    latent_field: bool = option(False, "a spatial latent field (d x b x b, b the generator's "
                                       "4..7 px base) instead of a vector: fully convolutional, "
                                       "so synthesize `scale` K renders K times larger "
                                       "pictures (textures)")
    generator: str = option("auto", "the generator's upsampling layers: " + "; ".join(
        f"{k}: {v}" for k, v in GENERATOR_DESIGNS.items()) + "; auto: resnet for whole "
        "pictures, convt for textures (`crops`, `latent_field`)",
        choices=("auto", *GENERATOR_DESIGNS))
    crops: int = option(0, "train on N random crops of `image_size` cut from each picture "
                           "(textures: one or a few large pictures; without `data` the "
                           "embedded builtin:texture); 0: whole pictures, resized", minimum=0)


class ImageModality(Modality):
    name = "image"
    description = "2D images: residual or transposed-convolution generator, PNG output"
    Options = ImageOptions
    data_range = (-1.0, 1.0)
    metric_range = (0.0, 1.0)
    metric_units = "per-element MSE on pixels scaled to [0, 1]"
    # Chosen with benchmarks/sweep.py on held-out error and synthesis (docs/benchmarks.md):
    # five Langevin steps per iteration reach a lower held-out error per second than 30;
    # sigma learned from the residuals (it settles at 0.07-0.17 on real pictures, where a
    # fixed one had to be picked per set) and a learning rate decaying to a tenth took
    # held-out digits from 0.51 to 0.33 of PCA's error and their samples from rel 1.29 to
    # 0.38; photographs of faces went from 1.12 to 1.08, crops of scenes from 1.22 to 1.31.
    # With the residual generator (docs/benchmarks.md, "Generator designs"), measured on the
    # embedded faces: three Langevin steps and batch 16 (more generator steps per second; the
    # Metropolis-adjusted sampler keeps the chains stable) took held-out faces from 0.60 of
    # PCA's error (L = 5, batch 16, 10 epochs, 175 s) to 0.46 (16 epochs, about 215 s).
    train_defaults = {"langevin_steps": 3, "batch_size": 16, "epochs": 30, "learn_sigma": True,
                      "lr_end": 0.1}
    #: runs stored before --generator existed were built of transposed convolutions
    legacy_options = {"generator": "convt"}

    def data_defaults(self, options: Mapping[str, Any], source: str | None) -> dict[str, Any]:
        """A texture model of a regular texture (its pattern repeats: bricks, tiles) gets a
        small latent per field position (``textures.REGULAR_LATENT_DIM``); irregular ones
        (gravel, grass) keep the default. Whole pictures: nothing."""
        if not (options.get("crops") and options.get("latent_field")):
            return {}
        channels = options.get("channels", ImageOptions.channels)
        pictures = native_pictures(source or "builtin:texture", channels, IMAGE_SUFFIXES,
                                   ARRAY_SUFFIXES)
        size = options.get("image_size") or TEXTURE_CROP_SIZE
        if regularity(pictures, reach=size) >= REGULAR:
            return {"latent_dim": REGULAR_LATENT_DIM}
        return {}

    def validate_options(self, opts: ImageOptions) -> None:
        # the declarations bound each option; a size must also be one the generator makes
        if opts.image_size != 0:
            check_picture_size(opts.image_size)

    def resolve_options(self, opts: ImageOptions, source: str | None) -> ImageOptions:
        if not opts.image_size and opts.crops:
            opts = replace(opts, image_size=TEXTURE_CROP_SIZE)
        if not opts.image_size:
            native = native_size(source)
            size = native if native and picture_size_plan(native) else DEFAULT_SIZE
            opts = replace(opts, image_size=size)
        if opts.generator == "auto":
            opts = replace(opts, generator=default_design(opts))
        if not opts.width:
            opts = replace(opts, width=default_width(opts.image_size, opts.generator))
        return opts

    def build_generator(self, latent_dim: int, opts: ImageOptions) -> UpsamplingGenerator:
        # a 4..7 px base, then x2 per layer: 16 -> 4*2^2, 28 -> 7*2^2, 32 -> 4*2^3, 64 -> 4*2^4
        plan = picture_size_plan(opts.image_size or DEFAULT_SIZE)
        assert plan is not None, "validate_options admits only planned sizes"
        base, n_up = plan
        design = default_design(opts) if opts.generator == "auto" else opts.generator
        widths = halving_widths(opts.width or default_width(opts.image_size, design), n_up)
        return UpsamplingGenerator(dims=2, latent_dim=latent_dim, out_channels=opts.channels,
                                   base=base, strides=[2] * n_up, widths=widths,
                                   latent_field=base if opts.latent_field else None,
                                   design=design)

    def open_dataset(self, source: str | None, opts: ImageOptions) -> Examples:
        size = opts.image_size or DEFAULT_SIZE
        if opts.crops:
            return open_crops(source or "builtin:texture", size, opts.channels, opts.crops)
        return open_images(source, size, opts.channels)

    def scaled(self, opts: ImageOptions, latent_shape: tuple[int, ...], scale: int
               ) -> tuple[ImageOptions, tuple[int, ...]]:
        if not opts.latent_field:
            raise UserError("`scale` needs a generator with a latent field; train with "
                            "`latent_field` (a texture model)")
        d, h, w = latent_shape
        return replace(opts, image_size=opts.image_size * scale), (d, h * scale, w * scale)

    def write_examples(self, x: torch.Tensor, out_dir: Path, prefix: str, opts: Any,
                       start: int = 0) -> list[Path]:
        out_dir.mkdir(parents=True, exist_ok=True)
        pixels = encode(x).cpu().numpy()
        paths = []
        for i, arr in enumerate(pixels):
            path = out_dir / f"{prefix}_{start + i:05d}.png"
            _to_pil(arr).save(path)
            paths.append(path)
        return paths

    def write_grid(self, table: torch.Tensor, path: Path, opts: Any) -> list[Path]:
        rows, cols = table.shape[:2]
        grid = make_grid(table.flatten(0, 1).cpu(), nrow=cols, padding=2, pad_value=1.0)
        out = path.with_suffix(".png")
        out.parent.mkdir(parents=True, exist_ok=True)
        img = _to_pil(encode(grid).numpy())
        if table.shape[-1] < 64:  # small images: enlarge so a viewer shows them crisply
            img = img.resize((img.width * 2, img.height * 2), Image.Resampling.NEAREST)
        img.save(out)
        return [out]

    def read_examples(self, paths: list[Path], opts: ImageOptions) -> torch.Tensor:
        mode = "L" if opts.channels == 1 else "RGB"
        arrs = []
        for p in paths:
            with open_picture(p) as img:
                a = np.asarray(img.convert(mode))
            arrs.append(a[None] if opts.channels == 1 else a.transpose(2, 0, 1))
        return decode(torch.from_numpy(np.stack(arrs)))


def default_design(opts: ImageOptions) -> str:
    """The generator design of ``--generator auto``. Residual blocks for whole pictures: on
    the embedded faces (32 px, d = 16) their held-out error fell to 0.64 of PCA's where the
    transposed-convolution stack stayed at 0.81-0.85 at any width, at about three times the
    arithmetic (docs/benchmarks.md, "Generator designs"). Textures keep the stack their
    settings were measured with."""
    return "convt" if opts.crops or opts.latent_field else "resnet"


def default_width(image_size: int, design: str = "convt") -> int:
    """The last hidden layer's channels when --width is 0 (each earlier layer doubles it).

    Transposed convolutions: 32, or more so the first hidden layer has at least 128
    channels. Small pictures have few upsampling layers, and at 32 their generator is too
    small to generalise: on 16 px digits (benchmarks/sweep.py, docs/benchmarks.md) width 64
    reaches in 100 epochs the held-out error width 32 does not reach in 300. Residual blocks
    hold two convolutions each: 32 at every size (at 32 px, 24 left held-out faces at 0.54
    of PCA's error where 32 reached 0.46)."""
    if design == "resnet":
        return 32
    plan = picture_size_plan(image_size or DEFAULT_SIZE)
    assert plan is not None, "validate_options admits only planned sizes"
    return max(32, MIN_FIRST_WIDTH >> (plan[1] - 1))


def _to_pil(arr: np.ndarray) -> Image.Image:
    """(C, H, W) uint8 -> PIL image."""
    if arr.shape[0] == 1:
        return Image.fromarray(np.ascontiguousarray(arr[0]))
    return Image.fromarray(np.ascontiguousarray(arr.transpose(1, 2, 0)))
