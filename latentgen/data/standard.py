"""The classic picture sets as their distributions (and torchvision) leave them on disk: MNIST and
Fashion-MNIST IDX files, CIFAR-10/100 python batches, SVHN .mat files, CelebA's aligned
faces. Nothing is downloaded; the readers only read."""

from __future__ import annotations

import gzip
import pickle
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from latentgen.data.records import (
    Found,
    Record,
    SourceSpec,
    brief,
    choose_split,
    need,
    no_columns,
    one_split,
    select_rows,
)
from latentgen.errors import UserError

CIFAR10_DIR, CIFAR100_DIR, CELEBA_DIR = "cifar-10-batches-py", "cifar-100-python", \
    "img_align_celeba"
SVHN_FILES = {"train": "train_32x32.mat", "test": "test_32x32.mat", "extra": "extra_32x32.mat"}
CELEBA_PARTITION = "list_eval_partition.txt"
#: CelebA as the ABP / latent-EBM papers read it: the centre 140 x 140 of the 178 x 218 faces,
#: resized (64 px unless --image-size says otherwise)
CELEBA_CROP, CELEBA_SIDE = (140, 140), 64
CELEBA_SPLITS = {"train": "0", "valid": "1", "test": "2"}


# -- MNIST / Fashion-MNIST: IDX files ----------------------------------------------------
def is_idx_name(p: Path) -> bool:
    """An IDX image file by its name (``train-images-idx3-ubyte[.gz]``, ``x.idx``)."""
    name = p.name.lower()
    return p.is_file() and ("idx3-ubyte" in name or name.endswith((".idx", ".idx.gz")))


def read_idx(path: Path, ndim: int = 3) -> np.ndarray:
    """An IDX uint8 array (images: 3 dimensions, magic 0x803; labels: 1, magic 0x801)."""
    try:
        opener: Any = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as fh:
            raw = fh.read()
        zero, dtype, dims = struct.unpack(">HBB", raw[:4])
        if zero != 0 or dtype != 0x08 or dims != ndim:
            raise ValueError(f"not an IDX uint8 file of {ndim} dimension(s) "
                             f"(magic 0x0000080{ndim})")
        shape = struct.unpack(">" + "I" * dims, raw[4:4 + 4 * dims])
        size = int(np.prod(shape))
        if len(raw) < 4 + 4 * dims + size:
            raise ValueError(f"the header says {size} bytes of data, the file is shorter")
        data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * dims)
        return data[:size].reshape(shape).copy()
    except (OSError, ValueError, struct.error, EOFError) as exc:
        raise UserError(f"cannot read IDX file {path} ({brief(exc)}); give an uncorrupted "
                        "MNIST-style file") from None


def idx_header(path: Path) -> tuple[int, ...]:
    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as fh:
        head = fh.read(16)
    return struct.unpack(">III", head[4:16])


def idx_files(folder: Path) -> list[Path]:
    """The IDX image files below ``folder`` (torchvision's ``MNIST/raw`` and
    ``FashionMNIST/raw`` included), a raw file and its ``.gz`` copy once."""
    found = sorted(p for p in folder.rglob("*") if is_idx_name(p))
    stems = {p.name.removesuffix(".gz") for p in found if not p.name.endswith(".gz")}
    return [p for p in found if not (p.name.endswith(".gz") and p.name[:-3] in stems
                                     and p.with_suffix("").exists())]


def _labels_beside(images: Path) -> Path | None:
    name = images.name.replace("images-idx3", "labels-idx1")
    for candidate in (name, name.removesuffix(".gz"), name.removesuffix(".gz") + ".gz"):
        if candidate != images.name and (images.parent / candidate).is_file():
            return images.parent / candidate
    return None


def open_idx(spec: SourceSpec, path: Path) -> Found:
    """An IDX image file (with its labels file beside it when present), or a folder of them:
    ``train-*`` files by default, ``t10k-*`` with ``split=test``."""
    no_columns(spec, "MNIST")
    if path.is_dir():
        files = idx_files(path)
        folders = sorted({str(p.parent) for p in files})
        if len(folders) > 1:
            raise UserError(f"{spec.text}: IDX files in several folders ({', '.join(folders)}); "
                            "give one of them")
        splits: dict[str, list[Path]] = {}
        for p in files:
            word = p.name.lower().split("-")[0]
            splits.setdefault({"t10k": "test"}.get(word, word), []).append(p)
        if not splits:
            raise UserError(f"{spec.text} holds no IDX image files (…-idx3-ubyte[.gz])")
        _, files = choose_split(spec, splits, "the IDX folder")
    else:
        one_split(spec, f"IDX file {path.name}")
        files = [path]
    arrays = [read_idx(p) for p in files]
    labels = None
    label_files = [_labels_beside(p) for p in files]
    if all(label_files):
        parts = []
        for images, lab, arr in zip(files, label_files, arrays):
            assert lab is not None
            part = read_idx(lab, ndim=1).astype(np.int64)
            if len(part) != len(arr):
                raise UserError(f"{lab} holds {len(part)} labels for the {len(arr)} images of "
                                f"{images.name}; give matching files")
            parts.append(part)
        labels = np.concatenate(parts)
    return _selected(spec, "MNIST", np.concatenate(arrays), labels, None)


