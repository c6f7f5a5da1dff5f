"""The video modality: clips (channels, frames, H, W) from a 3D transposed-convolution
generator.

The generator lifts the latent to a small spatio-temporal block (at least 4 frames of 4..7
pixels where the frame count allows) and doubles height and width in every layer, as the image
generator does; time doubles in the last layers until it reaches ``frames`` (a layer that does
not double time uses a temporal kernel of 3 at stride 1). With ``latent_field`` the latent is
itself such a block (d x t x h x w), the network is fully convolutional, and a longer field
gives a longer clip.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image

from latentgen import Examples, Generator, Modality, UpsamplingGenerator, UserError, option
from latentgen.data import check_picture_size, doubling_plan, encode_uint8
from latentgen.model import halving_widths

from .containers import read_frames, write_gif, write_mp4
from .datasets import decode, open_videos
from .dynamic import HEAD, DynamicGenerator
from .strips import frame_strip, frames_last, tile

MAX_FRAMES = 512
MIN_BASE_FRAMES = 4
HEADROOM = 1.1  # see UpsamplingGenerator: black backgrounds otherwise saturate the output
GRID_FRAMES = 8  # frames per cell in a grid's still picture


@dataclass
class VideoOptions:
    frames: int = option(16, "frames per clip", minimum=2, maximum=MAX_FRAMES)
    image_size: int = option(32, "frame side in pixels (b * 2^k with b in 4..7, e.g. 16, 32, "
                                 "48, 64)")
    channels: Literal[1, 3] = option(3, "1 (grayscale) or 3 (RGB)")
    frame_stride: int = option(1, "keep every N-th frame of the source videos (2 halves the "
                                  "frame rate)", minimum=1)
    fps: float = option(8.0, "frames per second of the MP4 and GIF files written",
                        minimum=0.5, maximum=120)
    width: int = option(16, "channels of the last hidden layer; each earlier layer doubles it",
                        minimum=1)
    latent_field: bool = option(False, "a spatio-temporal latent field (d x t x h x w) instead "
                                       "of a vector: the generator is fully convolutional and "
                                       "a longer field gives a longer clip")
    dynamic: bool = option(False, "the dynamic generator: a state s_t = tanh(s_(t-1) + "
                                  "F([xi_t, s_(t-1)])) driven by an innovation xi_t per frame, "
                                  "each frame drawn from [content, s_t] by an image generator "
                                  "(clips of any length: synthesize `scale` K)")
    window: int = option(30, "with `dynamic`: the truncation window of back-propagation "
                             "through time in training, in frames; each window's last state "
                             "seeds the next (0: the whole clip)", minimum=0)


Size3 = tuple[int, int, int]


def generator_plan(frames: int, size: int) -> tuple[Size3, list[Size3]]:
    """(base (t, h, w), per-layer strides (t, h, w)).

    Space doubles in every layer. Time doubles in the last layers, as often as ``frames``
    allows while the base keeps at least 4 frames, so the first layer already lays out the
    course of the motion (16 frames: a 4-frame base doubled twice; 60: 15 doubled twice).
    """
    plan = doubling_plan(size)
    assert plan is not None, "validate_options admits only planned sizes"
    base, n_up = plan
    t_up = 0
    while (t_up < n_up and frames % 2 ** (t_up + 1) == 0
           and frames // 2 ** (t_up + 1) >= MIN_BASE_FRAMES):
        t_up += 1
    strides = [(2 if i >= n_up - t_up else 1, 2, 2) for i in range(n_up)]
    return (frames // 2 ** t_up, base, base), strides


class VideoModality(Modality):
    name = "video"
    description = "3D clips: spatio-temporal transposed-convolution generator, MP4 / GIF output"
    Options = VideoOptions
    data_range = (-1.0, 1.0)
    metric_range = (0.0, 1.0)
    metric_units = "per-element MSE on pixels scaled to [0, 1]"
    formats = ("mp4", "gif")
    lossy_writers = True  # H.264, and GIF's 256-colour palette for RGB
    # A clip sums its energy over frames x pixels, so the image settings make the Langevin
    # chains overshoot; these were measured on the embedded clips (docs/video.md).
    train_defaults = {"sigma": 1.0, "step_size": 0.1, "langevin_steps": 5, "batch_size": 16,
                      "lr": 0.002, "epochs": 40}

    def validate_options(self, opts: VideoOptions) -> None:
        # the declarations bound each option; these relate to the generator and each other
        check_picture_size(opts.image_size)
        if opts.dynamic and opts.latent_field:
            raise UserError("`dynamic` and `latent_field` are two generators; choose one")

    def scaled(self, opts: VideoOptions, latent_shape: tuple[int, ...], scale: int
               ) -> tuple[VideoOptions, tuple[int, ...]]:
        """K times as many frames: K times the innovations of the dynamic generator, or a
        latent field K times longer."""
        longer = replace(opts, frames=opts.frames * scale)
        if opts.dynamic:
            d, length = latent_shape
            return longer, (d, (length - HEAD) * scale + HEAD)
        if opts.latent_field:
            d, t, h, w = latent_shape
            return longer, (d, t * scale, h, w)
        raise UserError("`scale` needs a generator that makes clips of any length; train "
                        "with `dynamic` or `latent_field`")

    def build_generator(self, latent_dim: int, opts: VideoOptions) -> Generator:
        if opts.dynamic:
            plan = doubling_plan(opts.image_size)
            assert plan is not None, "validate_options admits only planned sizes"
            return DynamicGenerator(latent_dim, opts.frames, opts.channels, plan[0], plan[1],
                                    opts.width, HEADROOM, opts.window)
        base, strides = generator_plan(opts.frames, opts.image_size)
        widths = halving_widths(opts.width, len(strides))
        return UpsamplingGenerator(dims=3, latent_dim=latent_dim, out_channels=opts.channels,
                                   base=base, strides=strides, widths=widths,
                                   latent_field=base if opts.latent_field else None,
                                   headroom=HEADROOM)

    def open_dataset(self, source: str | None, opts: VideoOptions) -> Examples:
        return open_videos(source, opts.frames, opts.image_size, opts.channels,
                           opts.frame_stride)

    # -- writers -------------------------------------------------------------------------
    def write_examples(self, x: torch.Tensor, out_dir: Path, prefix: str, opts: VideoOptions,
                       start: int = 0, fmt: str = "mp4") -> list[Path]:
        """``prefix_NNNNN.mp4`` (H.264) or ``.gif``, and ``prefix_NNNNN.png``: the clip's
        frames side by side."""
        out_dir.mkdir(parents=True, exist_ok=True)
        clips = frames_last(encode_uint8(x.detach().cpu()).numpy())
        paths = []
        for i, clip in enumerate(clips):
            stem = out_dir / f"{prefix}_{start + i:05d}"
            video = stem.with_suffix("." + fmt)
            _write_video(clip, video, fmt, opts.fps)
            strip = stem.with_suffix(".png")
            _picture(frame_strip(clip)).save(strip)
            paths += [video, strip]
        return paths

    def write_grid(self, table: torch.Tensor, path: Path, opts: VideoOptions,
                   fmt: str = "mp4") -> list[Path]:
        """``grid.png``: each clip as a strip of up to 8 evenly spaced frames, in the table's
        layout; ``grid.mp4`` / ``grid.gif``: the table playing, every clip in its cell."""
        cells = frames_last(encode_uint8(table.detach().cpu()).numpy())  # (R, C, T, H, W, ch)
        enlarge = 2 if cells.shape[-2] < 64 else 1
        keep = min(GRID_FRAMES, cells.shape[2])
        strips = np.stack([np.stack([frame_strip(c, keep) for c in row]) for row in cells])
        path.parent.mkdir(parents=True, exist_ok=True)
        png, video = path.with_suffix(".png"), path.with_suffix("." + fmt)
        _picture(tile(strips, enlarge)).save(png)
        _write_video(tile(cells, enlarge), video, fmt, opts.fps)  # (T, H', W', ch): frames
        return [png, video]

    def feature_pictures(self, x: torch.Tensor, opts: VideoOptions) -> torch.Tensor:
        """Each frame beside the change to the next (N * (T - 1), 2C, H, W): patches then
        compare how the clips move as well as how their frames look."""
        frames, change = x[:, :, :-1], x[:, :, 1:] - x[:, :, :-1]
        return torch.cat([frames, change], dim=1).transpose(1, 2).flatten(0, 1)

    def read_examples(self, paths: list[Path], opts: VideoOptions) -> torch.Tensor:
        mode = "L" if opts.channels == 1 else "RGB"
        clips = []
        for p in paths:
            if p.suffix.lower() == ".png":
                continue
            frames = np.stack([np.asarray(f.convert(mode)) for f in read_frames(p)])
            clips.append(frames[None] if opts.channels == 1 else frames.transpose(3, 0, 1, 2))
        return decode(torch.from_numpy(np.stack(clips)))


def _picture(arr: np.ndarray) -> Image.Image:
    """(H, W, C) uint8 -> PIL image (gray for one channel)."""
    return Image.fromarray(np.ascontiguousarray(arr[..., 0] if arr.shape[-1] == 1 else arr))


def _write_video(frames: np.ndarray, path: Path, fmt: str, fps: float) -> None:
    """(T, H, W, C) uint8 -> MP4 or GIF."""
    if frames.shape[-1] == 1:
        frames = frames[..., 0]
    (write_mp4 if fmt == "mp4" else write_gif)(frames, path, fps)
