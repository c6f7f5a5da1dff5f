"""Command-line options generated from declarations (``latentgen.declarations``): the training
settings of ``TrainConfig`` and each registered modality's options, so that a setting is
declared once and a third-party plugin's options, their choices and bounds included, appear
without any change to the CLI.

Typer builds options from a function's signature, so a command is wrapped in a function whose
signature is the original one plus one keyword parameter per generated option. Generated
options default to None ("not given"): ``latentgen.train`` then resolves the value exactly as
it does for a Python caller.

The CLI declares the names and flags it owns (``reserve``) before the registry is built, so
that a modality whose option would take one is refused when it registers instead of breaking
these commands for every modality.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import typer
from rich.markup import escape

if TYPE_CHECKING:
    from latentgen import Declaration, Registry

SETTING = "setting__"
MODOPT = "modopt__"
#: the flags of the generated commands' own options and of the root: no modality option may
#: take them (tests/test_plugin_isolation.py checks the list against the commands)
COMMAND_FLAGS = ("--out", "--config", "--resume", "--repeats", "--json", "--help", "--version")


@functools.cache
def declared_flags() -> dict[str, str]:
    """The flag of every training setting and modality option, by name (the help texts and
    messages of latentgen name them in backquotes)."""
    from latentgen import TrainConfig, declarations

    flags = {flag[2:].replace("-", "_"): flag for flag in COMMAND_FLAGS}
    flags.update({d.name: d.flag for d in declarations(TrainConfig).values()})
    for modality in registry().modalities.values():
        flags.update({d.name: d.flag for d in declarations(modality.Options).values()})
    return flags


def helped(text: str) -> str:
    """A declaration's help text as the command line shows it: flags for setting names."""
    from .output import flag_words

    return flag_words(text, declared_flags())


def described(d: Declaration, bounds: bool = True) -> str:
    """A declaration's help with its unit and (``bounds``) its bounds: ``Epochs to train.
    Must be at least 1.``; after a help that ends without a full stop (a modality option's,
    often), ``frames per clip; must be between 2 and 512``."""
    notes = [*([f"unit: {d.unit}"] if d.unit else []),
             *([f"must be {d.limits}"] if bounds and d.limits else [])]
    text = helped(d.help)
    if text.endswith("."):
        return " ".join([text, *(n[0].upper() + n[1:] + "." for n in notes)])
    return "; ".join([text, *notes])


def _metavar(d: Declaration) -> str | None:
    return d.type_name if d.choices else None


def _setting_param(s: Declaration, default: Any, help_default: str) -> inspect.Parameter:
    kind: Any = list[str] if s.kind is list else s.kind
    text = escape(f"{described(s)} (default: {help_default})")
    metavar = _metavar(s)
    decls = [s.flags] if s.kind is bool else [s.flag]
    info = typer.Option(default, *decls, help=text, rich_help_panel=s.panel,
                        show_default=False, metavar=metavar)
    return inspect.Parameter(SETTING + s.name, inspect.Parameter.KEYWORD_ONLY, default=info,
                             annotation=kind | None)


@functools.cache
def _reserve() -> None:
    """Tell the registry, once, which names and flags the generated commands already have."""
    import latentgen

    latentgen.reserve_declared(latentgen.declarations(latentgen.TrainConfig), COMMAND_FLAGS)


def registry() -> Registry:
    """The plugin registry, built with the CLI's names and flags reserved."""
    import latentgen

    _reserve()
    return latentgen.get_registry()


def settings_params(names: list[str] | None = None, defaults: dict[str, Any] | None = None
                    ) -> list[inspect.Parameter]:
    """One option per training setting (``names``: a subset, in schema order). With
    ``defaults`` (a command's own, e.g. the bench's), the options carry those values;
    otherwise they are None, and the help names the schema default and the modalities' own."""
    from latentgen import TrainConfig, declarations

    modalities = registry().modalities.values()
    params = []
    for s in declarations(TrainConfig).values():
        if names is not None and s.name not in names:
            continue
        if defaults is not None:
            value = defaults.get(s.name, s.default)
            params.append(_setting_param(s, value, s.describe_default(value)))
            continue
        own = sorted((m.name, m.train_defaults[s.name]) for m in modalities
                     if s.name in m.train_defaults)
        shown = "; ".join([s.describe_default(), *(f"{n}: {s.describe_default(v)}"
                                                   for n, v in own)])
        params.append(_setting_param(s, None, shown))
    return params


def modality_params() -> list[inspect.Parameter]:
    """One option per modality option of every registered modality (shared by name), its
    help with the unit, bounds and choices each modality declares."""
    from latentgen import declarations

    # the registry admits only options that are the same wherever they share a flag (name,
    # flag and type; bounds and choices may differ between modalities)
    seen: dict[str, list[tuple[str, Declaration]]] = {}
    for modality in registry().modalities.values():
        for d in declarations(modality.Options).values():
            seen.setdefault(d.flag, []).append((modality.name, d))
    params = []
    for shared in (seen[flag] for flag in sorted(seen)):
        d = shared[0][1]
        defaults = "; ".join(f"{name}: {o.default}" for name, o in shared)
        info = typer.Option(None, d.flags, rich_help_panel="Modality options",
                            show_default=False, metavar=_metavar(d),
                            help=escape(f"{_shared_help(shared)} (default {defaults})"))
        params.append(inspect.Parameter(MODOPT + d.name, inspect.Parameter.KEYWORD_ONLY,
                                        default=info, annotation=(d.kind or str) | None))
    return params


def _shared_help(shared: list[tuple[str, Declaration]]) -> str:
    """The help of an option as the first modality declares it; bounds or choices that
    differ between modalities are listed by modality."""
    d = shared[0][1]
    if len({(o.type_name, o.limits) for _, o in shared}) == 1:
        return described(d)
    each = "; ".join(f"{name}: {', '.join(filter(None, [o.type_name, o.limits]))}"
                     for name, o in shared)
    return f"{described(d, bounds=False)} (takes {each})"


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
