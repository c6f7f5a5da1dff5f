"""Command-line options generated from declarations: the training settings schema
(``latentgen.training.settings``) and each registered modality's options, so that a setting
is declared once and a third-party plugin's options appear without any change to the CLI.

Typer builds options from a function's signature, so a command is wrapped in a function whose
signature is the original one plus one keyword parameter per generated option. Generated
options default to None ("not given"): ``latentgen.train`` then resolves the value exactly as
it does for a Python caller.

The CLI declares the names and flags it owns (``reserve``) before the registry is built, so
that a modality whose option would take one is refused when it registers instead of breaking
these commands for every modality.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

if TYPE_CHECKING:
    from latentgen.plugins.registry import Registry

SETTING = "setting__"
MODOPT = "modopt__"
#: the flags of the generated commands' own options and of the root: no modality option may
#: take them (tests/test_plugin_isolation.py checks the list against the commands)
COMMAND_FLAGS = ("--out", "--config", "--resume", "--repeats", "--json", "--help", "--version")


def _setting_param(s: Any, default: Any, help_default: str) -> inspect.Parameter:
    kind: Any = list[str] if s.kind is list else s.kind
    unit = f" Unit: {s.unit}." if s.unit else ""
    text = escape(f"{s.help}{unit} (default: {help_default})")
    metavar = "|".join(s.choices) if s.choices else None
    decls = [s.flags] if s.kind is bool else [s.flag]
    info = typer.Option(default, *decls, help=text, rich_help_panel=s.panel,
                        show_default=False, metavar=metavar)
    return inspect.Parameter(SETTING + s.name, inspect.Parameter.KEYWORD_ONLY, default=info,
                             annotation=kind | None)


@functools.cache
def _reserve() -> None:
    """Tell the registry, once, which names and flags the generated commands already have."""
    from latentgen.plugins.registry import reserve
    from latentgen.training.resolve import reserve_settings

    reserve_settings()
    reserve({}, COMMAND_FLAGS)


def registry() -> Registry:
    """The plugin registry, built with the CLI's names and flags reserved."""
    from latentgen.plugins.registry import get_registry

    _reserve()
    return get_registry()


def settings_params(names: list[str] | None = None, defaults: dict[str, Any] | None = None
                    ) -> list[inspect.Parameter]:
    """One option per training setting (``names``: a subset, in schema order). With
    ``defaults`` (a command's own, e.g. the bench's), the options carry those values;
    otherwise they are None, and the help names the schema default and the modalities' own."""
    from latentgen.training.config import SETTINGS
    from latentgen.training.settings import describe_default

    modalities = registry().modalities.values()
    params = []
    for s in SETTINGS.values():
        if names is not None and s.name not in names:
            continue
        if defaults is not None:
            value = defaults.get(s.name, s.default)
            params.append(_setting_param(s, value, describe_default(s, value)))
            continue
        own = sorted((m.name, m.train_defaults[s.name]) for m in modalities
                     if s.name in m.train_defaults)
        shown = "; ".join([describe_default(s), *(f"{n}: {describe_default(s, v)}"
                                                  for n, v in own)])
        params.append(_setting_param(s, None, shown))
    return params


def modality_params() -> list[inspect.Parameter]:
    """One option per modality option of every registered modality (shared by name)."""
    from latentgen.plugins.options import option_flag, option_flags, option_type

    # the registry admits only options that are the same wherever they share a flag
    seen: dict[str, dict[str, Any]] = {}
    for modality in registry().modalities.values():
        for f in dataclasses.fields(modality.Options):
            entry = seen.setdefault(option_flag(f), {"field": f, "names": []})
            entry["names"].append(f"{modality.name}: {f.default}")
    params = []
    for entry in (seen[flag] for flag in sorted(seen)):
        f = entry["field"]
        base = option_type(f) or str
        decl = "/".join(option_flags(f))
        info = typer.Option(None, decl, rich_help_panel="Modality options", show_default=False,
                            help=escape(f"{f.metadata.get('help', '')} "
                                        f"(default {'; '.join(entry['names'])})"))
        params.append(inspect.Parameter(MODOPT + f.name, inspect.Parameter.KEYWORD_ONLY,
                                        default=info, annotation=base | None))
    return params


def with_params(func: Callable[..., Any], extra: list[inspect.Parameter]) -> Callable[..., Any]:
    """``func`` with the ``extra`` options; their values reach it in ``ctx.params`` (read them
    with ``given_settings`` and ``given_modality_options``), not as arguments."""
    signature = inspect.signature(func, eval_str=True)
    annotations = dict(inspect.get_annotations(func, eval_str=True))
    for p in extra:
        annotations[p.name] = p.annotation

    @functools.wraps(func)
    def command(**kwargs: Any) -> Any:
        return func(**{k: v for k, v in kwargs.items()
                       if not k.startswith((SETTING, MODOPT))})

    command.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=[*signature.parameters.values(), *extra])
    command.__annotations__ = annotations
    del command.__wrapped__  # make inspect use __signature__, not the original's
    return command


def given_settings(params: dict[str, Any]) -> dict[str, Any]:
    """The training settings the user gave (or, for commands with their own defaults, all)."""
    return {k[len(SETTING):]: (list(v) if isinstance(v, tuple) else v)
            for k, v in params.items()
            if k.startswith(SETTING) and v is not None and v != ()}


def given_modality_options(params: dict[str, Any]) -> dict[str, Any]:
    """The modality options the user gave, from a command context's ``params``."""
    return {k[len(MODOPT):]: v for k, v in params.items()
            if k.startswith(MODOPT) and v is not None}
