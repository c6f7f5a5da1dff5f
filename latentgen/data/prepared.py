"""Prepared datasets: examples packed once into one array file, for data larger than memory
(``latentgen prepare``).

    FILE        the stored examples (e.g. uint8 pixels), C order, no header
    FILE.json   {"format": "latentgen-prepared", "shape": [...], "dtype": "uint8",
                 "modality": "image", "modality_options": {...}, "source": "...", ...}

FILE is a plain C-order array (``numpy.memmap`` maps it). Training reads the rows of each
batch as it needs them (``RowFile``): only the batches in use are in the process's memory,
the kernel's page cache is shared by every process on a machine, and DataLoader workers read
the next batches while the generator computes. The
modality's own options at packing time (image size, channels, ...) are recorded, so a run on
FILE builds the generator that fits it without repeating them.
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from latentgen.data.examples import Examples, allocating_with
from latentgen.data.rowfile import RowFile
from latentgen.data.sources import resolved_source
from latentgen.errors import UserError
from latentgen.runtime.distributed import Shard, environment_world, session
from latentgen.runtime.files import (
    atomic_write,
    remove_stale_temporaries,
    reserve,
    temporary_name,
    write_error,
)

FORMAT = "latentgen-prepared"
VERSION = 1


def sidecar_of(path: str | Path) -> Path:
    path = Path(path)
    return path if path.suffix == ".json" else path.with_name(path.name + ".json")


def is_prepared(source: str | None) -> bool:
    """Whether ``source`` names a prepared file (or its ``.json`` sidecar)."""
    if not source or source.startswith("builtin:"):
        return False
    side = sidecar_of(source)
    if not side.is_file():
        return False
    try:
        with open(side) as fh:
            return json.load(fh).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def read_sidecar(source: str) -> dict[str, Any]:
    side = sidecar_of(source)
    try:
        with open(side) as fh:
            meta = json.load(fh)
        shape = tuple(int(s) for s in meta["shape"])
        np.dtype(meta["dtype"])
        meta["modality"], meta["decode"]  # noqa: B018  (presence check)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"{side} is not a readable prepared-data sidecar ({exc}); run "
                        "`latentgen prepare` again") from None
    if meta.get("version", 0) > VERSION:
        raise UserError(f"{side} was written by a newer latentgen (format {meta['version']}); "
                        "upgrade latentgen")
    if not shape or min(shape) < 1:
        raise UserError(f"{side} describes an empty array (shape {list(shape)}); run "
                        "`latentgen prepare` again on data that holds examples")
    meta["shape"] = shape
    return meta


def open_prepared(source: str, modality: Any) -> Examples:
    """The examples of a prepared file, mapped (nothing is read until it is used)."""
    meta = read_sidecar(source)
    data_path = sidecar_of(source).with_suffix("") if Path(source).suffix == ".json" \
        else Path(source)
    if meta["modality"] != modality.name:
        raise UserError(f"{source} holds {meta['modality']} data, not {modality.name}; pass "
                        f"`modality` {meta['modality']} or prepare the data for {modality.name}")
    dtype = np.dtype(meta["dtype"])
    expected = int(np.prod(meta["shape"])) * dtype.itemsize
    size = data_path.stat().st_size if data_path.is_file() else -1
    if size != expected:
        raise UserError(f"{data_path} holds {max(size, 0)} bytes, its sidecar says "
                        f"{expected} (shape {list(meta['shape'])}, {dtype}); the file is "
                        "incomplete or was replaced: run `latentgen prepare` again")
    rows = RowFile(data_path, dtype, meta["shape"])
    decode = _decoder(meta["decode"], modality)
    labels = None
    if meta.get("labels"):  # the classes of a standard set's examples, in their order
        try:
            labels = np.load(data_path.with_name(meta["labels"]), allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise UserError(f"cannot read the labels {meta['labels']} beside {data_path} "
                            f"({exc}); run `latentgen prepare` again") from None
        if len(labels) != meta["shape"][0]:
            raise UserError(f"{meta['labels']} holds {len(labels)} labels for "
                            f"{meta['shape'][0]} examples; run `latentgen prepare` again")
    return Examples(rows, decode, str(data_path), streamed=True,  # type: ignore[arg-type]
                    labels=labels)


def prepared_options(source: str) -> tuple[str, dict[str, Any]]:
    """The modality a prepared file holds and the options it was packed with."""
    meta = read_sidecar(source)
    return meta["modality"], dict(meta.get("modality_options", {}))


#: core modules that files prepared by earlier versions name, and where they live now
_MOVED = {"latentgen.pixels": "latentgen.data.pixels"}


def _decoder(name: str, modality: Any) -> Callable[[torch.Tensor], torch.Tensor]:
    """The modality's stored-to-model function, by name, from the modality's own package."""
    module, _, qualname = name.partition(":")
    module = _MOVED.get(module, module)
    package = type(modality).__module__.split(".")[0]
    # only the plugin's own code or the core's shared helpers are imported from a sidecar
    if module.split(".")[0] not in (package, "latentgen") or not qualname:
        raise UserError(f"the prepared data's decoder {name} is not from the {modality.name} "
                        f"plugin ({package}) or latentgen; run `latentgen prepare` again")
    try:
        obj: Any = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"the prepared data's decoder {name} is gone ({exc}); run `latentgen "
                        "prepare` again with this version of the plugin") from None
    return obj


def _decoder_name(decode: Callable[..., Any]) -> str:
    module, qualname = getattr(decode, "__module__", None), getattr(decode, "__qualname__", "")
    if not module or "<" in qualname or hasattr(decode, "__self__"):
        raise UserError("this modality's datasets decode with a function latentgen cannot name "
                        "again later (a lambda, closure or bound method), so they cannot be "
                        "prepared; train from the source directly")
    return f"{module}:{qualname}"


def _left_over(side: Path) -> bool:
    """Whether ``side`` is the sidecar of a prepare cut short before its data file appeared."""
    try:
        return json.loads(side.read_text(encoding="utf-8")).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


class _Team:
    """The processes of one ``prepare``: one alone, or those torchrun started, which write one
    file together (each decodes its share of the records into it: ``filling_part``)."""

    def __init__(self, shard: Shard) -> None:
        self.rank, self.world = shard.rank, shard.world
        self.failed = False

    def share(self, value: str) -> str:
        """Rank 0's ``value``, on every process."""
        if self.world == 1:
            return value
        box = [value]
        dist.broadcast_object_list(box, src=0)
        return str(box[0])

    def settle(self, error: Exception | None) -> None:
        """Every process says whether its step failed, in the same order; if one did, all
        stop: it with its own error, the others in one line saying so."""
        if self.world > 1 and not self.failed:
            flag = torch.tensor([0 if error is None else 1])
            dist.all_reduce(flag, op=dist.ReduceOp.MAX)
            self.failed = bool(flag.item())
        if error is not None:
            raise error
        if self.failed:  # known to all: later steps stop without asking again
            raise UserError("another process of this `latentgen prepare` failed (its error "
                            "says why); nothing was written")


