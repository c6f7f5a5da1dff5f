"""Sound sources: folders of WAV / FLAC / OGG files, .npy arrays, the embedded sound set.

Every source becomes fixed-length mono clips at the run's sample rate:
  - files are read with soundfile, mixed down to mono (mean of the channels) and resampled
    with torchaudio to ``sample_rate``;
  - each file is peak-normalised to 0.9 (``normalize``), so quiet recordings are learned
    as well as loud ones;
  - a file is cut into clips of ``clip_seconds`` that start every clip length (hop = one clip,
    no overlap); a file shorter than one clip, or a last piece at least half a clip long, is
    padded with silence; a shorter last piece is dropped.
Clips are stored as int16 and turned into float [-1, 1] per batch.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from latentgen import Examples, UserError
from latentgen.data import cut_clips, require_finite

from .sounds import sounds

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga"}
ARRAY_SUFFIXES = {".npy"}
#: the embedded sets: the training sounds, and 128 held-out ones of the same families drawn
#: from another seed (`--test-data builtin:sounds-test`)
BUILTIN = {"builtin:sounds", "builtin:sounds-test"}
HELD_OUT_COUNT = 128
HELD_OUT_SEED = 98765
PEAK = 0.9


def decode(batch: torch.Tensor) -> torch.Tensor:
    """int16 -> float [-1, 1], shape (N, 1, samples)."""
    return batch.float().div_(32767.0).unsqueeze(1)


def encode(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] (N, 1, samples) or (N, samples) -> int16 (N, samples)."""
    return (x.reshape(x.shape[0], -1).clamp(-1, 1) * 32767.0).round().to(torch.int16)


def clips_of(wave: np.ndarray, length: int) -> list[np.ndarray]:
    """Cut a mono float wave into clips of ``length`` samples (see the module docstring)."""
    return cut_clips(wave, length, pad="zeros")


def open_sounds(source: str | None, sample_rate: int, clip_seconds: float,
                normalize: bool = True) -> Examples:
    length = int(round(sample_rate * clip_seconds))
    if source is None or source in BUILTIN:
        source = source or "builtin:sounds"
        if source == "builtin:sounds-test":
            arr = sounds(HELD_OUT_COUNT, sample_rate, clip_seconds, seed=HELD_OUT_SEED)
        else:
            arr = sounds(sample_rate=sample_rate, seconds=clip_seconds)
        return Examples(encode(torch.from_numpy(arr)), decode, source)
    path = Path(source)
    if not path.exists():
        raise UserError(f"{source} does not exist; give a folder of WAV/FLAC/OGG files or a "
                        ".npy array (training without --data uses the embedded sounds)")
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES
                       and p.is_file())
        if not files:
            raise UserError(f"{source} holds no WAV, FLAC or OGG files; point it at a "
                            "folder that does")
    elif path.suffix.lower() in AUDIO_SUFFIXES:
        files = [path]
    elif path.suffix.lower() in ARRAY_SUFFIXES:
        return _from_array(path, length, normalize)
    else:
        raise UserError(f"{source}: unsupported file type '{path.suffix}'; use a folder "
                        "of WAV/FLAC/OGG files, one such file, or a .npy array (N, samples)")
    clips: list[np.ndarray] = []
    names: list[str] = []
    for f in files:
        wave = read_mono(f, sample_rate)
        if normalize:
            wave = _normalized(wave)
        pieces = clips_of(wave, length)
        clips += pieces
        names += [f"{f}#{i}" for i in range(len(pieces))]
    if not clips:
        raise UserError(f"{source}: the files hold no samples")
    stored = encode(torch.from_numpy(np.stack(clips).astype(np.float32)))
    return Examples(stored, decode, str(path), names=names)


def read_mono(path: Path, sample_rate: int) -> np.ndarray:
    """A file as mono float32 at ``sample_rate``."""
    import soundfile as sf

    try:
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except (RuntimeError, sf.LibsndfileError, OSError, ValueError) as exc:
        raise UserError(f"cannot read sound file {path} ({exc}); remove or replace the "
                        "file") from None
    require_finite(data, str(path))  # float WAV files may hold NaN
    wave = data.mean(axis=1)
    if rate != sample_rate and len(wave):
        import torchaudio.functional as AF

        wave = AF.resample(torch.from_numpy(wave), rate, sample_rate).numpy()
    return wave.astype(np.float32)


def _normalized(wave: np.ndarray) -> np.ndarray:
    peak = float(np.abs(wave).max()) if len(wave) else 0.0
    return wave * (PEAK / peak) if peak > 0 else wave


def _from_array(path: Path, length: int, normalize: bool) -> Examples:
    """(N, samples) or (N, 1, samples), float in [-1, 1] or int16, at the run's sample rate;
    rows of another length are cut into clips like files."""
    try:
        arr = np.load(path, allow_pickle=False)
    except Exception as exc:
        raise UserError(f"cannot read array file {path} ({exc}); check the file") from None
    if arr.ndim == 3 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 2 or arr.shape[0] == 0:
        raise UserError(f"{path}: array of shape {arr.shape} is not sound clips; expected "
                        "(N, samples) or (N, 1, samples)")
    if arr.dtype == np.int16:
        arr = arr.astype(np.float32) / 32767.0
    elif np.issubdtype(arr.dtype, np.floating):
        require_finite(arr, str(path))
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -1.0 or hi > 1.0:
            raise UserError(f"{path}: samples span [{lo:g}, {hi:g}]; store float clips in "
                            "[-1, 1] or int16")
    else:
        raise UserError(f"{path}: unsupported array dtype {arr.dtype}; use float or int16")
    clips = [c for row in arr.astype(np.float32)
             for c in clips_of(_normalized(row) if normalize else row, length)]
    return Examples(encode(torch.from_numpy(np.stack(clips))), decode, str(path))