# -- CIFAR-10 / CIFAR-100 python batches -------------------------------------------------
class _Batches(pickle.Unpickler):
    """The pickles hold dicts of bytes, lists and numpy arrays: nothing else is built from
    them (an unpickler that imports anything runs any code a file asks for)."""

    ALLOWED = {(module, name) for module in ("numpy.core.multiarray", "numpy._core.multiarray")
               for name in ("_reconstruct", "scalar")} | {
        ("numpy", "ndarray"), ("numpy", "dtype"), ("copy_reg", "_reconstructor"),
        ("copyreg", "_reconstructor"), ("__builtin__", "object"), ("builtins", "object")}

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}")
        return super().find_class(module, name)


def read_batch(path: Path) -> dict[bytes, Any]:
    try:
        with open(path, "rb") as fh:
            batch = _Batches(fh, encoding="bytes").load()
        if not isinstance(batch, dict):
            raise ValueError("not a dict of arrays")
        return batch
    except Exception as exc:
        raise UserError(f"cannot read CIFAR batch {path} ({brief(exc)}); replace the "
                        "file") from None


def cifar_dir(path: Path) -> tuple[Path, str] | None:
    """(the batches' folder, "CIFAR-10" or "CIFAR-100") for the folder or its parent (a
    torchvision root), else None."""
    for folder in (path, path / CIFAR10_DIR, path / CIFAR100_DIR):
        if (folder / "data_batch_1").is_file() or (folder / "test_batch").is_file():
            return folder, "CIFAR-10"
        if (folder / "meta").is_file() and ((folder / "train").is_file()
                                            or (folder / "test").is_file()):
            return folder, "CIFAR-100"
    return None


