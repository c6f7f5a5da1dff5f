"""Plugin discovery and the registry of modalities, priors and samplers.

Plugins are found once, lazily, through the ``latentgen`` entry-point group (built-in modalities
use it too). A plugin that fails to import or to register is recorded and skipped, never fatal.
``LATENTGEN_PLUGINS=name1,name2`` restricts which entry points load (empty: none).
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy

from latentgen.errors import UserError
from latentgen.plugins import hookspecs
from latentgen.plugins.modality import Modality

ENV_VAR = "LATENTGEN_PLUGINS"
GROUP = "latentgen"
CORE_PLUGIN = "latentgen"
#: observers the trainer itself provides (``latentgen.training.observers``); plugins may not
#: take these names
BUILTIN_OBSERVERS = ("tensorboard",)


@dataclass
class PluginInfo:
    name: str
    version: str
    modalities: list[str] = field(default_factory=list)
    priors: list[str] = field(default_factory=list)
    samplers: list[str] = field(default_factory=list)
    observers: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class Registry:
    modalities: dict[str, Modality] = field(default_factory=dict)
    priors: dict[str, Callable[..., Any]] = field(default_factory=dict)
    samplers: dict[str, Callable[..., Any]] = field(default_factory=dict)
    observers: dict[str, Callable[..., Any]] = field(default_factory=dict)
    plugins: dict[str, PluginInfo] = field(default_factory=dict)
    #: which plugin registered each modality
    owners: dict[str, str] = field(default_factory=dict)

    def modality(self, name: str) -> Modality:
        if name not in self.modalities:
            known = ", ".join(sorted(self.modalities)) or "none (see `latentgen plugins`)"
            raise UserError(f"unknown modality '{name}'; installed modalities: {known}")
        return self.modalities[name]

    def prior(self, name: str) -> Callable[..., Any]:
        if name not in self.priors:
            raise UserError(f"unknown prior '{name}'; available: {', '.join(sorted(self.priors))}")
        return self.priors[name]

    def sampler(self, name: str) -> Callable[..., Any]:
        if name not in self.samplers:
            raise UserError(f"unknown sampler '{name}'; available: "
                            f"{', '.join(sorted(self.samplers))}")
        return self.samplers[name]

    def observer(self, name: str) -> Callable[..., Any]:
        if name not in self.observers:
            known = ", ".join(sorted([*BUILTIN_OBSERVERS, *self.observers]))
            raise UserError(f"unknown observer '{name}'; available: {known}")
        return self.observers[name]


_registry: Registry | None = None
_extra: list[tuple[str, object]] = []


def get_registry() -> Registry:
    """The registry, built on first use."""
    global _registry
    if _registry is None:
        _registry = _build()
    return _registry


def register_plugin(plugin: object, name: str) -> None:
    """Add an in-process plugin (tests, notebooks) and rebuild the registry."""
    _extra.append((name, plugin))
    reset()


def unregister_plugin(name: str) -> None:
    _extra[:] = [(n, p) for n, p in _extra if n != name]
    reset()


def reset() -> None:
    global _registry
    _registry = None


def _allowed() -> set[str] | None:
    raw = os.environ.get(ENV_VAR)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _build() -> Registry:
    from latentgen.plugins import builtin as default_plugins

    reg = Registry()
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    pm.register(default_plugins, name=CORE_PLUGIN)
    reg.plugins[CORE_PLUGIN] = PluginInfo(CORE_PLUGIN, _version("latentgen"))

    allowed = _allowed()
    for ep in metadata.entry_points(group=GROUP):
        if allowed is not None and ep.name not in allowed:
            continue
        dist = ep.dist.version if ep.dist is not None else "?"
        info = reg.plugins.setdefault(ep.name, PluginInfo(ep.name, dist))
        if info.error is None and pm.has_plugin(ep.name):
            continue  # the same entry point seen twice (e.g. an editable install)
        try:
            pm.register(ep.load(), name=ep.name)
        except Exception as exc:
            info.error = f"import failed: {type(exc).__name__}: {exc}"
    for name, plugin in _extra:
        reg.plugins[name] = PluginInfo(name, getattr(plugin, "__version__", "in-process"))
        try:
            pm.register(plugin, name=name)
        except Exception as exc:
            reg.plugins[name].error = f"register failed: {type(exc).__name__}: {exc}"

    for hook, kind in [("register_priors", "priors"), ("register_samplers", "samplers"),
                       ("register_observers", "observers"),
                       ("register_modalities", "modalities")]:
        for impl in getattr(pm.hook, hook).get_hookimpls():
            info = reg.plugins[impl.plugin_name]
            if info.error:
                continue
            try:
                impl.function(register=_registrar(reg, info, kind))
            except Exception as exc:
                info.error = f"{hook} failed: {type(exc).__name__}: {exc}"
                _drop(reg, info)
    return reg


def _registrar(reg: Registry, info: PluginInfo, kind: str) -> Callable[..., None]:
    def register(*args: Any) -> None:
        if kind == "modalities":
            (modality,) = args
            if not isinstance(modality, Modality):
                raise TypeError(f"register() takes a latentgen.Modality, got {type(modality)}")
            name = modality.name
            table: dict[str, Any] = reg.modalities
            value: Any = modality
        else:
            name, value = args
            table = getattr(reg, kind)
        if not isinstance(name, str) or not name.isidentifier():
            raise ValueError(f"invalid {kind[:-1]} name {name!r}")
        if kind == "observers" and name in BUILTIN_OBSERVERS:
            raise ValueError(f"observer '{name}' is built into latentgen")
        if name in table:
            owner = reg.owners.get(f"{kind}:{name}", "?")
            raise ValueError(f"{kind[:-1]} '{name}' is already registered by plugin '{owner}'")
        table[name] = value
        reg.owners[f"{kind}:{name}"] = info.name
        getattr(info, kind).append(name)

    return register


def _drop(reg: Registry, info: PluginInfo) -> None:
    """Remove what a plugin registered before its hook failed: all of it or nothing."""
    for kind in ("modalities", "priors", "samplers", "observers"):
        for name in getattr(info, kind):
            getattr(reg, kind).pop(name, None)
            reg.owners.pop(f"{kind}:{name}", None)
        getattr(info, kind).clear()


def owner_of(modality: str) -> PluginInfo:
    reg = get_registry()
    return reg.plugins[reg.owners[f"modalities:{modality}"]]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"
