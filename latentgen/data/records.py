"""What the readers of standard data sets share: the source string's query, split and class
selection, and the records a modality decodes.

A source string is ``[SCHEME:]PATH[?QUERY]``. The query chooses among the examples of a format
that has splits or labels, the same way for every command and format:

    split=NAME      a split (train, valid, test; a format may have others, e.g. SVHN's extra);
                    without it, formats with splits read train
    classes=0,2,3   keep the examples of these classes (numbers, or a format's class names)
    drop=1          keep all but these classes
    column=NAME     the data column of a Hugging Face data set or parquet file
    label=NAME      its label column
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import numpy as np

from latentgen.errors import UserError

#: the scheme prefixes that name a format (``cifar10:PATH``); ``builtin:`` belongs to plugins
SCHEMES = ("mnist", "fashion-mnist", "cifar10", "cifar100", "svhn", "celeba", "hf", "wds")
QUERY_KEYS = ("split", "classes", "drop", "column", "label")
#: names a split goes by in the wild (Hugging Face says validation, CelebA's list valid)
SPLIT_ALIASES = {"valid": ("valid", "validation", "val", "dev"),
                 "test": ("test", "t10k", "testing"), "train": ("train", "training")}
QUERY_HELP = "use split=train|valid|test, classes=0,2,3 or drop=1 (column=, label= for tables)"
_SCHEME = re.compile(r"^([a-z][a-z0-9-]+):(?!//)(.+)$")
_WORD = re.compile(r"^[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class SourceSpec:
    """A parsed source string: ``text`` as given, ``path`` without scheme and query."""

    text: str
    path: str
    scheme: str | None = None
    query: str = ""
    split: str | None = None
    classes: tuple[str, ...] | None = None
    drop: tuple[str, ...] | None = None
    column: str | None = None
    label: str | None = None

    @property
    def filters_classes(self) -> bool:
        return self.classes is not None or self.drop is not None


def parse_source(text: str) -> SourceSpec:
    """``[SCHEME:]PATH[?QUERY]`` parsed; a malformed query is a ``UserError`` naming it.

    A path that exists as written is taken whole, so a file whose name holds '?' still opens.
    """
    scheme, rest = None, text
    found = _SCHEME.match(text)
    if found and found.group(1) in SCHEMES:
        scheme, rest = found.group(1), found.group(2)
    if "?" not in rest or Path(rest).exists():
        return SourceSpec(text, rest, scheme)
    path, _, query = rest.rpartition("?")
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError:
        raise UserError(f"{text}: cannot read the query '?{query}'; {QUERY_HELP}") from None
    values: dict[str, str] = {}
    for key, value in pairs:
        if key not in QUERY_KEYS:
            raise UserError(f"{text}: unknown query key '{key}'; {QUERY_HELP}")
        if key in values:
            raise UserError(f"{text}: '{key}' is given twice; give it once")
        if not value:
            raise UserError(f"{text}: '{key}=' has no value; {QUERY_HELP}")
        values[key] = value
    if "classes" in values and "drop" in values:
        raise UserError(f"{text}: give classes= (keep) or drop=, not both")
    lists = {k: tuple(v.strip() for v in values[k].split(",")) for k in ("classes", "drop")
             if k in values}
    singles = [(k, v) for k, v in values.items() if k not in lists]
    for key, value in [*singles, *((k, v) for k, vs in lists.items() for v in vs)]:
        if not _WORD.match(value):
            raise UserError(f"{text}: '{key}' has the value '{value}'; use letters, digits, "
                            "'_', '-' or '.', and commas between classes")
    return SourceSpec(text, path, scheme, query, values.get("split"), lists.get("classes"),
                      lists.get("drop"), values.get("column"), values.get("label"))


@dataclass
class Record:
    """One example of a standard format, still encoded: what a modality decodes."""

    #: position among the selected examples (the row it takes in the data set)
    row: int
    #: an encoded file's bytes, a file, or decoded samples (a sound's ``rate``)
    payload: bytes | Path | np.ndarray
    #: names the example in messages: a file, ``shard.tar#key``, ``file.parquet row 12``
    name: str
    rate: int | None = None


@dataclass
class Found:
    """The examples a standard source selects (after ``split=``, ``classes=``, ``drop=``), in
    order: either pictures already decoded (``arrays``) or ``records`` to decode."""

    source: str
    #: the format, for messages: "MNIST", "CIFAR-10", "webdataset shards", ...
    format: str
    count: int
    labels: np.ndarray | None = None
    #: consecutive chunks of decoded pictures (n, H, W[, C]) uint8, ``count`` rows in all
    arrays: Callable[[], Iterator[np.ndarray]] | None = None
    #: the records, given (rank, world): a process filling its part of a shared file reads
    #: only its share (``decode_records``); (0, 1) reads all
    records: Callable[[tuple[int, int]], Iterator[Record]] | None = None
    #: a centre box (width, height) the format's pictures are cut to before resizing
    crop: tuple[int, int] | None = None
    names: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def choose_split(spec: SourceSpec, available: dict[str, Any], where: str) -> tuple[str, Any]:
    """The split ``spec`` asks for among ``available`` (name -> anything): without
    ``split=``, train, or the only split there is."""
    names = list(available)
    if spec.split is None:
        for name in SPLIT_ALIASES["train"]:
            if name in available:
                return name, available[name]
        if len(names) == 1:
            return names[0], available[names[0]]
        raise UserError(f"{spec.text}: {where} has no train split; choose one of "
                        f"{', '.join(names)} with ?split=NAME")
    wanted = next((aliases for aliases in SPLIT_ALIASES.values() if spec.split in aliases),
                  (spec.split,))
    for name in (spec.split, *wanted):
        if name in available:
            return name, available[name]
    raise UserError(f"{spec.text}: {where} has no split '{spec.split}'; it has "
                    f"{', '.join(names) or 'none'}")


def one_split(spec: SourceSpec, where: str) -> None:
    """Refuse ``split=`` on a source that is a single split (one file)."""
    if spec.split is not None:
        raise UserError(f"{spec.text}: {where} is one split; leave out split= (or give the "
                        "folder that holds the splits)")


def no_columns(spec: SourceSpec, where: str) -> None:
    """Refuse ``column=`` / ``label=`` on a format that is not a table."""
    if spec.column is not None or spec.label is not None:
        raise UserError(f"{spec.text}: {where} has no columns; column= and label= apply to "
                        "Hugging Face data sets and parquet files")


def split_of_name(path: Path) -> str | None:
    """The split a shard's or table's file name says (``train-00000-of-00004.parquet``,
    ``test.tar``, ``validation/0.parquet``), or None."""
    known = {name for aliases in SPLIT_ALIASES.values() for name in aliases}
    stem = path.name.split(".")[0]
    for word in (re.split(r"[-_]", stem)[0], path.parent.name):
        if word.lower() in known:
            return word.lower()
    return None


def select_rows(spec: SourceSpec, labels: np.ndarray | None, where: str,
                class_names: Sequence[str] | None = None) -> np.ndarray | None:
    """Positions of the examples ``classes=`` / ``drop=`` keep, in order (None: all).

    A class is a label number or one of ``class_names``; a class the labels do not hold is
    refused (a typo would otherwise drop nothing)."""
    wanted_text = spec.classes if spec.classes is not None else spec.drop
    if wanted_text is None:
        return None
    if labels is None:
        raise UserError(f"{spec.text}: {where} has no class labels; leave out classes= and "
                        "drop=")
    present = np.unique(labels)
    wanted = []
    for token in wanted_text:
        if re.fullmatch(r"-?\d+", token):
            number = int(token)
        elif class_names is not None and token in class_names:
            number = list(class_names).index(token)
        else:
            known = f" or one of {', '.join(class_names)}" if class_names else ""
            raise UserError(f"{spec.text}: class '{token}' is not a label number{known}")
        if number not in present:
            raise UserError(f"{spec.text}: class {number} is not among the labels of {where} "
                            f"({_span(present)})")
        wanted.append(number)
    hit = np.isin(labels, wanted)
    rows = np.flatnonzero(hit if spec.classes is not None else ~hit)
    if not len(rows):
        raise UserError(f"{spec.text}: no example of {where} is left; keep at least one class")
    return rows


def _span(present: np.ndarray) -> str:
    values = [int(v) for v in present]
    if values == list(range(values[0], values[-1] + 1)) and len(values) > 3:
        return f"{values[0]} to {values[-1]}"
    return ", ".join(map(str, values[:20])) + (", ..." if len(values) > 20 else "")


def brief(exc: BaseException, limit: int = 200) -> str:
    """An exception's text on one line (tarfile's lists the methods it tried, line by line)."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if len(text) <= limit else text[:limit - 3] + "..."


def need(module: str, what: str, extra: str, purpose: str = "") -> Any:
    """``import module``, or a one-line ``UserError`` naming its package and the extra that
    installs it: "``what`` needs PACKAGE ``purpose``: pip install 'latentgen[``extra``]'". A
    package that is there but misses one of its own dependencies fails as it does."""
    import importlib

    package = module.partition(".")[0]
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if (exc.name or package).partition(".")[0] != package:
            raise
        said = f" {purpose}" if purpose else ""
        raise UserError(f"{what} needs {package}{said}: pip install 'latentgen[{extra}]'"
                        ) from None
