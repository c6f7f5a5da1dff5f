"""Video sources: folders of video files or of frame folders, single videos, .npy/.npz arrays,
the embedded bouncing balls.

Every source becomes clips of ``frames`` frames of ``size`` x ``size`` pixels:
  - each frame is converted to gray or RGB and resized so its shorter side is ``size``, then
    center-cropped (the same rule as the image modality);
  - ``stride`` keeps every stride-th frame (1 = every frame; 2 halves the frame rate, so a
    clip spans twice the time);
  - a video is cut into consecutive clips (hop = one clip, no overlap); a video shorter than
    one clip, or a last piece at least half a clip long, is completed by holding its last
    frame; a shorter last piece is dropped.
A folder is searched recursively: each video file (MP4, M4V, AVI, MOV, WebM, MKV, GIF) is one
video, and each folder that directly holds pictures (PNG, JPEG, BMP, WebP) but no video files
is one video of those frames, taken in natural name order (2.png before 10.png). Frames are
taken in decoding order: a variable-frame-rate file is not resampled to a constant rate (a
GIF's frame delays are honoured). Clips are stored as uint8 (N, C, T, H, W).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError

from latentgen import Examples, UserError
from latentgen.data import cut_clips, decode_uint8, open_picture, pictures_from_array, read_array

from .containers import VIDEO_SUFFIXES, read_frames
from .motion import bouncing_balls

PICTURE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".webp"}
ARRAY_SUFFIXES = {".npy", ".npz"}
BUILTIN = {"builtin:balls"}

decode = decode_uint8


def open_videos(source: str | None, frames: int, size: int, channels: int,
                stride: int = 1) -> Examples:
    """Clips from ``source`` (see the module docstring). The embedded clips are made at the
    asked frame count; ``stride`` applies to the other sources."""
    if source is None or source in BUILTIN:
        arr = bouncing_balls(frames=frames, size=size, channels=channels)
        return Examples(torch.from_numpy(arr), decode, "builtin:balls")
    path = Path(source)
    if not path.exists():
        raise UserError(f"{source} does not exist; give a folder of videos (MP4, M4V, AVI, "
                        "MOV, WebM, MKV, GIF) or of frame folders, one video file, or a "
                        ".npy/.npz array (training without `data` uses the embedded bouncing "
                        "balls)")
    suffix = path.suffix.lower()
    if path.is_file() and suffix in ARRAY_SUFFIXES:
        return _from_array(path, frames, size, channels, stride)
    if path.is_file() and suffix not in VIDEO_SUFFIXES:
        raise UserError(f"{source}: unsupported file type '{path.suffix}'; use a video file "
                        "(MP4, M4V, AVI, MOV, WebM, MKV, GIF), a folder of them or of frame "
                        "folders, or a .npy/.npz array (N, T, H, W[, C])")
    videos = [path] if path.is_file() else _videos_in(path)
    if not videos:
        raise UserError(f"{source} holds no video files (MP4, M4V, AVI, MOV, WebM, MKV, GIF) "
                        "and no folders of frames; point it at a folder that does")
    mode = "L" if channels == 1 else "RGB"
    clips: list[np.ndarray] = []
    names: list[str] = []
    for video in videos:
        pictures = _frame_files(video) if video.is_dir() else read_frames(video)
        seq = _fitted(pictures, size, mode, stride, video)
        pieces = cut_clips(seq, frames, pad="last")
        clips += pieces
        names += [f"{video}#{k}" for k in range(len(pieces))]
    arr = np.stack(clips)  # (N, T, S, S) or (N, T, S, S, 3)
    arr = arr[:, None] if channels == 1 else arr.transpose(0, 4, 1, 2, 3)
    return Examples(torch.from_numpy(np.ascontiguousarray(arr)), decode, str(path), names=names)


def _videos_in(folder: Path) -> list[Path]:
    files = [p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES]
    # pictures beside video files are stills that go with them (e.g. frame strips), not frames
    with_videos = {p.parent for p in files}
    frame_dirs = {p.parent for p in folder.rglob("*")
                  if p.is_file() and p.suffix.lower() in PICTURE_SUFFIXES} - with_videos
    return sorted(files + list(frame_dirs))


def _natural_key(path: Path) -> list:
    """'frame2.png' before 'frame10.png': digit runs compare as numbers."""
    return [int(part) if part.isdigit() else part.lower()
            for part in re.split(r"(\d+)", path.name)]


def _frame_files(folder: Path) -> Iterable[Image.Image]:
    for f in sorted((p for p in folder.iterdir()
                     if p.is_file() and p.suffix.lower() in PICTURE_SUFFIXES), key=_natural_key):
        with open_picture(f, "frame") as img:  # refuses decompression bombs
            try:
                img.load()
                frame = ImageOps.exif_transpose(img).convert("RGB")
            except (UnidentifiedImageError, OSError, ValueError, EOFError) as exc:
                raise UserError(f"cannot read frame {f} ({exc}); remove or replace the "
                                "file") from None
        yield frame


def _fitted(pictures: Iterable[Image.Image], size: int, mode: str, stride: int,
            video: Path) -> np.ndarray:
    """Every ``stride``-th picture, converted and fitted to size x size, as (T, S, S[, 3])."""
    out = [np.asarray(ImageOps.fit(img.convert(mode), (size, size), Image.Resampling.LANCZOS))
           for k, img in enumerate(pictures) if k % stride == 0]
    if not out:
        raise UserError(f"{video} holds no frames; remove it or give a video with frames")
    return np.stack(out)


def _from_array(path: Path, frames: int, size: int, channels: int, stride: int) -> Examples:
    """(N, T, H, W) or (N, T, H, W, C), uint8 or float in [0, 1]; each row is a video, cut
    into clips like a file."""
    arr = read_array(path, keys=("videos", "clips", "x", "data", "arr_0"))
    if (arr.ndim not in (4, 5) or arr.shape[0] == 0 or arr.shape[1] == 0
            or (arr.ndim == 5 and arr.shape[-1] not in (1, 3, 4))):
        raise UserError(f"{path}: array of shape {arr.shape} is not videos; expected "
                        "(N, T, H, W) or (N, T, H, W, C) with C = 1, 3 or 4")
    arr = arr[:, ::stride]
    n, t = arr.shape[:2]
    pics = pictures_from_array(arr.reshape(n * t, *arr.shape[2:]), size, channels, str(path),
                               what="video frames", expected="(N, T, H, W) or (N, T, H, W, C)")
    seqs = pics.reshape(n, t, channels, size, size).numpy()
    clips = [c for seq in seqs for c in cut_clips(seq, frames, pad="last")]
    stored = np.stack(clips).transpose(0, 2, 1, 3, 4)  # (N, C, T, S, S)
    return Examples(torch.from_numpy(np.ascontiguousarray(stored)), decode, str(path))
