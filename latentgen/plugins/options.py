"""Typed options declared as dataclass fields: a modality's own options, checked on the way in
from a config file or the command line."""

from __future__ import annotations

import dataclasses
from typing import Any


def option(default: Any, help: str, flag: str | None = None) -> Any:
    """A modality option: a dataclass field that the CLI turns into ``--flag VALUE``."""
    return dataclasses.field(default=default, metadata={"help": help, "flag": flag})


def option_flag(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


_SCALARS: dict[str, Any] = {"int": int, "float": (int, float), "str": str, "bool": bool}


def value_fits(field: dataclasses.Field, value: Any) -> bool:
    """Whether ``value`` (from TOML or the CLI) has the scalar type the field declares; None
    and fields of other types pass. A bool is not taken for a number."""
    want = _SCALARS.get(str(field.type).split(" ")[0])
    if value is None or want is None:
        return True
    return isinstance(value, want) and (want is bool or not isinstance(value, bool))
