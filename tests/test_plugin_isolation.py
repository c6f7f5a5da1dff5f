"""Plugins cannot replace built-ins, take the CLI down or clash with its options. The CLI cases
run ``python -m latentgen`` with fake plugins installed as pip would (a module and a
``*.dist-info`` folder of ``[latentgen]`` entry points on PYTHONPATH)."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from latentgen import Modality, hookimpl, option
from latentgen.plugins import registry as plugins
from tests.conftest import TINY_TRAIN

#: a third-party modality named like the built-in one; it fails if it is ever used
IMPOSTOR = """
from latentgen import hookimpl
from latentgen_image.modality import ImageModality

class Impostor(ImageModality):
    description = "an impostor"

    def build_generator(self, latent_dim, opts):
        raise RuntimeError("the impostor trained")

@hookimpl
def register_modalities(register):
    register(Impostor())
"""
TINY = ["--image-size", "16", "--channels", "1", "--width", "4", "--latent-dim", "2",
        "--batch-size", "8", "--langevin-steps", "1", "--device", "cpu"]


def install(root: Path, dist: str, entry_points: dict[str, str], modules: dict[str, str]
            ) -> None:
    """Install ``modules`` (name -> source) in ``root`` as distribution ``dist`` declaring
    ``entry_points`` (name -> module) in the ``latentgen`` group."""
    for name, source in modules.items():
        (root / f"{name}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[latentgen]\n" + "".join(f"{k} = {v}\n" for k, v in entry_points.items()))


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """A folder holding a plugin that registers `image` and one that exits at import."""
    root = tmp_path_factory.mktemp("site")
    install(root, "latentgen-impostor", {"impostor": "impostor_plugin"},
            {"impostor_plugin": IMPOSTOR})
    install(root, "latentgen-exits", {"exits": "exiting_plugin"},
            {"exiting_plugin": "import sys\nsys.exit('this plugin exits at import')\n"})
    return root


def latentgen(site: Path, *args: object, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != plugins.ENV_VAR}
    env.update(PYTHONPATH=str(site), COLUMNS="200")
    return subprocess.run([sys.executable, "-m", "latentgen", *map(str, args)], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=300)


# -- the CLI with broken and rival plugins installed ---------------------------------------
def test_plugins_json_lists_the_refused_and_the_broken_plugin(installed, tmp_path):
    res = latentgen(installed, "plugins", "--json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    info = {p["name"]: p for p in json.loads(res.stdout)}
    assert info["image"]["modalities"] == ["image"] and info["image"]["error"] is None
    assert info["impostor"]["modalities"] == []
    assert info["impostor"]["error"] == ("modality 'image' is built into latentgen (already "
                                         "registered by plugin 'image'); rename it")
    assert "SystemExit: this plugin exits at import" in info["exits"]["error"]


def test_plugins_table_shows_the_errors(installed, tmp_path):
    res = latentgen(installed, "plugins", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "impostor: modality 'image' is built into latentgen" in res.stdout
    assert "exits: import failed: SystemExit: this plugin exits at import" in res.stdout
    assert "an impostor" not in res.stdout


def test_train_uses_the_built_in_modality_despite_broken_plugins(installed, tmp_path):
    res = latentgen(installed, "train", "--modality", "image", "--epochs", "1", "--max-steps",
                    "2", "--out", tmp_path / "run", *TINY, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "run" / "checkpoints" / "last.pt").exists()


def test_a_plugin_that_prints_or_reads_stdin_cannot_break_json_or_hang(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    install(site, "latentgen-chatty", {"chatty": "chatty_plugin"},
            {"chatty_plugin": "print('HELLO FROM A PLUGIN')\nanswer = input()\n"})
    env = {k: v for k, v in os.environ.items() if k != plugins.ENV_VAR}
    env.update(PYTHONPATH=str(site))
    proc = subprocess.Popen([sys.executable, "-m", "latentgen", "plugins", "--json"],
                            cwd=tmp_path, env=env, text=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        code = proc.wait(timeout=120)  # stdin stays open: a plugin reading it would hang
    finally:
        proc.kill()
    out, err = proc.stdout.read(), proc.stderr.read()  # type: ignore[union-attr]
    assert code == 0, err
    info = {p["name"]: p for p in json.loads(out)}  # stdout is JSON only
    assert "EOFError" in info["chatty"]["error"]
    assert "HELLO FROM A PLUGIN" in err


@pytest.mark.parametrize("args", [["--help"], ["train", "--help"]])
def test_help_works_despite_broken_plugins(installed, tmp_path, args):
    res = latentgen(installed, *args, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "train" in res.stdout


# -- order: built-ins first, then third-party plugins by entry-point name -----------------
SHARED = """
from latentgen import hookimpl
from latentgen_image.modality import ImageModality

