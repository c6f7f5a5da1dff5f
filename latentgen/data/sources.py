"""Standard data sets from local disk, for every command that takes data: which format a source
string names, the examples (and labels) it selects, and the records a modality decodes.

    --data /data/mnist                       MNIST's training images (t10k stays held out)
    --data "/data/mnist?split=train&drop=1"  the nine other digits
    --test-data "/data/mnist?split=test"     the whole test set
    --data cifar10:/data/cifar10             a scheme names the format outright

Formats are recognised from the path itself: IDX files or a folder of them (torchvision's
``MNIST/raw`` layout too), ``cifar-10-batches-py`` / ``cifar-100-python``, a ``.mat`` file or a
folder of SVHN's, ``img_align_celeba``, a ``save_to_disk`` folder, ``.parquet`` files, ``.tar``
shards or a brace pattern of them. A query on a source that is none of these is an error.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from pathlib import Path
from typing import Any

import numpy as np

from latentgen.data.examples import allocate, filling_part
from latentgen.data.hf import has_tables, is_saved_dataset, open_tables
from latentgen.data.records import Found, Record, SourceSpec, choose_split, parse_source
from latentgen.data.shards import first_sample, has_shards, is_pattern, is_shard, open_shards
from latentgen.data.standard import (
    CELEBA_SIDE,
    SVHN_FILES,
    celeba_dir,
    cifar_dir,
    idx_files,
    idx_header,
    is_idx_name,
    open_celeba,
    open_cifar,
    open_idx,
    open_svhn,
    svhn_side,
)
from latentgen.errors import UserError

#: format -> what a scheme prefix or the path names
_BY_SCHEME = {"mnist": "idx", "fashion-mnist": "idx", "cifar10": "cifar", "cifar100": "cifar",
              "svhn": "svhn", "celeba": "celeba", "hf": "hf", "wds": "wds"}
#: formats that hold pictures only
PICTURE_FORMATS = {"idx": "MNIST", "cifar": "CIFAR", "svhn": "SVHN", "celeba": "CelebA"}
FORMATS = "MNIST, CIFAR, SVHN, CelebA, Hugging Face, parquet or webdataset shards"


def detect(spec: SourceSpec, own_suffixes: Collection[str] = ()) -> str | None:
    """The standard format ``spec`` names (idx, cifar, svhn, celeba, hf, wds), or None.

    A folder holding files of ``own_suffixes`` (the calling modality's own files, e.g.
    pictures) is left to the modality unless its name marks a format (CelebA's
    ``img_align_celeba`` holds JPEGs)."""
    if spec.scheme is not None:
        return _BY_SCHEME[spec.scheme]
    path = Path(spec.path)
    if not path.exists():
        return "wds" if is_pattern(spec.path) else None
    if path.is_file():
        name = path.name.lower()
        if name.endswith(".mat"):
            return "svhn"
        if name.endswith(".parquet"):
            return "hf"
        return "wds" if is_shard(path) else "idx" if is_idx_name(path) else None
    if cifar_dir(path):
        return "cifar"
    if is_saved_dataset(path):
        return "hf"
    if celeba_dir(path):
        return "celeba"
    if any((path / f).is_file() for f in SVHN_FILES.values()):
        return "svhn"
    suffixes = {s.lower() for s in own_suffixes}
    if suffixes and any(p.suffix.lower() in suffixes for p in path.rglob("*")):
        return None
    if idx_files(path):
        return "idx"
    if has_tables(path):
        return "hf"
    return "wds" if has_shards(path) else None


def open_standard(source: str, media: str | None, own_suffixes: Collection[str] = ()
                  ) -> Found | None:
    """The examples ``source`` selects when it names a standard format, else None (then it
    is a plain path without a query: the modality's own files).

    ``media`` (``"image"``, ``"audio"``; None for labels only) chooses a table's column and a
    shard's members; a picture format asked for another media is refused in one line."""
    spec = parse_source(source)
    kind = detect(spec, own_suffixes)
    if kind is None:
        if spec.query:
            if not Path(spec.path).exists():
                raise UserError(f"{spec.path} does not exist; check the path")
            raise UserError(f"{source}: ?{spec.query} selects splits or classes, which "
                            f"{spec.path} does not have; the query applies to {FORMATS}")
        return None
    path = Path(spec.path)
    if kind != "wds" and not path.exists():
        raise UserError(f"{spec.path} does not exist; give a local path (nothing is "
                        "downloaded)")
    if kind in PICTURE_FORMATS and media not in (None, "image"):
        raise UserError(f"{source}: {PICTURE_FORMATS[kind]} holds pictures, not {media} data")
    if kind == "idx":
        return open_idx(spec, path)
    if kind == "cifar":
        return open_cifar(spec, path)
    if kind == "svhn":
        return open_svhn(spec, path)
    if kind == "celeba":
        return open_celeba(spec, path)
    if kind == "hf":
        return open_tables(spec, path, media)
    return open_shards(spec, media)


def labels_of(source: str, media: str | None = None) -> np.ndarray:
    """The class labels (int64) of the examples ``source`` selects, in their order: the same
    query (``?split=test``, ``classes=``, ``drop=``) gives the same examples to every command.

    One label per record of the format: a picture is one example, so these are the labels of
    ``run.examples(source)``; a sound cut into several clips gives each clip its record's label
    (``Examples.labels`` of the opened data has one per clip). ``media`` ("image", "audio"):
    count only the shard samples that hold it, as that modality does, where shards mix kinds.
    A source without labels is a ``UserError``."""
    found = open_standard(source, media)
    if found is None:
        raise UserError(f"{source} has no class labels; labels come with {FORMATS}")
    if found.labels is None:
        raise UserError(f"{source}: {found.format} has no class labels")
    return found.labels


def class_names_of(source: str) -> list[str] | None:
    """The names of the classes (label k is the k-th), where the format records them."""
    found = open_standard(source, None)
    return found.extra.get("class_names") if found is not None else None


def decode_records(found: Found, shape: tuple[int, ...], dtype: Any,
                   decode: Callable[[Record], np.ndarray]) -> np.ndarray:
    """``found``'s records decoded one at a time into an ``allocate``d array (count, *shape):
    ``latentgen prepare`` writes them straight into its file, and under torchrun each of its
    processes decodes only its share of the records (the others' rows are theirs to fill)."""
    if found.records is None:
        raise UserError(f"{found.source}: {found.format} holds decoded arrays, not records")
    out = allocate((found.count, *shape), dtype)
    for record in found.records(filling_part()):
        out[record.row] = decode(record)
    return out


def resolved_source(text: str) -> str:
    """``text`` with its path made absolute (scheme and query kept) where it exists, so that
    a run's record of its data works from any folder."""
    spec = parse_source(text)
    path = Path(spec.path)
    if path.exists():
        full = str(path.resolve())
    elif is_pattern(spec.path) and path.parent.is_dir():
        full = str(path.parent.resolve() / path.name)
    else:
        return text
    return (f"{spec.scheme}:" if spec.scheme else "") + full + \
        (f"?{spec.query}" if spec.query else "")


def picture_side(source: str, own_suffixes: Collection[str] = ()) -> int | None:
    """The side of a standard source's square pictures (CelebA: the 64 px it is usually read
    at), read from headers or the first picture; None when not square, not a standard source
    or unreadable (opening the data reports that properly)."""
    from latentgen.data.pixels import open_picture

    try:
        spec = parse_source(source)
        kind = detect(spec, own_suffixes)
        path = Path(spec.path)
        if kind == "idx":
            if path.is_dir():
                splits = {p.name.lower().split("-")[0].replace("t10k", "test"): p
                          for p in idx_files(path)}
                path = choose_split(spec, splits, "the IDX folder")[1]
            _, h, w = idx_header(path)
            return h if h == w else None
        if kind == "cifar":
            return 32
        if kind == "svhn":
            return svhn_side(path)
        if kind == "celeba":
            return CELEBA_SIDE
        if kind == "wds":  # the first sample of the first shard, not an index of them all
            first = first_sample(spec, "image")
        elif kind == "hf":
            found = open_standard(source, "image", own_suffixes)
            first = next(found.records((0, 1)), None) if found and found.records else None
        else:
            return None
        if first is None or isinstance(first.payload, np.ndarray):
            return None
        with open_picture(first.payload, name=first.name) as img:
            w, h = img.size
        return w if w == h else None
    except (UserError, OSError, ValueError, IndexError):
        return None

