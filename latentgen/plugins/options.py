"""A modality's own options: fields of its ``Options`` dataclass made with ``option(...)``
(``latentgen.plugins.declare``: the same declaration as a training setting), and the checks
their declarations pass when the modality registers, so that the CLI can make a ``--flag`` of
every one and every value is checked against its declaration on the way in."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Collection, Iterable

from latentgen.plugins.declare import Declaration, declarations, field_type, option

__all__ = ["check_options", "check_reserved", "check_shared", "option", "option_declarations",
           "option_flag", "option_flags", "option_type"]

_FLAG = re.compile(r"--[a-z][a-z0-9]*(?:-[a-z0-9]+)*")


def option_declarations(options: type) -> dict[str, Declaration]:
    """The declarations of an ``Options`` dataclass, by option name."""
    return declarations(options)


def option_flag(field: dataclasses.Field) -> str:
    return field.metadata.get("flag") or "--" + field.name.replace("_", "-")


def option_flags(field: dataclasses.Field) -> tuple[str, ...]:
    """Every flag the CLI makes of an option: a bool one also gets ``--no-NAME``."""
    flag = option_flag(field)
    return (flag, f"--no-{flag[2:]}") if option_type(field) is bool else (flag,)


def option_type(field: dataclasses.Field) -> type | None:
    """The scalar type (int, float, str or bool, optionally ``| None``) an option declares,
    from its annotation alone; None for any other type. (``option_declarations`` reads the
    annotations in their module, ``Literal`` choices included.)"""
    return field_type(field)


def check_options(options: object) -> None:
    """Raise ValueError (one line) unless ``options`` is a dataclass of options the CLI can
    parse: each of a scalar type, with a default that fits its declaration and
    ``--kebab-case`` flags that no other option of the class takes."""
    if not (isinstance(options, type) and dataclasses.is_dataclass(options)):
        raise ValueError(f"Options must be a dataclass, got {type(options).__name__}")
    declared = declarations(options)
    taken: dict[str, str] = {}
    for field in dataclasses.fields(options):
        flag = option_flag(field)
        if not isinstance(flag, str) or not _FLAG.fullmatch(flag):
            raise ValueError(f"option {field.name} has flag {flag!r}; flags are --kebab-case "
                             "names")
        decl = declared.get(field.name)
        problem = (f"has type {field.type}; use int, float, str or bool (optionally | None)"
                   if decl is None else decl.problem())
        if problem:
            raise ValueError(f"option {flag} {problem}")
        assert decl is not None
        for each in decl.all_flags:
            if each in taken:
                raise ValueError(f"options {taken[each]} and {field.name} both take {each}")
            taken[each] = field.name


def check_reserved(option: Declaration, settings: Collection[str],
                   flags: Collection[str]) -> None:
    """Raise ValueError unless the option is named unlike every training setting (a keyword
    of ``latentgen.train`` means the setting) and takes none of the commands' ``flags``."""
    if option.name in settings:
        raise ValueError(f"option {option.flag} clashes with the training setting "
                         f"'{option.name}'; rename it")
    for flag in option.all_flags:
        if flag in flags:
            raise ValueError(f"option {option.flag} clashes with the flag {flag} of "
                             "latentgen's commands; rename it")


def check_shared(option: Declaration, others: Iterable[tuple[str, type]]) -> None:
    """Raise ValueError if the option shares a name or flag with an option of another
    modality (name, Options) unlike it: the CLI makes one option per flag and a config file
    keys them by name, so a shared option needs the same name, flag and type (its bounds
    and choices may differ: each modality checks its own)."""
    keys = {option.name, *option.all_flags}
    for modality, options in others:
        for other in declarations(options).values():
            if keys & {other.name, *other.all_flags} and not _same(option, other):
                raise ValueError(f"option {_describe(option)} clashes with option "
                                 f"{_describe(other)} of modality '{modality}'; a shared "
                                 "option needs the same name, flag and type")


def _same(a: Declaration, b: Declaration) -> bool:
    return (a.name, a.flag, a.kind) == (b.name, b.flag, b.kind)


def _describe(option: Declaration) -> str:
    """An option as a clash names it: ``width (--width, int)``."""
    kind = option.kind.__name__ if option.kind else option.annotation
    return f"{option.name} ({option.flag}, {kind})"