class Shared(ImageModality):
    name = "shared"

@hookimpl
def register_modalities(register):
    register(Shared())
"""


def test_third_party_plugins_register_in_entry_point_name_order(tmp_path, monkeypatch):
    for name in ("alpha", "zeta"):  # zeta is found first: its folder ends up first on sys.path
        (tmp_path / name).mkdir()
        install(tmp_path / name, f"latentgen-{name}", {name: f"{name}_plugin"},
                {f"{name}_plugin": SHARED})
        monkeypatch.syspath_prepend(str(tmp_path / name))
    try:
        reg = plugins.get_registry()
        assert reg.owners["modalities:shared"] == "alpha"
        assert reg.plugins["zeta"].error == ("modality 'shared' is already registered by "
                                             "plugin 'alpha'; rename it")
    finally:
        for name in ("alpha", "zeta"):
            sys.modules.pop(f"{name}_plugin", None)


# -- in-process plugins: what a registration may be ---------------------------------------
class _Stub(Modality):
    """A modality whose methods are never called."""

    name = "stub"
    Options = dataclasses.make_dataclass("StubOptions", [])

    def build_generator(self, latent_dim: int, opts: Any) -> Any: ...
    def open_dataset(self, source: Any, opts: Any) -> Any: ...
    def write_examples(self, *args: Any, **kwargs: Any) -> Any: ...
    def write_grid(self, *args: Any, **kwargs: Any) -> Any: ...
    def read_examples(self, *args: Any, **kwargs: Any) -> Any: ...


def stub(**attributes: Any) -> Modality:
    """A ``_Stub`` with ``attributes`` (``fields``: the Options dataclass's fields)."""
    fields = attributes.pop("fields", None)
    if fields is not None:
        attributes["Options"] = dataclasses.make_dataclass("Options", fields)
    return type("Stub", (_Stub,), attributes)()


class _Plugin:
    """An in-process plugin making the ``calls`` (kind, args) in its hooks; it raises
    ``raises`` from every hook, and its modality hook returns ``returns``."""

    def __init__(self, *calls: tuple[str, tuple[Any, ...]], returns: Any = None,
                 raises: BaseException | None = None) -> None:
        self.calls, self.returns, self.raises = calls, returns, raises

    def _hook(self, kind: str, register: Any) -> Any:
        for k, args in self.calls:
            if k == kind:
                register(*args)
        if self.raises is not None:
            raise self.raises
        return self.returns if kind == "modality" else None

    @hookimpl
    def register_modalities(self, register: Any) -> Any:
        return self._hook("modality", register)

    @hookimpl
    def register_priors(self, register: Any) -> Any:
        return self._hook("prior", register)


def refusal(plugin: _Plugin, cli: Any) -> str:
    """The error ``plugin`` is listed with, as the CLI builds the registry; checks that the
    plugin left nothing registered and that `plugins` and `train --help` still work."""
    plugins.register_plugin(plugin, name="fake")
    try:
        for args in (["train", "--help"], ["plugins", "--json"]):
            res = cli(*args)
            assert res.code == 0, res
        info = {p["name"]: p for p in json.loads(res.out)}["fake"]
        reg = plugins.get_registry()
        assert not info["modalities"] and not info["priors"] and "stub" not in reg.modalities
        assert info["error"] and "\n" not in info["error"]
        return info["error"]
    finally:
        plugins.unregister_plugin("fake")


class _Odd(BaseException):
    pass


@pytest.mark.parametrize("exc", [SystemExit(4), _Odd("odd"), GeneratorExit("close")],
                         ids=["SystemExit", "BaseException", "GeneratorExit"])
def test_any_exception_of_a_hook_is_isolated(cli, exc):
    error = refusal(_Plugin(("prior", ("mine", dict)), raises=exc), cli)
    assert f"register_priors failed: {type(exc).__name__}: {exc}" == error


def test_ctrl_c_in_a_plugin_still_stops_the_program():
    plugins.register_plugin(_Plugin(raises=KeyboardInterrupt()), name="fake")
    try:
        with pytest.raises(KeyboardInterrupt):
            plugins.get_registry()
    finally:
        plugins.unregister_plugin("fake")


def test_a_hook_that_returns_its_registrations_is_told_to_call_register(cli):
    error = refusal(_Plugin(returns=[stub()]), cli)
    assert "register_modalities returned a list" in error and "register(" in error


def test_a_plugin_refused_for_one_registration_keeps_nothing(cli):
    error = refusal(_Plugin(("prior", ("mine", dict)), ("modality", (stub(name="image"),))),
                    cli)
    assert "modality 'image' is built into latentgen" in error
    assert "mine" not in plugins.get_registry().priors


class _Swallows(_Plugin):
    """Catches the refusal of its registration and carries on."""

    def _hook(self, kind: str, register: Any) -> Any:
        try:
            register("normal", dict)
        except ValueError:
            pass


def test_a_refusal_counts_even_when_the_plugin_catches_it(cli):
    assert "prior 'normal' is built into latentgen" in refusal(_Swallows(), cli)


class _Unprintable:
    @property
    def description(self) -> str:
        raise RuntimeError("no description today")


@pytest.mark.parametrize(("call", "expected"), [
    (("modality", ("image",)), "register() takes one latentgen.Modality, got str"),
    (("modality", (stub(name="two words"),)), "invalid modality name 'two words'"),
    (("modality", (stub(name=3),)), "invalid modality name 3"),
    (("prior", ("normal", dict)), "prior 'normal' is built into latentgen"),
    (("prior", ("mine", 3)), "prior 'mine' must be callable, got int"),
    (("prior", ("mine",)), "register() takes a name and a factory"),
    (("modality", (stub(Options=dict),)), "modality 'stub': Options must be a dataclass"),
    (("modality", (stub(fields=[("size", "list[int]", option((), "h"))]),)),
     "modality 'stub': option --size has type list[int]; use int, float, str or bool"),
    (("modality", (stub(fields=[("size", "int", option("big", "h"))]),)),
     "modality 'stub': option --size defaults to 'big', which is not int"),
    (("modality", (stub(fields=[("size", "int", option(1, "h", flag="size"))]),)),
     "modality 'stub': option size has flag 'size'; flags are --kebab-case names"),
    (("modality", (stub(fields=[("size", "int")]),)),
     "modality 'stub': option --size has no default"),
    (("modality", (stub(fields=[("a", "int", option(1, "h", flag="--b")),
                                ("b", "int", option(1, "h"))]),)),
     "modality 'stub': options a and b both take --b"),
    (("modality", (stub(description=3),)), "modality 'stub': description must be a str"),
    (("modality", (stub(formats="mp4"),)), "modality 'stub': formats must be a tuple of str"),
    (("modality", (stub(train_defaults={"epoch": 3}),)),
     "modality 'stub': train_defaults names 'epoch', which is not a training setting"),
    (("modality", (stub(train_defaults={"modality": "video"}),)),
     "modality 'stub': train_defaults sets 'modality', which a modality cannot choose"),
    (("modality", (stub(fields=[("rate", "float", option(float("nan"), "h"))]),)),
     "modality 'stub': option --rate defaults to nan, which is not float"),
    (("modality", (stub(train_defaults={"step_size": -1.0}),)),
     "modality 'stub': train_defaults: `step_size` must be positive, got -1.0"),
    (("modality", (stub(fields=[("size", "int", option(0, "h", minimum=1))]),)),
     "modality 'stub': option --size defaults to 0, outside its declaration (`size` must be "
     "at least 1, got 0)"),
    (("modality", (stub(fields=[("size", "Literal[1, 3]", option(2, "h"))]),)),
     "modality 'stub': option --size defaults to 2, outside its declaration (`size` must be "
     "1 or 3, got 2)"),
    (("modality", (stub(fields=[("size", "int", option(1, "h", choices=(1, "a")))]),)),
     "modality 'stub': option --size has choices 1 or a, not all int"),
    (("modality", (stub(fields=[("size", "str", option("a", "h", minimum=1))]),)),
     "modality 'stub': option --size has bounds, but is str, not a number"),
    (("modality", (type("Stub", (_Unprintable, _Stub), {})(),)),
     "RuntimeError: no description today"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_a_bad_registration_is_refused_at_registration(cli, call, expected):
    assert expected in refusal(_Plugin(call), cli)


# -- options: no clash with the core's flags, shared only with the same type ---------------
@pytest.mark.parametrize(("field", "expected"), [
    (("epochs", "int", option(1, "h")), "option --epochs clashes with the training setting "
                                         "'epochs'; rename it"),
    (("out_dir", "str", option("x", "h", flag="--out")), "option --out clashes with the flag "
                                                          "--out of latentgen's commands"),
    (("persistent_chains", "bool", option(False, "h")), "option --persistent-chains clashes "
                                                         "with the flag --persistent-chains"),
    (("observer", "str", option("x", "h")), "option --observer clashes with the flag "
                                             "--observer"),
    (("quiet", "bool", option(False, "h", flag="--json")), "clashes with the flag --json"),
    (("width", "float", option(1.0, "h")), "option width (--width, float) clashes with option "
                                            "width (--width, int) of modality 'audio'"),
    (("size", "int", option(1, "h", flag="--width")), "option size (--width, int) clashes"),
])
def test_an_option_that_clashes_is_refused(cli, field, expected):
    assert expected in refusal(_Plugin(("modality", (stub(fields=[field]),))), cli)


def test_the_core_options_work_beside_a_refused_modality(cli, tiny_data, tmp_path):
    plugins.register_plugin(_Plugin(("modality", (stub(fields=[
        ("epochs", "int", option(1, "h"))]),))), name="fake")
    try:
        res = cli("train", "--data", tiny_data["train"], "--out", tmp_path / "r", "--epochs",
                  "1", "--max-steps", "1", *TINY_TRAIN)
        assert res.code == 0, res
        assert "epochs = 1\n" in (tmp_path / "r" / "config.toml").read_text()
    finally:
        plugins.unregister_plugin("fake")


def test_modalities_share_an_option_of_the_same_type(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option
    def plugin(name: str, *fields: tuple[Any, ...]) -> _Plugin:
        return _Plugin(("modality", (stub(name=name, fields=list(fields)),)))

    plugins.register_plugin(plugin("wide", ("width", "int", option(3, "h"))), name="wide")
    plugins.register_plugin(plugin("deep", ("depth", "str", option("a", "h"))), name="deep")
    # in-process plugins register in the order they were added: "deeper" comes last
    plugins.register_plugin(plugin("deeper", ("depth", "int", option(1, "h"))), name="deeper")
    try:
        reg = plugins.get_registry()
        assert {"wide", "deep"} <= set(reg.modalities) and "deeper" not in reg.modalities
        assert reg.plugins["deeper"].error == (
            "modality 'deeper': option depth (--depth, int) clashes with option depth "
            "(--depth, str) of modality 'deep'; a shared option needs the same name, flag and "
            "type")
        res = cli("train", "--help")
        assert res.code == 0 and "wide: 3" in res.out
    finally:
        for name in ("wide", "deep", "deeper"):
            plugins.unregister_plugin(name)


def test_options_are_typed_from_real_and_text_annotations(cli):
    fields = [("count", int, option(1, "h")), ("rate", "float | None", option(None, "h")),
              ("loud", bool, option(False, "h"))]
    plugins.register_plugin(_Plugin(("modality", (stub(fields=fields),))), name="fake")
    try:
        assert plugins.get_registry().plugins["fake"].error is None
        res = cli("train", "--modality", "stub", "--count", "many")
        assert res.code == 2 and "Invalid value for '--count'" in res.err, res
        assert "--no-loud" in cli("train", "--help").out
    finally:
        plugins.unregister_plugin("fake")


def test_every_flag_of_the_generated_commands_is_reserved(cli):
    """Options the commands declare themselves must be in the CLI's reserved flags, so that no
    modality option can take them."""
    from latentgen_cli.app import GENERATED, build_command
    from latentgen_cli.options import COMMAND_FLAGS, MODOPT, SETTING

    group = build_command()
    flags = {flag for p in group.params for flag in [*p.opts, *p.secondary_opts]}
    for name in GENERATED:
        for p in group.commands[name].params:
            if not (p.name or "").startswith((SETTING, MODOPT)):
                flags |= {*p.opts, *p.secondary_opts}
    flags |= {"--help"}
    assert flags <= set(COMMAND_FLAGS), sorted(flags - set(COMMAND_FLAGS))
