"""Hugging Face data sets saved to disk (``save_to_disk``: Arrow files with ``state.json`` and
``dataset_info.json``, or a ``DatasetDict`` folder with ``dataset_dict.json``) and parquet
files, read with pyarrow a batch of rows at a time (the Arrow files are memory-mapped).

The data column is the one whose feature is an ``Image`` (``Audio``), else one named
image / img (audio), or ``?column=NAME``; labels come from the first ``ClassLabel`` column,
else an integer column named label / labels, or ``?label=NAME``. The features are read from
the files' own schema metadata, where ``datasets`` records them, so the ``datasets`` package
itself is not needed.
"""

from __future__ import annotations

import json
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
    one_split,
    select_rows,
    split_of_name,
)
from latentgen.errors import UserError

FEATURES = {"image": "Image", "audio": "Audio"}
COLUMN_NAMES = {"image": ("image", "img", "picture", "jpg", "png"),
                "audio": ("audio", "sound", "wav", "flac")}
LABEL_NAMES = ("label", "labels")
ROWS_PER_BATCH = 256
WHAT = "reading Hugging Face data sets and parquet files"


def is_saved_dataset(path: Path) -> bool:
    return (path / "dataset_dict.json").is_file() or (
        (path / "state.json").is_file() and (path / "dataset_info.json").is_file())


def has_tables(path: Path) -> bool:
    return path.is_dir() and any(p.suffix == ".parquet" for p in path.rglob("*.parquet"))


def table_files(spec: SourceSpec, path: Path) -> list[Path]:
    """The Arrow or parquet files of the split ``spec`` chooses."""
    if path.is_file():
        one_split(spec, f"parquet file {path.name}")
        return [path]
    if (path / "dataset_dict.json").is_file():
        splits = _json(path / "dataset_dict.json").get("splits", [])
        _, path = choose_split(spec, {s: path / s for s in splits}, "the DatasetDict")
    elif not (path / "state.json").is_file():  # a folder of parquet files, as on the Hub
        found = sorted(path.rglob("*.parquet"))
        if not found:
            raise UserError(f"{spec.text} holds no saved data set (state.json, "
                            "dataset_dict.json) or .parquet files")
        groups: dict[str, list[Path]] = {}
        for p in found:
            groups.setdefault(split_of_name(p) or "", []).append(p)
        if list(groups) == [""]:
            one_split(spec, f"{path} (no split in its file names)")
            return found
        groups.pop("", None)
        return list(choose_split(spec, groups, f"the parquet files of {path}")[1])
    else:
        one_split(spec, f"the saved data set {path}")
    state = _json(path / "state.json")
    files = [path / f["filename"] for f in state.get("_data_files", [])]
    missing = next((f for f in files if not f.is_file()), None)
    if not files or missing is not None:
        raise UserError(f"{spec.text}: {path / 'state.json'} names {missing or 'no'} data "
                        "file; save the data set again")
    return files


def _json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(loaded, dict):
            raise ValueError("not a JSON object")
        return loaded
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise UserError(f"cannot read {path} ({brief(exc)}); save the data set again") from None


class _Table:
    """One Arrow (``save_to_disk``) or parquet file: its schema, features and row batches."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pa = need("pyarrow", WHAT, "hf")
        try:
            if path.suffix == ".parquet":
                pq = need("pyarrow.parquet", WHAT, "hf")
                self.parquet = pq.ParquetFile(str(path))
                self.schema = self.parquet.schema_arrow
                self.rows = self.parquet.metadata.num_rows
            else:
                self.parquet = None
                self.schema = self._stream().schema
                self.rows = sum(b.num_rows for b in self._record_batches())
        except (OSError, self.pa.ArrowException) as exc:
            raise UserError(f"cannot read {path} ({brief(exc)}); replace the file") from None
        meta = (self.schema.metadata or {}).get(b"huggingface", b"{}")
        try:
            self.features: dict[str, Any] = json.loads(meta).get("info", {}).get("features", {})
        except ValueError:
            self.features = {}
        if not self.features and (path.parent / "dataset_info.json").is_file():
            self.features = _json(path.parent / "dataset_info.json").get("features", {})

    def _stream(self) -> Any:
        source = self.pa.memory_map(str(self.path))
        try:
            return self.pa.ipc.open_stream(source)
        except self.pa.ArrowInvalid:
            return self.pa.ipc.open_file(source)

    def _record_batches(self) -> Iterator[Any]:
        reader = self._stream()
        if hasattr(reader, "__iter__"):  # the stream format save_to_disk writes
            yield from reader
        else:
            yield from (reader.get_batch(i) for i in range(reader.num_record_batches))

    def batches(self, column: str) -> Iterator[Any]:
        """The column's values, a batch of rows at a time (pyarrow arrays)."""
        try:
            if self.parquet is not None:
                for batch in self.parquet.iter_batches(ROWS_PER_BATCH, columns=[column]):
                    yield batch.column(0)
                return
            for batch in self._record_batches():
                yield batch.column(batch.schema.get_field_index(column))
        except (OSError, self.pa.ArrowException) as exc:
            raise UserError(f"cannot read {self.path} ({brief(exc)}); replace the file") from None

    def kind(self, column: str) -> str | None:
        feature = self.features.get(column)
        return feature.get("_type") if isinstance(feature, dict) else None


