"""From what a user gives to the config a run stores: a TOML file or a base config, explicit
settings, the modality's training defaults, then the schema's defaults, in that order of
precedence (the first that sets a value wins)."""

from __future__ import annotations

import copy
import functools
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from latentgen.assembly.config import (
    RESUMABLE,
    SETTINGS,
    TrainConfig,
    read_toml,
    setting_flags,
)
from latentgen.assembly.rundir import RunDir
from latentgen.errors import UserError
from latentgen.runtime.files import check_utf8_path

#: a base for ``resolve_config``: a TOML file, a mapping of settings or a ``TrainConfig``
ConfigSource = TrainConfig | Mapping[str, Any] | str | Path | None


def resolve_config(config: ConfigSource = None, /, **settings: Any) -> TrainConfig:
    """The resolved config of a new run, exactly as ``latentgen train`` resolves it.

    ``config`` is a TOML file (as ``--config`` takes), a mapping of settings or a
    ``TrainConfig`` (only the settings it was given count). ``settings`` are training settings
    (``epochs=3``), modality options (``image_size=32``) or ``modality_options={...}``; they
    win over ``config``. The modality's ``train_defaults`` fill what neither sets. Nothing
    passed in is changed.
    """
    values, options, source = _base(config)
    _paths_as_text(values)
    settings = dict(settings)
    _paths_as_text(settings)
    for key, value in settings.items():
        if key == "modality_options":
            options.update(_table(value, "modality_options"))
        elif key in SETTINGS:
            # checked here, so that a bad flag is named as a flag, not as the file's key
            values[key] = SETTINGS[key].check(copy.deepcopy(value), "settings")
        else:
            options[key] = copy.deepcopy(value)
    from latentgen.data.prepared import is_prepared, prepared_options
    from latentgen.plugins.registry import get_registry

    reserve_settings()

    name = values.get("modality")
    if not name and is_prepared(values.get("data")):
        name = values["modality"] = prepared_options(values["data"])[0]
    modality = get_registry().modality(name or SETTINGS["modality"].default)
    _check_options(options, modality, settings)
    given = dict(options)
    if is_prepared(values.get("data")):  # a prepared file's options count as given
        given = {**prepared_options(values["data"])[1], **given}
    defaults = modality.train_defaults_for(given)
    if not is_prepared(values.get("data")):  # a prepared file holds examples, not the source
        defaults = {**defaults, **modality.data_defaults(given, values.get("data"))}
    resolved = {**defaults, **values, "modality_options": options}
    cfg = TrainConfig.from_dict(resolved, source=source)
    cfg.validate()
    return cfg


@functools.cache
def reserve_settings() -> None:
    """Tell the plugin registry, once, the training settings: no modality option may be named
    like one or take its flag, and ``train_defaults`` may set only settings, to values they
    take. (The plugins layer cannot import the settings; they are declared to it.)"""
    from latentgen.plugins.registry import reserve

    reserve({name: functools.partial(s.check, source="settings")
             for name, s in SETTINGS.items()}, setting_flags())


def _base(config: ConfigSource) -> tuple[dict[str, Any], dict[str, Any], str]:
    if config is None:
        return {}, {}, "settings"
    if isinstance(config, (str, Path)):
        values = dict(read_toml(Path(config)))
        source = str(config)
    elif isinstance(config, TrainConfig):
        values = {k: copy.deepcopy(getattr(config, k)) for k in config.given}
        source = "config"
    elif isinstance(config, Mapping):
        values = copy.deepcopy(dict(config))
        source = "config"
    else:
        raise TypeError(f"config must be a TOML path, a mapping or a TrainConfig, not "
                        f"{type(config).__name__}")
    options = _table(values.pop("modality_options", {}), f"{source}: modality_options")
    return values, dict(options), source


#: settings that name files or folders
PATH_SETTINGS = ("data", "test_data", "negative_data", "mask")


def _paths_as_text(values: dict[str, Any]) -> None:
    """``Path`` values of path settings as text (the config stores text); anything else that is
    not text is refused here, before it reaches a file test."""
    for key in PATH_SETTINGS:
        value = values.get(key)
        if isinstance(value, os.PathLike):
            values[key] = value = os.fspath(value)
        elif value is not None and not isinstance(value, str):
            raise UserError(f"{key} must be a path (a str or pathlib.Path), not "
                            f"{type(value).__name__}; save tensors as .npy to train on them")
        if isinstance(value, str):
            check_utf8_path(value, SETTINGS[key].flag)


def _table(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise UserError(f"{what} must be a table ([modality_options]) of option = value")
    return copy.deepcopy(dict(value))


def _check_options(options: dict[str, Any], modality: Any, settings: dict[str, Any]) -> None:
    """A keyword that is neither a setting nor an option of the modality names both lists."""
    import dataclasses

    own = {f.name for f in dataclasses.fields(modality.Options)}
    stray = sorted(k for k in settings if k not in SETTINGS and k != "modality_options"
                   and k not in own)
    if stray:
        raise UserError(f"unknown setting(s) {', '.join(stray)}: not training settings "
                        f"({', '.join(SETTINGS)}) nor options of modality '{modality.name}' "
                        f"({', '.join(sorted(own))})")


def default_out(config: TrainConfig) -> Path:
    """Where a run goes when no folder is given: ``runs/MODALITY-YYYYmmdd-HHMMSS``."""
    from latentgen.runtime.distributed import environment_world

    if environment_world()[1] > 1:  # a time-stamped name could differ between processes
        raise UserError("under torchrun give `out`: every process must name the same run "
                        "directory")
    base = Path("runs") / f"{config.modality}-{time.strftime('%Y%m%d-%H%M%S')}"
    out, n = base, 1
    while out.exists():  # two runs started in the same second get their own folders
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def resume_config(out: str | Path, config: ConfigSource = None, **changes: Any) -> TrainConfig:
    """The stored config of the run in ``out``, with the ``RESUMABLE`` settings in
    ``changes`` (those not None) applied. Anything else is refused: a resumed run continues
    what it learns as it was configured."""
    options = dict(changes.pop("modality_options", None) or {})
    changed = sorted(k for k, v in changes.items() if k not in RESUMABLE and v is not None)
    changed += sorted(options)
    if changed or config is not None:
        names = ", ".join(f"`{k}`" for k in changed) or "`config`"
        allowed = ", ".join(f"`{k}`" for k in RESUMABLE)
        raise UserError(f"`resume` continues the stored configuration; {names} cannot change "
                        f"(only {allowed} can)")
    run = RunDir(out)
    if not run.last_checkpoint.exists():
        raise UserError(f"`resume`: {out} holds no checkpoints/last.pt; give the `out` folder "
                        "of an earlier run, or drop `resume` to start a new one")
    stored = run.read_config()
    state = run.load_checkpoint()
    done = int(state["epoch"])
    run.check_unedited(stored, state, "`resume`: ")
    del state
    epochs = changes.get("epochs")
    if epochs is not None and epochs < done:
        raise UserError(f"`resume` with `epochs` {epochs}: the run in {out} already has "
                        f"{done} epochs; give a larger total")
    values = stored.to_dict()
    values.update({k: v for k, v in changes.items() if v is not None})
    # a step budget belongs to one invocation (a smoke test, one slot of a job schedule): the
    # stored one would stop a resumed run before it starts
    values["max_steps"] = changes.get("max_steps")
    cfg = TrainConfig.from_dict(values, source=str(run.config_path))
    cfg.validate()
    return cfg

