"""Reading and writing video files: MP4 / AVI / MOV / WebM / MKV through PyAV (FFmpeg),
animated GIF through Pillow.

Frames are handed over as PIL images one at a time, so a long video never sits in memory at
full resolution: the dataset code shrinks each frame as it arrives.
"""

from __future__ import annotations

from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from latentgen import UserError
from latentgen.data import need, open_picture

CONTAINER_SUFFIXES = {".mp4", ".m4v", ".avi", ".mov", ".webm", ".mkv"}
GIF_SUFFIXES = {".gif"}
VIDEO_SUFFIXES = CONTAINER_SUFFIXES | GIF_SUFFIXES
MAX_REPEAT = 100


def read_frames(path: Path) -> Iterator[Image.Image]:
    """The frames of a video file in display order; ``UserError`` naming the file when it
    cannot be decoded."""
    if path.suffix.lower() in GIF_SUFFIXES:
        yield from _gif_frames(path)
    else:
        yield from _container_frames(path)


def _container_frames(path: Path) -> Iterator[Image.Image]:
    av = need("av", "the video modality", "video", "to read MP4, M4V, AVI, MOV, WebM and MKV video")

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UserError(f"{path} holds no video stream; give a video file")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            sar = stream.codec_context.sample_aspect_ratio
            for frame in container.decode(stream):
                yield _upright(frame.to_image(), getattr(frame, "rotation", 0), sar)
    except UserError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise UserError(f"cannot decode video {path} ({exc}); remove or replace the "
                        "file") from None


def _upright(img: Image.Image, rotation: int, sar: Fraction | None) -> Image.Image:
    """A decoded frame as it is meant to be seen: the stream's rotation undone (phone videos)
    and non-square pixels (anamorphic video) stretched to square ones."""
    if rotation % 360:
        # PyAV reports the counter-clockwise angle a display applies
        img = img.rotate(rotation % 360, expand=True)
    if sar and sar.numerator and sar != 1:
        img = img.resize((max(1, round(img.width * sar)), img.height), Image.Resampling.BILINEAR)
    return img


def _gif_frames(path: Path) -> Iterator[Image.Image]:
    """Frames at a constant rate: a GIF shows each frame for its own delay, and encoders merge
    repeated frames into one longer one, so each frame is repeated by its delay in units of
    the shortest delay (at most MAX_REPEAT times)."""
    with open_picture(path, "GIF") as img:  # refuses decompression bombs
        yield from _constant_rate(img, path)


def _constant_rate(img: Image.Image, path: Path) -> Iterator[Image.Image]:
    try:
        delays = [max(0, int(f.info.get("duration", 0) or 0))
                  for f in ImageSequence.Iterator(img)]
        base = min((d for d in delays if d > 0), default=0)
        for frame, delay in zip(ImageSequence.Iterator(img), delays):
            repeat = min(MAX_REPEAT, max(1, round(delay / base))) if base else 1
            rgb = frame.convert("RGB")
            for _ in range(repeat):
                yield rgb
    except (UnidentifiedImageError, OSError, ValueError, EOFError) as exc:
        raise UserError(f"cannot decode GIF {path} ({exc}); remove or replace the file") from None


def write_mp4(frames: np.ndarray, path: Path, fps: float, crf: int = 17) -> None:
    """uint8 frames (T, H, W, 3) or (T, H, W) -> H.264 MP4 (yuv420p, playable in browsers).

    H.264 in yuv420p needs even sides; odd ones are padded by repeating the last row/column.
    """
    av = need("av", "the video modality", "video", "to write MP4 video")

    if frames.ndim == 3:
        frames = np.repeat(frames[..., None], 3, axis=-1)
    h, w = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1000))
        stream.width, stream.height = frames.shape[2], frames.shape[1]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": str(crf), "preset": "medium"}
        for arr in frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_gif(frames: np.ndarray, path: Path, fps: float) -> None:
    """uint8 frames (T, H, W, 3) or (T, H, W) -> looping animated GIF (grayscale exactly;
    colour through a palette of 256 shared by all frames).

    GIF delays are whole hundredths of a second, so the rate is rounded to one (8 fps plays at
    8.3). Pillow merges repeated frames into one with a longer delay; ``read_frames`` repeats
    them back."""
    if frames.ndim == 4 and frames.shape[-1] == 1:
        frames = frames[..., 0]
    if frames.ndim == 3:
        images = [Image.fromarray(np.ascontiguousarray(f), "L") for f in frames]
    else:
        # one palette for the whole clip, so colours do not flicker between frames
        sheet = Image.fromarray(np.ascontiguousarray(np.concatenate(list(frames), axis=0)))
        palette = sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT)
        images = [Image.fromarray(np.ascontiguousarray(f)).quantize(palette=palette,
                                                                    dither=Image.Dither.NONE)
                  for f in frames]
    duration = max(20, int(round(1000 / fps)))  # GIF delays are in 10 ms units; >= 20 ms plays
    images[0].save(path, format="GIF", save_all=True, append_images=images[1:],
                   duration=duration, loop=0, optimize=False, disposal=1)
