"""Sound sources: folders of WAV / FLAC / OGG files, .npy arrays, Hugging Face data sets and
parquet files with an Audio column, webdataset shards of wav / flac members (read by
latentgen.data, with ``?split=`` and class selection), the embedded sound set.

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

import io
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

from latentgen import Examples, UserError
from latentgen.data import Found, Record, cut_clips, need, open_standard, require_finite

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
    # Hugging Face / parquet Audio columns and webdataset shards, with ?split= and classes
    found = open_standard(source, "audio", AUDIO_SUFFIXES)
    if found is not None:
        return _from_found(found, sample_rate, length, normalize)
    path = Path(source)
    if not path.exists():
        raise UserError(f"{source} does not exist; give a folder of WAV/FLAC/OGG files, a "
                        ".npy array, a Hugging Face data set, parquet file or .tar shards "
                        "(training without `data` uses the embedded sounds)")
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
                        "of WAV/FLAC/OGG files, one such file, a .npy array (N, samples), "
                        ".parquet or .tar shards")

    def records(part: tuple[int, int]) -> Iterator[Record]:
        return (Record(i, f, str(f)) for i, f in enumerate(files))

    return _from_found(Found(str(path), "sound files", len(files), records=records),
                       sample_rate, length, normalize)


def _from_found(found: Found, sample_rate: int, length: int, normalize: bool) -> Examples:
    """Each record's sound cut into clips (the module docstring), labelled as its record."""
    assert found.records is not None, "sound formats hand on records"
    clips: list[np.ndarray] = []
    names: list[str] = []
    labels: list[int] = []
    for record in found.records((0, 1)):  # clip counts vary: every record, in order
        wave = read_mono(record.payload, sample_rate, record.name, record.rate)
        if normalize:
            wave = _normalized(wave)
        pieces = clips_of(wave, length)
        clips += pieces
        names += [f"{record.name}#{i}" for i in range(len(pieces))]
        if found.labels is not None:
            labels += [int(found.labels[record.row])] * len(pieces)
    if not clips:
        raise UserError(f"{found.source}: the files hold no samples")
    stored = encode(torch.from_numpy(np.stack(clips).astype(np.float32)))
    return Examples(stored, decode, found.source, names=names,
                    labels=np.array(labels, np.int64) if found.labels is not None else None)


def read_mono(file: Path | bytes | np.ndarray, sample_rate: int, name: str | None = None,
              rate: int | None = None) -> np.ndarray:
    """A sound file (a path or its bytes, ``name`` naming it), or decoded samples at
    ``rate``, as mono float32 at ``sample_rate``."""
    sf = need("soundfile", "the audio modality", "audio", "to read and write sound files")

    name = name or str(file)
    if isinstance(file, np.ndarray):
        data = file.astype(np.float32).reshape(len(file), -1) if file.ndim == 1 or \
            file.shape[0] > file.shape[1] else file.astype(np.float32).T  # (channels, samples)
        rate = rate or sample_rate
    else:
        try:
            data, rate = sf.read(io.BytesIO(file) if isinstance(file, bytes) else str(file),
                                 dtype="float32", always_2d=True)
        except (RuntimeError, sf.LibsndfileError, OSError, ValueError) as exc:
            raise UserError(f"cannot read sound file {name} ({exc}); remove or replace the "
                            "file") from None
    require_finite(data, name)  # float WAV files may hold NaN
    wave = data.mean(axis=1)
    if rate != sample_rate and len(wave):
        AF = need("torchaudio.functional", "the audio modality", "audio", "to resample sound files")
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
