"""docs/cli.md, generated from the code: the settings schema, the modalities' options and every
command's options. ``make docs`` writes it (``python -m latentgen_cli.reference docs/cli.md``);
a test fails when the committed file differs from what this prints.

Only the built-in plugins are described, whatever else is installed.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

from .options import described, helped

if TYPE_CHECKING:
    from latentgen import Declaration

BUILTIN_PLUGINS = ("image", "audio", "video")

INTRO = """\
# Command-line reference

Generated from the code by `make docs` (`python -m latentgen_cli.reference docs/cli.md`); a
test fails when this file is out of date. Every command is also `python -m latentgen ...`;
`latentgen COMMAND --help` shows the same options.

A training setting has one name everywhere: the flag (`--latent-dim`), the key in a TOML file
given to `--config` and in a run's `config.toml` (`latent_dim`), and the keyword of
`latentgen.train(latent_dim=...)` ([python-api.md](python-api.md)). A setting left out takes
the chosen modality's default where it has one, else the default below. On `--resume` only
the settings marked *resumable* may be given.

Bad input (a missing or empty path, an unreadable file, an unknown modality, a bad option value,
a run directory without a checkpoint) ends a command with exit status 2 and one `error:` line,
with nothing written. Environment: `LATENTGEN_PLUGINS=a,b` loads only the named plugins (empty:
none); `LATENTGEN_DEFAULT_MALLOC=1` keeps glibc's default allocator settings
([benchmarks.md](benchmarks.md)).
"""


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _type(d: Declaration) -> str:
    """A declaration's type as the tables show it: ``integer, at least 1``, ``1|3``."""
    return ", ".join(filter(None, [d.type_name, d.limits]))


def settings_tables() -> str:
    from latentgen import SETTING_PANELS, TrainConfig, declarations, get_registry

    settings = declarations(TrainConfig)
    modalities = sorted(get_registry().modalities.values(), key=lambda m: m.name)
    out = ["## Training settings", ""]
    for panel in SETTING_PANELS:
        out += [f"### {panel}", "", "| flag | TOML key | type | default | help |",
                "|---|---|---|---|---|"]
        for s in settings.values():
            if s.panel != panel:
                continue
            default = s.describe_default()
            own = [f"{m.name}: {s.describe_default(m.train_defaults[s.name])}"
                   for m in modalities if s.name in m.train_defaults]
            if own:
                default += " (" + "; ".join(own) + ")"
            notes = [helped(s.help)]
            if s.unit:
                notes.append(f"Unit: {s.unit}.")
            if s.resumable:
                notes.append("*Resumable.*")
            out.append(f"| `{s.flags}` | `{s.name}` | {_cell(_type(s))} | {_cell(default)} "
                       f"| {_cell(' '.join(notes))} |")
        out.append("")
    return "\n".join(out)


def modality_tables() -> str:
    from latentgen import declarations, get_registry

    out = ["## Modality options", "",
           "Options of the chosen modality: flags of `train`, `prepare` and `bench`, keys of "
           "the `[modality_options]` table in TOML, keywords of `latentgen.train`.", ""]
    for name, modality in sorted(get_registry().modalities.items()):
        out += [f"### {name}", "", modality.description, "",
                "| flag | TOML key | type | default | help |", "|---|---|---|---|---|"]
        for d in declarations(modality.Options).values():
            out.append(f"| `{d.flags}` | `{d.name}` | {_cell(_type(d))} | "
                       f"{_cell(d.describe_default())} | "
                       f"{_cell(described(d, bounds=False))} |")
        out.append("")
    return "\n".join(out)


# typer's click objects, read by their attributes (typer vendors its own click)
def _is_argument(p: Any) -> bool:
    return getattr(p, "param_type_name", "") == "argument"


def _flags(p: Any) -> str:
    flags = p.name if _is_argument(p) else "/".join(p.opts + p.secondary_opts)
    return f"`{flags}`"


def _default(p: Any) -> str:
    if p.required:
        return "required"
    d = p.default
    if d is None or callable(d):
        return ""
    if isinstance(d, bool):
        return "on" if d else "off"
    return _cell(d)


def command_sections(root: Any) -> str:
    from latentgen import TrainConfig, declarations

    settings = declarations(TrainConfig)
    out = ["## Commands", ""]
    for name, cmd in root.commands.items():
        out += [f"### `latentgen {name}`", ""]
        args = " ".join(p.name.upper() for p in cmd.params if _is_argument(p))
        out += [f"    latentgen {name} [OPTIONS] {args}".rstrip(), ""]
        out += [(cmd.help or "").strip(), ""]
        rows = []
        generated = 0
        for p in cmd.params:
            if p.name == "help" or getattr(p, "hidden", False):
                continue
            if p.name and p.name.startswith("modopt__"):
                generated += 1
                continue
            if p.name and p.name.startswith("setting__") and p.default is None:
                generated += 1  # described in the settings tables
                continue
            help_text = getattr(p, "help", "") or ""
            if p.name and p.name.startswith("setting__"):
                help_text = helped(settings[p.name[len("setting__"):]].help)
            rows.append(f"| {_flags(p)} | {_default(p)} | {_cell(help_text)} |")
        if rows:
            out += ["| option | default | help |", "|---|---|---|", *rows, ""]
        if generated:
            what = ("every [training setting](#training-settings) and "
                    if name == "train" else "")
            out += [f"Also {what}the [modality options](#modality-options).", ""]
    return "\n".join(out)


def render() -> str:
    """The whole of docs/cli.md."""
    from latentgen import only_plugins

    with only_plugins(BUILTIN_PLUGINS):
        from .app import build_command

        root = build_command()
        parts = [INTRO, settings_tables(), modality_tables(), command_sections(root)]
    return "\n".join(p.rstrip() + "\n" for p in parts)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    text = render()
    if args:
        with open(args[0], "w", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)


if __name__ == "__main__":
    main()
