"""What a plugin may register: the checks a registration passes before the registry takes it
(a free name, a callable factory, a well-formed modality whose options fit latentgen's), and
the names the layers above the plugins reserve (``registry.reserve``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from latentgen.plugins.modality import Modality, check_declaration, check_train_defaults
from latentgen.plugins.options import check_reserved, check_shared, option_declarations
from latentgen.plugins.registered import Registry

SINGULAR = {"modalities": "modality", "priors": "prior", "samplers": "sampler",
            "observers": "observer", "extractors": "feature extractor"}


@dataclass(frozen=True)
class Reserved:
    """What the layers above the plugins own, declared with ``reserve``: the training settings
    (name -> check of a value, raising UserError) and the command-line flags."""

    settings: Mapping[str, Callable[[Any], object]] = field(default_factory=dict)
    flags: frozenset[str] = frozenset()


class Refused(ValueError):
    """A registration latentgen refuses; the text is the plugin's one-line error."""


def checked(reg: Registry, kind: str, args: tuple[Any, ...], reserved: Reserved
            ) -> tuple[str, Any]:
    """The name and value of a registration (``register``'s arguments), or Refused."""
    if kind == "modalities":
        if len(args) != 1 or not isinstance(args[0], Modality):
            got = ", ".join(type(a).__name__ for a in args) or "nothing"
            raise Refused(f"register() takes one latentgen.Modality, got {got}")
        name, value = getattr(args[0], "name", None), args[0]
    elif len(args) != 2:
        raise Refused(f"register() takes a name and a factory, got {len(args)} arguments")
    else:
        name, value = args
    what = SINGULAR[kind]
    if not isinstance(name, str) or not name.isidentifier():
        raise Refused(f"invalid {what} name {name!r}; use a Python identifier")
    _check_free(reg, kind, name)
    if kind != "modalities" and not callable(value):
        raise Refused(f"{what} '{name}' must be callable, got {type(value).__name__}")
    if kind == "modalities":
        try:
            _check_modality(reg, value, reserved)
        except ValueError as exc:
            raise Refused(f"modality '{name}': {exc}") from None
    return name, value


def _check_free(reg: Registry, kind: str, name: str) -> None:
    what = SINGULAR[kind]
    owner = reg.owners.get(f"{kind}:{name}")
    if owner in reg.builtin:
        raise Refused(f"{what} '{name}' is built into latentgen (already registered by plugin "
                      f"'{owner}'); rename it")
    if owner is not None:
        raise Refused(f"{what} '{name}' is already registered by plugin '{owner}'; rename it")


def _check_modality(reg: Registry, modality: Modality, reserved: Reserved) -> None:
    """Raise ValueError unless the modality is well formed and its options and train_defaults
    fit latentgen's and those of the modalities already registered."""
    check_declaration(modality)
    others = [(m.name, m.Options) for m in reg.modalities.values()]
    for option in option_declarations(modality.Options).values():
        check_reserved(option, reserved.settings, reserved.flags)
        check_shared(option, others)
    check_train_defaults(modality.train_defaults, reserved.settings)


def describe(exc: BaseException) -> str:
    """An exception in one line: ``SystemExit: 3``."""
    try:
        text = " ".join(str(exc).split())
    except Exception:  # a plugin's exception whose str() fails
        text = ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
