"""Modality options on `latentgen train`: each registered modality's option fields become
`--flag VALUE` options in their own help panel, so a third-party plugin's options appear
without any change to the CLI.

Typer builds options from a function's signature, so the train command is wrapped in a function
whose signature is the original one plus one keyword parameter per modality option.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
from typing import Any, Callable, Optional

import typer

from latentgen.modality import option_flag
from latentgen.plugins import get_registry

PREFIX = "modopt__"
_TYPES = {"int": int, "float": float, "str": str, "bool": bool}


def with_modality_options(func: Callable[..., Any], panel_defaults: bool = True
                          ) -> Callable[..., Any]:
    """``func`` plus an option per registered modality option; the given values stay in the
    command context's ``params`` (read them with ``given_modality_options``). With
    ``panel_defaults``, training options' help also lists modality training defaults."""
    seen: dict[str, dict[str, Any]] = {}
    for modality in get_registry().modalities.values():
        for f in dataclasses.fields(modality.Options):
            entry = seen.setdefault(option_flag(f), {"field": f, "names": []})
            entry["names"].append(f"{modality.name}: {f.default}")
    signature = inspect.signature(func, eval_str=True)
    params = [_with_modality_defaults(p) if panel_defaults else p
              for p in signature.parameters.values()]
    annotations = dict(inspect.get_annotations(func, eval_str=True))
    for flag, entry in sorted(seen.items()):
        f = entry["field"]
        kind = Optional[_TYPES.get(str(f.type).split(" ")[0], str)]
        name = PREFIX + f.name
        default = typer.Option(None, flag, rich_help_panel="Modality options",
                               help=f"{f.metadata.get('help', '')} "
                                    f"(default {'; '.join(entry['names'])})")
        params.append(inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default,
                                        annotation=kind))
        annotations[name] = kind

    @functools.wraps(func)
    def command(**kwargs: Any) -> Any:
        return func(**{k: v for k, v in kwargs.items() if not k.startswith(PREFIX)})

    command.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = annotations
    del command.__wrapped__  # make inspect use __signature__, not the original's
    return command


def _with_modality_defaults(param: inspect.Parameter) -> inspect.Parameter:
    """A training option's help, completed with the defaults modalities set for it
    (``Modality.train_defaults``), e.g. "--sigma ... (default: 0.5; video: 1.0)"."""
    info = param.default
    own = {m.name: m.train_defaults[param.name] for m in get_registry().modalities.values()
           if param.name in m.train_defaults}
    if not own or not isinstance(getattr(info, "help", None), str):
        return param
    extra = "; ".join(f"{name}: {value}" for name, value in sorted(own.items()))
    info = dataclasses.replace(info) if dataclasses.is_dataclass(info) else _copy(info)
    text = info.help.rstrip(".")
    info.help = (text[:-1] + f"; {extra})." if text.endswith(")") else f"{text} ({extra}).")
    return param.replace(default=info)


def _copy(info: Any) -> Any:
    import copy

    return copy.copy(info)


def given_modality_options(params: dict[str, Any]) -> dict[str, Any]:
    """The modality options the user gave, from a command context's ``params``."""
    return {k[len(PREFIX):]: v for k, v in params.items()
            if k.startswith(PREFIX) and v is not None}
