"""Plugin discovery and the registry of modalities, priors, samplers and observers.

Plugins are found once, lazily, through the ``latentgen`` entry-point group (built-in modalities
use it too); ``LATENTGEN_PLUGINS=name1,name2`` restricts which entry points load (empty: none).
The rules:

* Built-ins first, never replaced. The core's own plugin (``latentgen.plugins.builtin``) and
  the entry points of the latentgen distribution register before any other, whatever order
  the entry points are found in; then third-party entry points by name, then in-process
  plugins (``register_plugin``) in the order they were added. A name is never taken twice, so
  what a built-in registers stays the built-in's.
* A plugin is registered whole or not at all. One that fails to import or to register, whose
  hook raises or returns something, or that registers something refused (a name already
  taken, a malformed modality, an option that clashes) keeps nothing it registered and is
  listed with a one-line error by ``latentgen plugins``. Refusals count even when the plugin
  catches them.
* Isolation: every exception a plugin raises counts, SystemExit and other BaseExceptions
  included, so that a broken plugin never takes a command down; only KeyboardInterrupt
  passes, so Ctrl-C still stops the program. While plugins load, what they print goes to
  stderr (stdout may carry JSON) and they read no input (a plugin waiting on stdin would hang
  every command).
* Checked on the way in: what latentgen reads of a registration later (a modality's
  declarations and options, a factory being callable) is checked when it registers. Options
  are shared by modalities only when name, flag and type agree, and may not take what the
  layers above declare with ``reserve`` (the training settings' names, the CLI's flags).
"""

from __future__ import annotations

import contextlib
import importlib.metadata as metadata
import io
import os
import re
import sys
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pluggy

from latentgen.plugins import hookspecs
from latentgen.plugins.admission import SINGULAR, Refused, Reserved, checked, describe
from latentgen.plugins.declare import Declaration
from latentgen.plugins.modality import Modality
from latentgen.plugins.registered import PluginInfo, Registry

__all__ = ["ENV_VAR", "PluginInfo", "Registry", "get_registry",
           "only_plugins", "owner_of", "register_plugin", "reserve", "reserve_declared",
           "reset", "unregister_plugin"]

ENV_VAR = "LATENTGEN_PLUGINS"
GROUP = "latentgen"
CORE_PLUGIN = "latentgen"
#: hook -> the kind it registers, in the order a plugin's hooks run (modalities last: they
#: are checked the most)
HOOKS = {"register_priors": "priors", "register_samplers": "samplers",
         "register_observers": "observers", "register_extractors": "extractors",
         "register_modalities": "modalities"}
#: the exception a plugin may raise through latentgen: the user's Ctrl-C
PASS_THROUGH = (KeyboardInterrupt,)


@dataclass
class _Candidate:
    """A plugin to load: from an entry point, the core or ``register_plugin``."""

    name: str
    version: str
    load: Callable[[], object]
    builtin: bool
    #: where it comes from, as `latentgen plugins` names a rival: the entry point's module
    origin: str
    #: the same entry point found twice (e.g. an editable install) is one plugin; another
    #: plugin of that name is a rival
    identity: object
    in_process: bool = False


_registry: Registry | None = None
_extra: list[tuple[str, object]] = []
_reserved = Reserved()


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


def reserve(settings: Mapping[str, Callable[[Any], object]], flags: Iterable[str]) -> None:
    """Declare what no modality may take: training settings (name -> check of a value, raising
    UserError), which ``train_defaults`` may set and no option may be named like, and the
    flags of the commands that make a flag of every option. Declarations add up (the training
    layer declares the settings, the CLI its flags too); when one adds something, the registry
    is built anew."""
    global _reserved
    new_names = set(settings) - set(_reserved.settings)
    new_flags = set(flags) - _reserved.flags
    if not new_names and not new_flags:
        return
    _reserved = Reserved({**settings, **_reserved.settings}, _reserved.flags | new_flags)
    reset()


def reserve_declared(settings: Mapping[str, Declaration], flags: Iterable[str] = ()) -> None:
    """``reserve`` for declared settings (``latentgen.declarations(TrainConfig)``): each one's
    check and its flags, and further ``flags`` (a command's own)."""
    reserve({name: s.check for name, s in settings.items()},
            {*flags, *(flag for s in settings.values() for flag in s.all_flags)})


@contextlib.contextmanager
def only_plugins(names: Iterable[str]) -> Iterator[None]:
    """Within the block, the registry holds only the plugins ``names`` (as
    ``LATENTGEN_PLUGINS`` sets it; e.g. the built-in ones, to describe them alone)."""
    before = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = ",".join(names)
    reset()
    try:
        yield
    finally:
        if before is None:
            del os.environ[ENV_VAR]
        else:
            os.environ[ENV_VAR] = before
        reset()


def _allowed() -> set[str] | None:
    raw = os.environ.get(ENV_VAR)
    if raw is None:
        return None
    return {part.strip() for part in raw.split(",") if part.strip()}


def _build() -> Registry:
    with _plugins_speaking_to_stderr():
        return _build_registry()


@contextlib.contextmanager
def _plugins_speaking_to_stderr() -> Iterator[None]:
    """stdout to stderr and an empty stdin while plugin code runs."""
    stdin = sys.stdin
    sys.stdin = io.StringIO()
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        sys.stdin = stdin


