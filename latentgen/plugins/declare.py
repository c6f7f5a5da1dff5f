"""One way to declare a value a user gives, and the one check of a value against it.

A training setting (``setting(...)``, a field of ``TrainConfig``) and a modality option
(``option(...)``, a field of a modality's ``Options``) are both dataclass fields declared here:
the type comes from the annotation (``Literal[...]`` for a fixed set of choices, of text or of
integers), the rest from the declaration (default, help, unit, bounds, choices, flag). From a
declaration come the command-line flag and its ``--help``, the TOML key, the CLI reference in
docs/cli.md, and ``Declaration.check``, which refuses a bad value with one line naming it by
its name in backticks (`` `channels` must be 1 or 3, got 2``); the command line shows the flag
in its place.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import sys
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from latentgen.errors import UserError

#: the ``--help`` panels of the training settings, in the order they are shown
SETTING_PANELS = ("Data and run", "Training", "Latent prior", "Error curves", "Scale")
#: the scalar types a declaration may have (alone or ``| None``); a setting may be a list too
SCALARS: tuple[type, ...] = (int, float, str, bool)
#: sources whose values the message names by their name alone (keywords, flags, built
#: configs); any other source is a file, named in front of the setting's key
_BY_NAME = (None, "settings", "options", "config", "bench")
#: what a declaration's field metadata may hold
_KEYS = ("help", "unit", "minimum", "maximum", "positive", "choices", "flag", "panel",
         "off_flag", "resumable", "repeat_flag")
_TYPE_NAMES = {int: "integer", float: "number", str: "text", bool: "bool",
               list: "list of names"}


def declare(default: Any, help: str, *, unit: str | None = None,
            minimum: float | None = None, maximum: float | None = None,
            positive: bool = False, choices: Sequence[Any] | None = None,
            flag: str | None = None, panel: str | None = None, off_flag: str | None = None,
            resumable: bool = False, repeat_flag: str | None = None) -> Any:
    """A declared dataclass field: what ``setting`` and ``option`` make. ``minimum`` and
    ``maximum`` are inclusive, ``positive`` excludes 0, ``choices`` (or a ``Literal``
    annotation) lists the only values taken; a float is always finite. ``flag`` replaces the
    ``--name`` flag. The rest applies to training settings: their ``--help`` panel, the off
    flag of a bool (default ``--no-name``), whether ``--resume`` may change them, and the
    flag repeated to give a list."""
    meta = {"help": help, "unit": unit, "minimum": minimum, "maximum": maximum,
            "positive": positive, "choices": None if choices is None else tuple(choices),
            "flag": flag, "panel": panel, "off_flag": off_flag, "resumable": resumable,
            "repeat_flag": repeat_flag}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def setting(default: Any, help: str, *, unit: str | None = None, minimum: float | None = None,
            maximum: float | None = None, positive: bool = False,
            choices: Sequence[Any] | None = None, panel: str = "Training",
            off_flag: str | None = None, resumable: bool = False,
            repeat_flag: str | None = None) -> Any:
    """A training setting: a ``TrainConfig`` field (see ``declare``), shown in ``panel``."""
    if panel not in SETTING_PANELS:
        raise ValueError(f"panel {panel!r} is not one of {', '.join(SETTING_PANELS)}")
    return declare(default, help, unit=unit, minimum=minimum, maximum=maximum,
                   positive=positive, choices=choices, panel=panel, off_flag=off_flag,
                   resumable=resumable, repeat_flag=repeat_flag)


def option(default: Any, help: str, flag: str | None = None, *, unit: str | None = None,
           minimum: float | None = None, maximum: float | None = None, positive: bool = False,
           choices: Sequence[Any] | None = None) -> Any:
    """A modality option: a field of the modality's ``Options`` dataclass that the CLI turns
    into ``--flag VALUE`` (see ``declare``), e.g. ``option(3, "channels", choices=(1, 3))``
    or ``option(16, "width of the last layer", minimum=1)``."""
    return declare(default, help, unit=unit, minimum=minimum, maximum=maximum,
                   positive=positive, choices=choices, flag=flag)


@dataclass(frozen=True)
class Declaration:
    """One declared value, as read back from its field (``declarations``)."""

    name: str
    #: int, float, str, bool or list (of str); None: a type that no declaration may have
    kind: type | None
    #: whether None is a valid value (e.g. ``data``: None is the embedded default)
    optional: bool
    #: ``dataclasses.MISSING`` when the field has none
    default: Any
    help: str = ""
    choices: tuple[Any, ...] | None = None
    unit: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    positive: bool = False
    #: the flag the declaration names instead of ``--name``
    own_flag: str | None = None
    #: the ``--help`` panel; None for a modality option
    panel: str | None = None
    off_flag: str | None = None
    resumable: bool = False
    repeat_flag: str | None = None
    #: the annotation as written, for messages about a type no declaration may have
    annotation: str = ""

    @property
    def is_setting(self) -> bool:
        return self.panel is not None

    @property
    def flag(self) -> str:
        return self.repeat_flag or self.own_flag or "--" + self.name.replace("_", "-")

    @property
    def all_flags(self) -> tuple[str, ...]:
        """Every flag the command line makes of it: a bool also gets its off flag."""
        if self.kind is bool:
            return self.flag, self.off_flag or "--no-" + self.flag[2:]
        return (self.flag,)

    @property
    def flags(self) -> str:
        """The flags as ``--help`` shows them (``--compile/--no-compile`` for a bool)."""
        return "/".join(self.all_flags)

    @property
    def type_name(self) -> str:
        if self.choices:
            return "|".join(str(c) for c in self.choices)
        if self.kind is None:
            return self.annotation
        name = _TYPE_NAMES[self.kind]
        return name + (" or none" if self.optional and self.kind is not list else "")

    @property
    def limits(self) -> str:
        """The bounds as a person reads them (``at least 1``, ``between 2 and 512``,
        ``positive``); empty when there are none."""
        parts = ["positive"] if self.positive else []
        lo, hi = self.minimum, self.maximum
        if lo is not None and hi is not None:
            parts.append(f"between {_number(lo)} and {_number(hi)}")
        elif lo is not None:
            parts.append("at least 1" if lo == 1 else f"{_number(lo)} or more")
        elif hi is not None:
            parts.append(f"at most {_number(hi)}")
        return ", ".join(parts)

    def describe_default(self, value: Any = dataclasses.MISSING) -> str:
        """A default as a person reads it: ``30``, ``off``, ``none``, ``0.001``."""
        value = self.default if value is dataclasses.MISSING else value
        if value is None:
            return "none"
        if isinstance(value, bool):
            return "on" if value else "off"
        if isinstance(value, list):
            return ", ".join(value) or "none"
        return str(value)

    def fits_type(self, value: Any) -> bool:
        """Whether ``value`` has the declared type (an int is taken for a float, a bool not
        for a number); None fits an optional declaration, anything a declaration of no
        known type."""
        if value is None:
            return self.optional or self.kind is None
        if self.kind is None:
            return True
        if self.kind is list:
            return (isinstance(value, (list, tuple))
                    and all(isinstance(v, str) for v in value))
        if isinstance(value, bool):
            return self.kind is bool
        return isinstance(value, (int, float) if self.kind is float else self.kind)

    def check(self, value: Any, source: str | None = None) -> Any:
        """``value`` if it fits this declaration (an int made a float where a float is
        declared), else a one-line UserError. ``source`` names where a setting's value came
        from when it is a file (the message then names the file and the key written there);
        otherwise the message names the value `` `name` ``, as a Python caller wrote it."""
        name = (f"`{self.name}`" if source in _BY_NAME
                else f"{source}: {'setting' if self.is_setting else 'option'} {self.name}")
        if value is None:
            if self.fits_type(None):
                return None
            wanted = _listed(self.choices) if self.choices else self.type_name
            raise UserError(f"{name} needs a value ({wanted})")
        if not self.fits_type(value):
            if self.choices:
                raise UserError(f"{name} must be {_listed(self.choices)}, got {_short(value)}")
            what = "a list of names" if self.kind is list else self.type_name
            raise UserError(f"{name} must be {what}, got {_short(value)}")
        if self.kind is list:
            # "none" alone clears the list (e.g. the stored observers of a resumed run)
            return [] if list(value) == ["none"] else list(value)
        if self.kind is float:
            value = float(value)
            if not math.isfinite(value):
                raise UserError(f"{name} must be a finite number, got {value}")
        if self.choices and value not in self.choices:
            raise UserError(f"{name} must be {_listed(self.choices)}, got {_short(value)}")
        if self.positive and not value > 0:
            raise UserError(f"{name} must be positive, got {_short(value)}")
        if ((self.minimum is not None and value < self.minimum)
                or (self.maximum is not None and value > self.maximum)):
            bounds = self.limits.removeprefix("positive, ")
            raise UserError(f"{name} must be {bounds}, got {_short(value)}")
        return value

    def problem(self) -> str | None:
        """What is wrong with the declaration itself, in words after its name; None if
        nothing (checked when a modality registers, and for the settings at import)."""
        if self.kind is None or (self.kind is list and not self.is_setting):
            return (f"has type {self.annotation}; use int, float, str or bool (optionally "
                    "| None)")
        if self.default is dataclasses.MISSING:
            return "has no default; declare it with option(default, help)"
        if self.choices is not None:
            if not self.choices:
                return "declares no choices"
            bad = [c for c in self.choices if c is None or not self.fits_type(c)]
            if bad:
                return f"has choices {_listed(self.choices)}, not all {self.kind.__name__}"
        if ((self.minimum is not None or self.maximum is not None or self.positive)
                and self.kind not in (int, float)):
            return f"has bounds, but is {self.kind.__name__}, not a number"
        if not self.fits_type(self.default) or (
                isinstance(self.default, float) and not math.isfinite(self.default)):
            return f"defaults to {self.default!r}, which is not {self.kind.__name__}"
        if self.default is not None:
            try:
                self.check(self.default)
            except UserError as exc:
                return f"defaults to {self.default!r}, outside its declaration ({exc})"
        return None


def declarations(cls: type) -> dict[str, Declaration]:
    """The declarations of dataclass ``cls`` (a modality's ``Options``, ``TrainConfig``), by
    name in field order: every field made with ``setting`` or ``option``, and every plain
    field of a type a declaration may have."""
    return dict(_declarations(cls))


@functools.cache
def _declarations(cls: type) -> tuple[tuple[str, Declaration], ...]:
    hints = _hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        declared = "help" in f.metadata
        kind, optional, literal = _kind(hints[f.name])
        if not declared and kind is None:
            continue  # e.g. TrainConfig.modality_options: a table, not a declared value
        meta = {k: v for k, v in f.metadata.items() if k in _KEYS} if declared else {}
        choices = meta.pop("choices", None)
        if literal is not None and choices is not None and tuple(choices) != literal:
            kind = None  # two different lists of choices: refused as a type
        default = (f.default_factory() if f.default_factory is not dataclasses.MISSING
                   else f.default)
        out.append((f.name, Declaration(
            name=f.name, kind=kind, optional=optional, default=default,
            help=meta.pop("help", ""), choices=literal or choices, own_flag=meta.pop("flag", None),
            annotation=_text(f.type), **meta)))
    return tuple(out)


def field_type(field: dataclasses.Field) -> type | None:
    """The scalar type (int, float, str or bool, optionally ``| None``) a field declares, from
    its annotation alone (a real one, or its text when it names no module's own types); None
    for any other type."""
    kind = _kind(_evaluated(field.type, {}))[0]
    return kind if kind in SCALARS else None


def _hints(cls: type) -> dict[str, Any]:
    """The fields' annotations, evaluated (``from __future__ import annotations`` makes every
    one a string) where they can be; one that cannot stays text."""
    try:
        return typing.get_type_hints(cls)
    except Exception:  # a name the annotation's module lacks: each field on its own
        module = sys.modules.get(cls.__module__)
        namespace = dict(vars(module)) if module is not None else {}
        return {f.name: _evaluated(f.type, namespace) for f in dataclasses.fields(cls)}


def _evaluated(hint: Any, namespace: dict[str, Any]) -> Any:
    if not isinstance(hint, str):
        return hint
    try:
        return eval(hint, {"Literal": Literal, "Optional": typing.Optional,  # noqa: S307
                           "Union": typing.Union, "typing": typing, **namespace})
    except Exception:
        return hint


def _kind(hint: Any) -> tuple[type | None, bool, tuple[Any, ...] | None]:
    """(kind, optional, choices) of an evaluated annotation; kind None for any other type."""
    optional = False
    if get_origin(hint) in (typing.Union, types.UnionType):
        args = get_args(hint)
        rest = [a for a in args if a is not type(None)]
        if len(rest) != 1 or len(args) != 2:
            return None, False, None
        hint, optional = rest[0], True
    if get_origin(hint) is Literal:
        choices = get_args(hint)
        kinds = {type(c) for c in choices}
        if len(kinds) != 1 or not kinds <= set(SCALARS):
            return None, optional, None
        return kinds.pop(), optional, choices
    if hint is list or (get_origin(hint) is list and get_args(hint) == (str,)):
        return list, optional, None
    return (hint if hint in SCALARS else None), optional, None


def _text(hint: Any) -> str:
    return hint if isinstance(hint, str) else getattr(hint, "__name__", str(hint))


def _number(x: float) -> str:
    return str(x) if isinstance(x, int) else f"{x:g}"


def _listed(choices: Sequence[Any]) -> str:
    """``1 or 3``, ``fp32, bf16 or auto``."""
    words = [str(c) for c in choices]
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def _short(value: Any, limit: int = 60) -> str:
    """A value as an error message shows it: its repr, cut short (a tensor's runs long)."""
    text = repr(value)
    return text if len(text) <= limit else f"{type(value).__name__} {text[:limit]}..."