def open_cifar(spec: SourceSpec, path: Path) -> Found:
    located = cifar_dir(path)
    if located is None:
        raise UserError(f"{spec.text} holds no CIFAR batches ({CIFAR10_DIR}/data_batch_1, "
                        f"{CIFAR100_DIR}/train); point at the folder holding them")
    folder, name = located
    no_columns(spec, name)
    if name == "CIFAR-10":
        splits = {"train": [folder / f"data_batch_{i}" for i in range(1, 6)],
                  "test": [folder / "test_batch"]}
        meta, label_key, names_key = folder / "batches.meta", b"labels", b"label_names"
    else:
        splits = {"train": [folder / "train"], "test": [folder / "test"]}
        meta, label_key, names_key = folder / "meta", b"fine_labels", b"fine_label_names"
    splits = {k: v for k, v in splits.items() if all(p.is_file() for p in v)}
    _, files = choose_split(spec, splits, name)
    pictures, labels = [], []
    for p in files:
        batch = read_batch(p)
        try:
            data = np.asarray(batch[b"data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
            labels.append(np.asarray(batch[label_key], dtype=np.int64))
        except (KeyError, ValueError) as exc:
            raise UserError(f"{p} is not a CIFAR batch ({exc!r} missing or misshapen); replace "
                            "the file") from None
        pictures.append(data.transpose(0, 2, 3, 1))
    class_names = None
    if meta.is_file():
        found = read_batch(meta).get(names_key)
        class_names = [n.decode() if isinstance(n, bytes) else str(n) for n in found or []]
    return _selected(spec, name, np.concatenate(pictures), np.concatenate(labels), class_names)


# -- SVHN .mat ---------------------------------------------------------------------------
def open_svhn(spec: SourceSpec, path: Path) -> Found:
    """``train_32x32.mat`` style files: X (32, 32, 3, N), y (N, 1) with 10 meaning digit 0."""
    no_columns(spec, "SVHN")
    if path.is_dir():
        splits = {k: path / v for k, v in SVHN_FILES.items() if (path / v).is_file()}
        if not splits:
            raise UserError(f"{spec.text} holds no SVHN files ({', '.join(SVHN_FILES.values())})")
        _, path = choose_split(spec, splits, "the SVHN folder")
    else:
        one_split(spec, f"SVHN file {path.name}")
    io = need("scipy.io", "reading SVHN .mat files", "svhn")
    try:
        mat = io.loadmat(str(path), variable_names=["X", "y"])
        pictures = np.asarray(mat["X"], dtype=np.uint8).transpose(3, 0, 1, 2)
        labels = np.asarray(mat["y"], dtype=np.int64).reshape(-1)
        if len(labels) != len(pictures) or pictures.shape[1:] != (32, 32, 3):
            raise ValueError(f"X of shape {mat['X'].shape} and {len(labels)} labels")
    except Exception as exc:
        raise UserError(f"cannot read SVHN file {path} ({brief(exc)}); give an uncorrupted "
                        "train_32x32.mat-style file (X and y)") from None
    labels[labels == 10] = 0
    return _selected(spec, "SVHN", pictures, labels, None)


def svhn_side(path: Path) -> int | None:
    io = need("scipy.io", "reading SVHN .mat files", "svhn")
    if path.is_dir():
        path = next((path / v for v in SVHN_FILES.values() if (path / v).is_file()), path)
    shapes = {name: shape for name, shape, _ in io.whosmat(str(path))}
    shape = shapes.get("X", ())
    return int(shape[0]) if len(shape) == 4 and shape[0] == shape[1] else None


def _selected(spec: SourceSpec, name: str, pictures: np.ndarray, labels: np.ndarray | None,
              class_names: list[str] | None) -> Found:
    rows = select_rows(spec, labels, name, class_names)
    if rows is not None:
        pictures = pictures[rows]
        labels = labels[rows] if labels is not None else None
    if not len(pictures):
        raise UserError(f"{spec.text}: {name} holds no examples; check the files")
    return Found(spec.text, name, len(pictures), labels, arrays=lambda: iter([pictures]),
                 extra={"class_names": class_names})


# -- CelebA ------------------------------------------------------------------------------
def celeba_dir(path: Path) -> Path | None:
    """The ``img_align_celeba`` folder: ``path`` itself or below it (torchvision's
    ``root/celeba/img_align_celeba``)."""
    for folder in (path, path / CELEBA_DIR, path / "celeba" / CELEBA_DIR):
        if folder.name == CELEBA_DIR and folder.is_dir():
            return folder
    return None


def open_celeba(spec: SourceSpec, path: Path) -> Found:
    """The aligned faces, in file-name order; with ``list_eval_partition.txt`` beside the
    folder, its split (train by default)."""
    no_columns(spec, "CelebA")
    folder = celeba_dir(path) or path
    if not folder.is_dir():
        raise UserError(f"{spec.text}: no {CELEBA_DIR} folder there; point at it or at the "
                        "folder holding it")
    select_rows(spec, None, "CelebA")  # refuses classes= and drop=: no class labels here
    partition = folder.parent / CELEBA_PARTITION
    if partition.is_file():
        _, code = choose_split(spec, CELEBA_SPLITS, "CelebA")
        files = []
        try:
            for number, line in enumerate(partition.read_text(encoding="utf-8").splitlines()):
                parts = line.split()
                if len(parts) != 2 or parts[1] not in CELEBA_SPLITS.values():
                    if line.strip():
                        raise ValueError(f"line {number + 1} is not 'FILE 0|1|2'")
                    continue
                if parts[1] == code:
                    files.append(folder / parts[0])
        except (OSError, ValueError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read {partition} ({brief(exc)}); replace the file") from None
        missing = next((f for f in files if not f.is_file()), None)
        if missing is not None:
            raise UserError(f"{spec.text}: {partition.name} lists {missing.name}, which is not "
                            f"in {folder}; restore the file or remove {partition.name}")
    else:
        if spec.split is not None:
            raise UserError(f"{spec.text}: CelebA's splits come from {CELEBA_PARTITION} beside "
                            f"{folder}, which is missing; add it or leave out split=")
        files = sorted(p for p in folder.iterdir()
                       if p.suffix.lower() in (".jpg", ".jpeg", ".png"))
    if not files:
        raise UserError(f"{spec.text}: no pictures in {folder} for this split")

    def records(part: tuple[int, int]) -> Iterator[Record]:
        rank, world = part
        for row in range(rank, len(files), world):
            yield Record(row, files[row], str(files[row]))

    return Found(spec.text, "CelebA", len(files), None, records=records, crop=CELEBA_CROP,
                 names=[str(f) for f in files])