def _build_registry() -> Registry:
    reg = Registry()
    pm = pluggy.PluginManager(GROUP)
    pm.add_hookspecs(hookspecs)
    loaded: dict[str, object] = {}  # plugin name -> identity
    for candidate in _candidates():
        if candidate.name in loaded and loaded[candidate.name] == candidate.identity:
            continue  # the same entry point found twice
        info = PluginInfo(candidate.name, candidate.version)
        if candidate.name in loaded and not _stands_in(reg, pm, candidate):
            _rival(reg, info, candidate)
            continue
        loaded[candidate.name] = candidate.identity
        reg.plugins.pop(info.name, None)
        reg.plugins[info.name] = info
        if candidate.builtin:
            reg.builtin.add(info.name)
        _load(pm, info, candidate)
    impls: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for hook in HOOKS:
        for impl in getattr(pm.hook, hook).get_hookimpls():
            impls[impl.plugin_name].append((hook, impl))
    for info in list(reg.plugins.values()):  # in the order of _candidates
        if info.error is None:
            _run_hooks(reg, info, impls[info.name])
    return reg


def _candidates() -> list[_Candidate]:
    """Every plugin to load, built-ins first (the core's own, then latentgen's entry points),
    then third-party entry points by name, then in-process plugins as they were added."""
    from latentgen.plugins import builtin

    allowed = _allowed()
    found = [_Candidate(ep.name, ep.dist.version if ep.dist is not None else "?", ep.load,
                        _is_builtin(ep), ep.value, ep.value)
             for ep in metadata.entry_points(group=GROUP)
             if allowed is None or ep.name in allowed]
    found.sort(key=lambda c: (not c.builtin, c.name, c.origin))
    extra = [_Candidate(name, getattr(plugin, "__version__", "in-process"),
                        _given(plugin), False, "in-process", id(plugin), True)
             for name, plugin in _extra]
    core = _Candidate(CORE_PLUGIN, _version("latentgen"), _given(builtin), True,
                      builtin.__name__, builtin.__name__)
    return [core, *found, *extra]


def _given(plugin: object) -> Callable[[], object]:
    return lambda: plugin


def _is_builtin(ep: metadata.EntryPoint) -> bool:
    name = ep.dist.name if ep.dist is not None else ""
    return re.sub(r"[-_.]+", "-", name).lower() == "latentgen"


def _stands_in(reg: Registry, pm: pluggy.PluginManager, candidate: _Candidate) -> bool:
    """Whether an in-process plugin takes the name of an installed third-party one that failed
    to load (a plugin's own tests register it in-process when the installed copy is broken)."""
    held = reg.plugins[candidate.name]
    return (candidate.in_process and held.name not in reg.builtin and held.error is not None
            and not pm.has_plugin(held.name))


def _rival(reg: Registry, info: PluginInfo, candidate: _Candidate) -> None:
    """List (not load) a plugin named like one already loaded, under its name and origin."""
    holder = "built into latentgen" if candidate.name in reg.builtin else "taken"
    info.name = f"{candidate.name} ({candidate.origin})"
    info.error = f"plugin name '{candidate.name}' is {holder}; rename it"
    reg.plugins.setdefault(info.name, info)


def _load(pm: pluggy.PluginManager, info: PluginInfo, candidate: _Candidate) -> None:
    try:
        plugin = candidate.load()
    except PASS_THROUGH:
        raise
    except BaseException as exc:  # SystemExit too: a plugin never ends the program
        info.error = f"import failed: {describe(exc)}"
        return
    try:
        pm.register(plugin, name=info.name)
    except PASS_THROUGH:
        raise
    except BaseException as exc:
        info.error = f"register failed: {describe(exc)}"


def _run_hooks(reg: Registry, info: PluginInfo, impls: list[tuple[str, Any]]) -> None:
    """Run one plugin's hooks; on any failure or refusal, drop what it registered."""
    for hook, impl in impls:
        register = _registrar(reg, info, HOOKS[hook])
        try:
            # a hook may leave out the argument (pluggy allows it)
            returned = impl.function(**({"register": register} if "register" in impl.argnames
                                        else {}))
        except PASS_THROUGH:
            raise
        except BaseException as exc:
            returned = None
            info.error = info.error or f"{hook} failed: {describe(exc)}"
        if returned is not None:
            info.error = info.error or (f"{hook} returned a {type(returned).__name__}; a "
                                        "hook returns nothing and calls register(...) for "
                                        "each one")
        if info.error:
            _drop(reg, info)
            return


def _registrar(reg: Registry, info: PluginInfo, kind: str) -> Callable[..., None]:
    def register(*args: Any) -> None:
        try:
            name, value = checked(reg, kind, args, _reserved)
            if isinstance(value, Modality):
                info.descriptions[name] = value.description
        except PASS_THROUGH:
            raise
        except BaseException as exc:
            # recorded here, so that a plugin catching the error is refused all the same
            info.error = info.error or (str(exc) if isinstance(exc, Refused)
                                        else f"register() failed: {describe(exc)}")
            raise
        getattr(reg, kind)[name] = value
        reg.owners[f"{kind}:{name}"] = info.name
        getattr(info, kind).append(name)

    return register


def _drop(reg: Registry, info: PluginInfo) -> None:
    """Remove what a plugin registered before it failed: all of it or nothing."""
    for kind in SINGULAR:
        for name in getattr(info, kind):
            getattr(reg, kind).pop(name, None)
            reg.owners.pop(f"{kind}:{name}", None)
        getattr(info, kind).clear()
    info.descriptions.clear()


def owner_of(modality: str) -> PluginInfo:
    reg = get_registry()
    return reg.plugins[reg.owners[f"modalities:{modality}"]]


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "unknown"
