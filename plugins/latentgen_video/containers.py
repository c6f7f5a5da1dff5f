"""Reading and writing video files: MP4 / AVI / MOV / WebM / MKV through PyAV (FFmpeg),
animated GIF through Pillow.

Frames are handed over as PIL images one at a time, so a long video never sits in memory at
full resolution: the dataset code shrinks each frame as it arrives.
"""

from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
from PIL import Image, ImageSequence, UnidentifiedImageError

from latentgen import UserError

CONTAINER_SUFFIXES = {".mp4", ".m4v", ".avi", ".mov", ".webm", ".mkv"}
GIF_SUFFIXES = {".gif"}
VIDEO_SUFFIXES = CONTAINER_SUFFIXES | GIF_SUFFIXES


def read_frames(path: Path) -> Iterator[Image.Image]:
    """The frames of a video file in display order; ``UserError`` naming the file when it
    cannot be decoded."""
    if path.suffix.lower() in GIF_SUFFIXES:
        yield from _gif_frames(path)
    else:
        yield from _container_frames(path)


def _container_frames(path: Path) -> Iterator[Image.Image]:
    import av

    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise UserError(f"{path} holds no video stream; give a video file")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            for frame in container.decode(stream):
                yield frame.to_image()
    except UserError:
        raise
    except (av.FFmpegError, OSError, ValueError) as exc:
        raise UserError(f"cannot decode video {path} ({exc}); remove or replace the "
                        "file") from None


def _gif_frames(path: Path) -> Iterator[Image.Image]:
    try:
        with Image.open(path) as img:
            for frame in ImageSequence.Iterator(img):
                yield frame.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError, EOFError) as exc:
        raise UserError(f"cannot decode GIF {path} ({exc}); remove or replace the file") from None


def write_mp4(frames: np.ndarray, path: Path, fps: float, crf: int = 17) -> None:
    """uint8 frames (T, H, W, 3) or (T, H, W) -> H.264 MP4 (yuv420p, playable in browsers).

    H.264 in yuv420p needs even sides; odd ones are padded by repeating the last row/column.
    """
    import av
    from fractions import Fraction

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
    colour through a palette of 256 shared by all frames)."""
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
