"""webdataset shards: tar files whose members ``KEY.EXT`` group into samples (consecutive
members with one key), e.g. ``000042.jpg`` + ``000042.cls``.

A source is a brace pattern (``data-{000000..000009}.tar``), one ``.tar`` file, or a folder of
them. Shards are read with the standard library's ``tarfile``, twice and never whole: a first
pass reads the members' headers (seeking past their data) and the small label members, which
gives the number of samples, their labels and so the rows each shard's samples take; the
second streams a shard member by member, handing each sample's picture or sound on as it
passes. A process that fills its part of a shared file (``latentgen prepare`` under
torchrun) streams only shards ``rank``, ``rank + world``, ...
"""

from __future__ import annotations

import re
import tarfile
import zlib
from collections.abc import Generator, Iterator
from pathlib import Path

import numpy as np

from latentgen.data.records import (
    Found,
    Record,
    SourceSpec,
    brief,
    choose_split,
    no_columns,
    one_split,
    select_rows,
    split_of_name,
)
from latentgen.errors import UserError

#: the members that hold a sample's data, in order of preference, and its label
MEDIA_KEYS = {"image": ("jpg", "jpeg", "png", "webp"), "audio": ("wav", "flac")}
LABEL_KEYS = ("cls", "label")
SHARD_SUFFIXES = (".tar", ".tar.gz", ".tgz")
_BRACES = re.compile(r"\{([^{}]*)\}")
_KEY = re.compile(r"^((?:.*/|)[^./]+)\.([^/]+)$")


def is_pattern(text: str) -> bool:
    """Whether ``text`` holds a brace expression (``{0..9}``, ``{a,b}``)."""
    return any(".." in m or "," in m for m in _BRACES.findall(text))


def expand_braces(pattern: str) -> list[str]:
    """``{000..009}`` (zero-padded as written) and ``{a,b}`` expanded, as webdataset does."""
    found = _BRACES.search(pattern)
    if found is None:
        return [pattern]
    body = found.group(1)
    numbers = re.fullmatch(r"(\d+)\.\.(\d+)", body)
    if numbers:
        a, b = numbers.groups()
        width = max(len(a), len(b)) if (a[0] == "0" and len(a) > 1) or \
            (b[0] == "0" and len(b) > 1) else 0
        step = 1 if int(b) >= int(a) else -1
        options = [str(i).zfill(width) for i in range(int(a), int(b) + step, step)]
    elif "," in body:
        options = body.split(",")
    else:
        options = [found.group(0)]
    tails = expand_braces(pattern[found.end():])
    return [pattern[:found.start()] + o + t for o in options for t in tails]


def is_shard(path: Path) -> bool:
    return path.name.lower().endswith(SHARD_SUFFIXES)


def has_shards(path: Path) -> bool:
    return path.is_dir() and any(is_shard(p) for p in path.rglob("*"))


def expand_shards(source: str) -> list[Path]:
    """The shard files of a brace pattern, a ``.tar`` file or a folder of them, in order
    (a missing shard of a pattern is a ``UserError`` naming it)."""
    path = Path(source)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if is_shard(p) and p.is_file())
    files = [Path(p) for p in expand_braces(source)]
    missing = next((p for p in files if not p.is_file()), None)
    if missing is not None:
        raise UserError(f"{source}: shard {missing} does not exist; check the pattern")
    return files


def _shard_files(spec: SourceSpec) -> list[Path]:
    path = Path(spec.path)
    if not path.is_dir():
        one_split(spec, "these shards")
        return expand_shards(spec.path)
    files = expand_shards(spec.path)
    groups: dict[str, list[Path]] = {}
    for p in files:
        groups.setdefault(split_of_name(p) or "", []).append(p)
    if list(groups) in ([""], []):
        one_split(spec, f"{path} (no split in its shard names)")
    else:
        groups.pop("", None)
        files = list(choose_split(spec, groups, f"the shards of {path}")[1])
    if not files:
        raise UserError(f"{spec.text} holds no .tar shards")
    return files


