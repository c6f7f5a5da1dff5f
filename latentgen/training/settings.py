"""The settings schema: each training setting declared once, as a field of ``TrainConfig``.

A field made with ``setting(...)`` carries everything the rest of latentgen needs about it:
its type (the annotation; ``Literal[...]`` for a fixed set of choices), default, help, unit,
lower bound and help panel. From these declarations come the `train` and `bench` flags and
their ``--help``, the TOML form of ``config.toml``, the checks on every value, and the
settings tables of docs/cli.md.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from latentgen.errors import UserError

PANELS = ("Data and run", "Training", "Latent prior", "Error curves", "Scale")


def setting(default: Any, help: str, *, unit: str | None = None, minimum: float | None = None,
            maximum: float | None = None, positive: bool = False, panel: str = "Training",
            off_flag: str | None = None,
            resumable: bool = False, repeat_flag: str | None = None) -> Any:
    """A ``TrainConfig`` field. ``minimum`` and ``maximum`` are inclusive, ``positive``
    excludes 0; a float setting is always finite; a bool
    setting has the flag pair ``--name/--off-flag`` (default ``--no-name``); ``resumable``
    settings may change on ``--resume`` (they change how a run executes, not what it learns);
    a list setting is given by repeating ``repeat_flag``."""
    assert panel in PANELS, panel
    meta = {"help": help, "unit": unit, "minimum": minimum, "maximum": maximum,
            "positive": positive,
            "panel": panel, "off_flag": off_flag, "resumable": resumable,
            "repeat_flag": repeat_flag}
    if isinstance(default, list):
        return dataclasses.field(default_factory=lambda: list(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Setting:
    """One declared setting, as read back from its ``TrainConfig`` field."""

    name: str
    #: int, float, str, bool or list (of str)
    kind: type
    #: whether None is a valid value (e.g. ``data``: None is the embedded default)
    optional: bool
    default: Any
    help: str
    choices: tuple[str, ...] | None
    unit: str | None
    minimum: float | None
    maximum: float | None
    positive: bool
    panel: str
    off_flag: str | None
    resumable: bool
    repeat_flag: str | None

    @property
    def flag(self) -> str:
        return self.repeat_flag or "--" + self.name.replace("_", "-")

    @property
    def flags(self) -> str:
        """The flags as ``--help`` shows them (``--compile/--no-compile`` for a bool)."""
        if self.kind is bool:
            return f"{self.flag}/{self.off_flag or '--no-' + self.name.replace('_', '-')}"
        return self.flag

    @property
    def type_name(self) -> str:
        if self.choices:
            return "|".join(self.choices)
        name = {int: "integer", float: "number", str: "text", bool: "bool",
                list: "list of names"}[self.kind]
        return name + (" or none" if self.optional and self.kind is not list else "")

    def check(self, value: Any, source: str) -> Any:
        """``value`` if it fits this setting (an int is taken for a float), else UserError.
        ``source`` names where it came from: a config file's path, or "settings" / "options"
        for keywords and flags (the message then names the flag)."""
        name = (self.flag if source in ("settings", "options", "config", "bench")
                else f"{source}: setting {self.name}")
        if value is None:
            if self.optional:
                return None
            raise UserError(f"{name} needs a value ({self.type_name})")
        if self.kind is list:
            if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
                raise UserError(f"{name} must be a list of names, got {_short(value)}")
            # "none" alone clears the list (e.g. the stored observers of a resumed run)
            return [] if list(value) == ["none"] else list(value)
        ok = isinstance(value, self.kind) and (self.kind is bool or not isinstance(value, bool))
        if self.kind is float and isinstance(value, int) and not isinstance(value, bool):
            value, ok = float(value), True
        if not ok:
            raise UserError(f"{name} must be {self.type_name}, got {_short(value)}")
        if self.choices and value not in self.choices:
            listed = ", ".join(self.choices[:-1]) + " or " + self.choices[-1]
            raise UserError(f"{name} must be {listed}, got '{value}'")
        if self.kind is float and not math.isfinite(value):
            raise UserError(f"{name} must be a finite number, got {value}")
        if self.positive and not value > 0:
            raise UserError(f"{name} must be positive, got {value}")
        if self.minimum is not None and value < self.minimum:
            least = "at least 1" if self.minimum == 1 else f"{self.minimum:g} or more"
            raise UserError(f"{name} must be {least}, got {value}")
        if self.maximum is not None and value > self.maximum:
            most = self.maximum if isinstance(self.maximum, int) else f"{self.maximum:g}"
            raise UserError(f"{name} must be at most {most}, got {_short(value)}")
        return value


def _short(value: Any, limit: int = 60) -> str:
    """A value as an error message shows it: its repr, cut short (a tensor's runs long)."""
    text = repr(value)
    return text if len(text) <= limit else f"{type(value).__name__} {text[:limit]}..."


def schema(cls: type) -> dict[str, Setting]:
    """The settings declared by the fields of dataclass ``cls``, in declaration order."""
    hints = typing.get_type_hints(cls)
    out: dict[str, Setting] = {}
    for f in dataclasses.fields(cls):
        if "panel" not in f.metadata:
            continue
        kind, optional, choices = _kind(hints[f.name])
        default = (f.default_factory() if f.default_factory is not dataclasses.MISSING
                   else f.default)
        out[f.name] = Setting(name=f.name, kind=kind, optional=optional, default=default,
                              choices=choices, **dict(f.metadata))
    return out


def _kind(hint: Any) -> tuple[type, bool, tuple[str, ...] | None]:
    optional = False
    if get_origin(hint) in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        args = [a for a in get_args(hint) if a is not type(None)]
        optional = len(args) < len(get_args(hint))
        (hint,) = args
    if get_origin(hint) is Literal:
        return str, optional, tuple(get_args(hint))
    if get_origin(hint) is list:
        return list, optional, None
    return hint, optional, None


def describe_default(s: Setting, value: Any = dataclasses.MISSING) -> str:
    """A default as a person reads it: ``30``, ``off``, ``none``, ``0.001``."""
    value = s.default if value is dataclasses.MISSING else value
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, list):
        return ", ".join(value) or "none"
    return str(value)
