"""Typed options declared as dataclass fields: a modality's own options, checked on the way in
from a config file or the command line, and their declarations checked when the modality
registers (so the CLI can make a ``--flag`` of every one)."""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Collection, Iterable
from typing import Any

#: the types an option may have (alone or ``| None``): those the CLI parses
_SCALARS: dict[str, type] = {"int": int, "float": float, "str": str, "bool": bool}
#: an annotation as text (``from __future__ import annotations`` makes every one a string),
#: spaces removed: ``int``, ``int|None``, ``None|int`` or ``Optional[int]``
_TEXT = re.compile(r"(\w+)(?:\|None)?|None\|(\w+)|(?:typing\.)?Optional\[(\w+)\]")
_FLAG = re.compile(r"--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


def option(default: Any, help: str, flag: str | None = None) -> Any:
    """A modality option: a dataclass field that the CLI turns into ``--flag VALUE``."""
    return dataclasses.field(default=default, metadata={"help": help, "flag": flag})


def option_flag(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def option_flags(field: dataclasses.Field) -> tuple[str, ...]:
    """Every flag the CLI makes of an option: a bool one also gets ``--no-NAME``."""
    flag = option_flag(field)
    return (flag, f"--no-{flag[2:]}") if option_type(field) is bool else (flag,)


def option_type(field: dataclasses.Field) -> type | None:
    """The scalar type (int, float, str or bool, optionally ``| None``) an option declares,
    from a real annotation or its text; None for any other type."""
    hint = field.type
    if isinstance(hint, str):
        match = _TEXT.fullmatch(re.sub(r"\s", "", hint))
        return _SCALARS.get(next(g for g in match.groups() if g)) if match else None
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        rest = [a for a in args if a is not type(None)]
        hint = rest[0] if len(args) == 2 and len(rest) == 1 else None
    return hint if hint in _SCALARS.values() else None


def value_fits(field: dataclasses.Field, value: Any) -> bool:
    """Whether ``value`` (from TOML or the CLI) has the scalar type the field declares; None
    and fields of other types pass. An int is taken for a float, a bool not for a number; a
    float is finite (no option needs NaN or infinity, and NaN slips past every range check)."""
    want = option_type(field)
    if value is None or want is None:
        return True
    if isinstance(value, bool):
        return want is bool
    if isinstance(value, float) and not math.isfinite(value):
        return False
    return isinstance(value, (int, float) if want is float else want)


def check_options(options: object) -> None:
    """Raise ValueError (one line) unless ``options`` is a dataclass of options the CLI can
    parse: each of a scalar type, with a default of that type and ``--kebab-case`` flags that
    no other option of the class takes."""
    if not (isinstance(options, type) and dataclasses.is_dataclass(options)):
        raise ValueError(f"Options must be a dataclass, got {type(options).__name__}")
    taken: dict[str, str] = {}
    for field in dataclasses.fields(options):
        _check_option(field)
        for flag in option_flags(field):
            if flag in taken:
                raise ValueError(f"options {taken[flag]} and {field.name} both take {flag}")
            taken[flag] = field.name


def _check_option(field: dataclasses.Field) -> None:
    flag = option_flag(field)
    if not isinstance(flag, str) or not _FLAG.fullmatch(flag):
        raise ValueError(f"option {field.name} has flag {flag!r}; flags are --kebab-case names")
    kind = option_type(field)
    if kind is None:
        raise ValueError(f"option {flag} has type {field.type}; use int, float, str or bool "
                         "(optionally | None)")
    if field.default is dataclasses.MISSING:
        raise ValueError(f"option {flag} has no default; declare it with option(default, help)")
    if not value_fits(field, field.default):
        raise ValueError(f"option {flag} defaults to {field.default!r}, which is not "
                         f"{kind.__name__}")


def check_reserved(field: dataclasses.Field, settings: Collection[str],
                   flags: Collection[str]) -> None:
    """Raise ValueError unless the option is named unlike every training setting (a keyword
    of ``latentgen.train`` means the setting) and takes none of the commands' ``flags``."""
    if field.name in settings:
        raise ValueError(f"option {option_flag(field)} clashes with the training setting "
                         f"'{field.name}'; rename it")
    for flag in option_flags(field):
        if flag in flags:
            raise ValueError(f"option {option_flag(field)} clashes with the flag {flag} of "
                             "latentgen's commands; rename it")


def check_shared(field: dataclasses.Field, others: Iterable[tuple[str, type]]) -> None:
    """Raise ValueError if the option shares a name or flag with an option of another
    modality (name, Options) unlike it: the CLI makes one option per flag and a config file
    keys them by name, so a shared option needs the same name, flag and type."""
    keys = {field.name, *option_flags(field)}
    for modality, options in others:
        for other in dataclasses.fields(options):
            if keys & {other.name, *option_flags(other)} and not _same(field, other):
                raise ValueError(f"option {_describe(field)} clashes with option "
                                 f"{_describe(other)} of modality '{modality}'; a shared "
                                 "option needs the same name, flag and type")


def _same(a: dataclasses.Field, b: dataclasses.Field) -> bool:
    return (a.name, option_flag(a), option_type(a)) == (b.name, option_flag(b), option_type(b))


def _describe(field: dataclasses.Field) -> str:
    """An option as a clash names it: ``width (--width, int)``."""
    kind = option_type(field)
    return f"{field.name} ({option_flag(field)}, {kind.__name__ if kind else field.type})"