def _samples(shard: Path, keys: tuple[str, ...], read: bool
             ) -> Generator[tuple[str, bytes | None, int | None], None, None]:
    """(key, data or None when not ``read``, label or None) of each sample holding one of
    ``keys``, in order. ``read``: stream the file; else read headers only."""
    try:
        with tarfile.open(shard, "r|*" if read else "r:*") as tar:
            key, data, label, rank = None, None, None, len(keys)
            for member in tar:
                name = member.name.rsplit("/", 1)[-1]
                found = _KEY.match(member.name)
                if not member.isfile() or found is None or name.startswith(("__", "._")):
                    continue
                if found.group(1) != key:
                    if rank < len(keys):
                        yield key, data, label  # type: ignore[misc]
                    key, data, label, rank = found.group(1), None, None, len(keys)
                ext = found.group(2).lower()
                if ext in LABEL_KEYS:
                    label = _label(tar, member, shard)
                elif ext in keys and keys.index(ext) < rank:
                    rank = keys.index(ext)
                    file = tar.extractfile(member) if read else None
                    data = file.read() if file is not None else None
            if rank < len(keys):
                yield key, data, label  # type: ignore[misc]
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise UserError(f"cannot read shard {shard} ({brief(exc)}); replace the file") from None


def _label(tar: tarfile.TarFile, member: tarfile.TarInfo, shard: Path) -> int:
    file = tar.extractfile(member)
    text = file.read(64) if file is not None else b""
    try:
        return int(text.strip())
    except ValueError:
        raise UserError(f"{shard}#{member.name} holds '{text[:20]!r}', not a class number; "
                        "store labels as integers") from None


def open_shards(spec: SourceSpec, media: str | None) -> Found:
    """The samples of the shards (those holding ``media``: image or audio; any with None)."""
    no_columns(spec, "webdataset shards")
    files = _shard_files(spec)
    keys = MEDIA_KEYS[media] if media else tuple(k for ks in MEDIA_KEYS.values() for k in ks)
    index = [list(_samples(f, keys, read=False)) for f in files]
    total = sum(len(i) for i in index)
    if total == 0:
        raise UserError(f"{spec.text}: the shards hold no samples with a "
                        f"{'/'.join(keys)} member")
    found = [s[2] for i in index for s in i]
    labels = np.array(found, np.int64) if all(v is not None for v in found) else None
    rows = select_rows(spec, labels, "these shards")
    chosen = rows if rows is not None else np.arange(total)
    row_of = np.full(total, -1, np.int64)
    row_of[chosen] = np.arange(len(chosen))
    starts = np.cumsum([0] + [len(i) for i in index])
    everything = [f"{f}#{s[0]}" for f, i in zip(files, index) for s in i]

    def records(part: tuple[int, int]) -> Iterator[Record]:
        rank, world = part
        for j in range(rank, len(files), world):  # a process's shards: rank, rank + world, ...
            for ordinal, (key, data, _) in enumerate(_samples(files[j], keys, read=True)):
                row = int(row_of[starts[j] + ordinal])
                if row >= 0 and data is not None:
                    yield Record(row, data, f"{files[j]}#{key}")

    return Found(spec.text, "webdataset shards", len(chosen),
                 labels[chosen] if labels is not None else None, records=records,
                 names=[everything[i] for i in chosen])


def first_sample(spec: SourceSpec, media: str) -> Record | None:
    """The first sample of the first shard (a look at the data without indexing it all)."""
    files = _shard_files(spec)
    samples = _samples(files[0], MEDIA_KEYS[media], read=True)
    try:
        first = next(samples, None)
    finally:
        samples.close()  # closes the shard
    if first is None or first[1] is None:
        return None
    return Record(0, first[1], f"{files[0]}#{first[0]}")