def prepare(model: Any, source: str | None, out: str | Path) -> dict[str, Any]:
    """Pack ``source`` (opened as ``model``'s modality opens training data) into ``out``.

    Sources whose plugin fills its storage through ``latentgen.data.allocate`` (pictures,
    standard sets, shards) are written straight into the file as they are read; others are
    loaded, then written. ``out`` appears complete or not at all. Under torchrun the processes
    write one file together, each decoding its share of the records (webdataset shards
    ``rank``, ``rank + world``, ...; the rows of a folder of pictures ``i % world == rank``).
    """
    if environment_world()[1] == 1:
        return _prepare(model, source, Path(out), _Team(Shard()))
    with session(torch.device("cpu")) as (shard, _):
        return _prepare(model, source, Path(out), _Team(shard))


def _checked_out(out: Path) -> None:
    if out.suffix.lower() == ".json":
        raise UserError(f"`out` {out}: a .json name is taken by the sidecar; give the data file's "
                        "name (e.g. faces.u8), and FILE.json is written beside it")
    if out.is_dir():
        raise UserError(f"`out` {out} is a folder; give a file name for the prepared data")
    if out.exists() or (sidecar_of(out).exists() and not _left_over(sidecar_of(out))):
        raise UserError(f"`out` {out} already exists; delete it or choose another name")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"`out` {out}: cannot create its folder ({exc.strerror}); give a "
                        "path in a writable folder") from None