def _media_column(spec: SourceSpec, table: _Table, media: str) -> str:
    names = table.schema.names
    if spec.column is not None:
        if spec.column not in names:
            raise UserError(f"{spec.text}: no column '{spec.column}'; the columns are "
                            f"{', '.join(names)}")
        return spec.column
    typed = [n for n in names if table.kind(n) == FEATURES.get(media)]
    if len(typed) > 1:
        named = [n for n in typed if n in COLUMN_NAMES[media]]
        if len(named) != 1:
            raise UserError(f"{spec.text}: several {media} columns ({', '.join(typed)}); "
                            "choose one with ?column=NAME")
        typed = named
    if typed:
        return typed[0]
    named = [n for n in names if n.lower() in COLUMN_NAMES.get(media, ())]
    if named:
        return named[0]
    raise UserError(f"{spec.text}: no {media} column (a {FEATURES.get(media, media)} feature or "
                    f"a column named {'/'.join(COLUMN_NAMES.get(media, ()))}) among "
                    f"{', '.join(names)}; choose one with ?column=NAME")


def _label_column(spec: SourceSpec, table: _Table) -> tuple[str | None, list[str] | None]:
    names = table.schema.names
    if spec.label is not None:
        if spec.label not in names:
            raise UserError(f"{spec.text}: no label column '{spec.label}'; the columns are "
                            f"{', '.join(names)}")
        column = spec.label
    else:
        typed = [n for n in names if table.kind(n) == "ClassLabel"]
        plain = [n for n in names if n.lower() in LABEL_NAMES
                 and table.pa.types.is_integer(table.schema.field(n).type)]
        column = (typed or plain or [None])[0]
    if column is None:
        return None, None
    if not table.pa.types.is_integer(table.schema.field(column).type):
        raise UserError(f"{spec.text}: label column '{column}' holds "
                        f"{table.schema.field(column).type}, not class numbers")
    feature = table.features.get(column)
    class_names = feature.get("names") if isinstance(feature, dict) else None
    return column, class_names


def open_tables(spec: SourceSpec, path: Path, media: str | None) -> Found:
    """The rows of the chosen split (and classes) of a saved data set or parquet files."""
    tables = [_Table(p) for p in table_files(spec, path)]
    what = "the Hugging Face data set" if tables[0].parquet is None else "the parquet data"
    label, class_names = _label_column(spec, tables[0])
    labels = None
    if label is not None:
        labels = np.concatenate([np.concatenate([b.to_numpy(zero_copy_only=False)
                                                 for b in t.batches(label)] or [np.zeros(0)])
                                 for t in tables]).astype(np.int64)
    rows = select_rows(spec, labels, what, class_names)
    total = sum(t.rows for t in tables)
    if total == 0:
        raise UserError(f"{spec.text}: {what} holds no rows")
    chosen = rows if rows is not None else np.arange(total)
    found = Found(spec.text, what, len(chosen), labels[chosen] if labels is not None else None,
                  extra={"class_names": class_names})
    if media is None:
        return found
    column = _media_column(spec, tables[0], media)
    row_of = np.full(total, -1, np.int64)
    row_of[chosen] = np.arange(len(chosen))

    def records(part: tuple[int, int]) -> Iterator[Record]:
        rank, world = part
        at = 0
        for table in tables:
            start = at
            for values in table.batches(column):
                mine = row_of[at:at + len(values)]
                for i in np.flatnonzero((mine >= 0) & (mine % world == rank)):
                    name = f"{table.path} row {at - start + int(i)}"
                    payload, rate = _payload(values[int(i)].as_py(), table.path.parent, name)
                    yield Record(int(mine[i]), payload, name, rate)
                at += len(values)

    found.records = records
    return found


def _payload(value: Any, folder: Path, name: str) -> tuple[bytes | Path | np.ndarray, int | None]:
    """An Image / Audio cell ({bytes, path}), decoded samples ({array, sampling_rate}) or raw
    bytes, as a record's payload."""
    if isinstance(value, bytes):
        return value, None
    if isinstance(value, dict):
        if value.get("bytes"):
            return value["bytes"], None
        if value.get("array") is not None and value.get("sampling_rate"):
            return np.asarray(value["array"], np.float32), int(value["sampling_rate"])
        if value.get("path"):
            path = Path(value["path"])
            path = path if path.is_absolute() else folder / path
            if path.is_file():
                return path, None
            raise UserError(f"{name} refers to {path}, which does not exist; save the data set "
                            "with the files embedded")
    raise UserError(f"{name} holds {type(value).__name__}, not an encoded file; choose the "
                    "data column with ?column=NAME")