def _prepare(model: Any, source: str | None, out: Path, team: _Team) -> dict[str, Any]:
    error: Exception | None = None
    try:
        _checked_out(out)
        if team.rank == 0:
            remove_stale_temporaries(out.parent, out.name)  # of a prepare that was killed
    except UserError as exc:
        error = exc
    team.settle(error)
    tmp = out.with_name(team.share(temporary_name(out)))
    mapped: list[np.memmap] = []

    def into_file(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
        if mapped:  # only the first (the dataset's storage) goes to the file
            return np.empty(shape, dtype)
        failure: Exception | None = None
        if team.rank == 0:
            try:
                try:
                    np.memmap(tmp, dtype=dtype, mode="w+", shape=shape).flush()  # sparse
                except OSError as exc:
                    raise write_error(exc, out) from None
                reserve(tmp, out)  # a full disk fails here, not at a write through the map
            except Exception as exc:
                failure = exc
        team.settle(failure)  # the others map the file once it is there
        mapped.append(np.memmap(tmp, dtype=dtype, mode="r+", shape=shape))
        return mapped[0]

    start = time.perf_counter()
    try:
        data = None
        try:
            with allocating_with(into_file, (team.rank, team.world)):
                data = model.open_data(source)
        except Exception as exc:
            error = exc
        team.settle(error)
        assert data is not None
        decode_name = _decoder_name(data.decode)
        storage = data.storage.contiguous()
        array = storage.numpy()
        try:
            if mapped and np.shares_memory(array, mapped[0]):
                mapped[0].flush()  # each process wrote its share in place
            elif team.rank == 0:  # every process has it all: one writes
                mapped.clear()
                array.tofile(tmp)
        except Exception as exc:
            error = exc
        team.settle(error)
        meta = {"format": FORMAT, "version": VERSION, "modality": model.modality.name,
                "modality_options": asdict(model.options), "shape": list(storage.shape),
                "dtype": str(array.dtype), "examples": int(storage.shape[0]),
                "source": resolved_source(source) if source else data.source,
                "decode": decode_name,
                "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        if data.labels is not None:
            meta["labels"] = labels_file(out).name
        if team.rank == 0:
            try:
                _publish(out, tmp, meta, data.labels)
            except Exception as exc:
                error = exc
        team.settle(error)
    except OSError as exc:
        raise write_error(exc, out) from None
    finally:
        mapped.clear()
        if tmp.exists() and (team.rank == 0 or team.failed):
            tmp.unlink(missing_ok=True)
    return {**meta, "file": str(out), "sidecar": str(sidecar_of(out)),
            "bytes": int(array.nbytes), "seconds": round(time.perf_counter() - start, 3)}


def labels_file(out: Path) -> Path:
    """Where the labels of a prepared file's examples are kept (``FILE.labels.npy``)."""
    return out.with_name(out.name + ".labels.npy")


def _publish(out: Path, tmp: Path, meta: dict[str, Any], labels: np.ndarray | None) -> None:
    if labels is not None:
        atomic_write(labels_file(out), lambda fh: np.save(fh, labels, allow_pickle=False))
    # the sidecar next: a data file never appears without its description (a sidecar left
    # alone by a kill between the two is taken over by the next prepare)
    atomic_write(sidecar_of(out), lambda fh: fh.write(json.dumps(meta, indent=2) + "\n"),
                 mode="w")
    try:
        os.replace(tmp, out)
    except BaseException:
        sidecar_of(out).unlink(missing_ok=True)
        raise
