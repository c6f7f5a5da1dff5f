"""One declaration for training settings and modality options (``latentgen.plugins.declare``):
the same checker refuses a bad value of either with one line naming it (by name from Python,
by flag on the command line), and a plugin's choices and bounds reach ``--help``."""

from __future__ import annotations

import ast
import dataclasses
import inspect
import subprocess
import sys
from pathlib import Path
from typing import Any, Literal

import pytest

import latentgen
from latentgen import Modality, TrainConfig, UserError, declarations, hookimpl, option
from latentgen.plugins import registry as plugins
from latentgen.plugins.declare import Declaration, setting

ROOT = Path(__file__).resolve().parents[1]


# -- one checker ---------------------------------------------------------------------------
@dataclasses.dataclass
class _AsSetting:
    steps: int = setting(5, "Steps.", minimum=1)
    mode: Literal["a", "b"] = setting("a", "Mode.")


@dataclasses.dataclass
class _AsOption:
    steps: int = option(5, "steps", minimum=1)
    mode: Literal["a", "b"] = option("a", "mode")


def test_settings_and_options_are_one_declaration_with_one_checker():
    settings, options = declarations(TrainConfig), declarations(_AsOption)
    assert type(settings["epochs"]) is type(options["steps"]) is Declaration
    assert settings["epochs"].is_setting and not options["steps"].is_setting
    # the same declaration made by either front-end checks a value the same way
    for value, message in ((0, "`steps` must be at least 1, got 0"),
                           (2.5, "`steps` must be integer, got 2.5"),
                           (True, "`steps` must be integer, got True")):
        errors = []
        for cls in (_AsSetting, _AsOption):
            with pytest.raises(UserError) as caught:
                declarations(cls)["steps"].check(value)
            errors.append(str(caught.value))
        assert errors == [message, message]
    for cls in (_AsSetting, _AsOption):
        mode = declarations(cls)["mode"]
        assert (mode.kind, mode.choices) == (str, ("a", "b"))
        with pytest.raises(UserError, match=r"^`mode` must be a or b, got 'c'$"):
            mode.check("c")


def test_the_checker_covers_type_finite_floats_bounds_and_choices():
    @dataclasses.dataclass
    class Opts:
        channels: Literal[1, 3] = option(3, "channels")
        rate: float = option(1.0, "rate", positive=True, maximum=10)
        size: int | None = option(None, "size", minimum=0, maximum=4)
        name: str = option("x", "name", choices=("x", "y"))

    d = declarations(Opts)
    assert (d["channels"].kind, d["channels"].choices) == (int, (1, 3))
    assert d["size"].optional and d["size"].check(None) is None
    assert d["rate"].check(2) == 2.0 and isinstance(d["rate"].check(2), float)
    refused = {("channels", 2): "`channels` must be 1 or 3, got 2",
               ("channels", "3"): "`channels` must be 1 or 3, got '3'",
               ("rate", float("nan")): "`rate` must be a finite number, got nan",
               ("rate", 0.0): "`rate` must be positive, got 0.0",
               ("rate", 11): "`rate` must be at most 10, got 11.0",
               ("size", 5): "`size` must be between 0 and 4, got 5",
               ("name", "z"): "`name` must be x or y, got 'z'"}
    for (key, value), message in refused.items():
        with pytest.raises(UserError) as caught:
            d[key].check(value)
        assert str(caught.value) == message
    # a value read from a file is named by the file and the key written there
    with pytest.raises(UserError, match=r"^run.toml: setting epochs must be at least 1, got 0$"):
        declarations(TrainConfig)["epochs"].check(0, "run.toml")


def test_every_declaration_of_the_settings_and_builtin_options_is_well_formed():
    assert all(s.problem() is None for s in declarations(TrainConfig).values())
    for modality in plugins.get_registry().modalities.values():
        for d in declarations(modality.Options).values():
            assert d.problem() is None, (modality.name, d.name, d.problem())


def test_option_keeps_its_signature():
    params = list(inspect.signature(option).parameters.values())
    assert [p.name for p in params[:3]] == ["default", "help", "flag"]
    assert all(p.kind is p.KEYWORD_ONLY for p in params[3:])
    field = option(2, "h", "--two")
    assert field.default == 2 and field.metadata["flag"] == "--two"


# -- modality options: checked where they are made -----------------------------------------
@pytest.mark.parametrize(("modality", "values", "message"), [
    ("image", {"channels": 2}, "`channels` must be 1 or 3, got 2"),
    ("image", {"crops": -1}, "`crops` must be 0 or more, got -1"),
    ("image", {"generator": "gan"}, "`generator` must be auto, convt, upconv or resnet, got "
                                    "'gan'"),
    ("video", {"frames": 1}, "`frames` must be between 2 and 512, got 1"),
    ("video", {"fps": 0.1}, "`fps` must be between 0.5 and 120, got 0.1"),
    ("video", {"window": -1}, "`window` must be 0 or more, got -1"),
    ("audio", {"representation": "mfcc"}, "`representation` must be waveform or logmel, got "
                                           "'mfcc'"),
    ("audio", {"sample_rate": 10}, "`sample_rate` must be between 1000 and 192000, got 10"),
    ("audio", {"width": "wide"}, "`width` must be integer, got 'wide'"),
])
def test_a_bad_option_is_refused_naming_it(modality, values, message):
    with pytest.raises(UserError) as caught:
        plugins.get_registry().modality(modality).make_options(values)
    assert str(caught.value) == message


def test_a_bad_option_is_refused_by_the_python_api_before_work(tmp_path):
    with pytest.raises(UserError, match=r"^`channels` must be 1 or 3, got 2$"):
        latentgen.train(modality="image", channels=2, out=tmp_path / "r", device="cpu")
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize(("args", "message"), [
    (["--channels", "2"], "--channels must be 1 or 3, got 2"),
    (["--modality", "video", "--frames", "1"], "--frames must be between 2 and 512, got 1"),
    (["--modality", "audio", "--representation", "mfcc"],
     "--representation must be waveform or logmel, got 'mfcc'"),
])
def test_a_bad_option_is_one_line_from_the_cli_naming_its_flag(cli, tmp_path, args, message):
    res = cli("train", *args, "--out", tmp_path / "r")
    assert res.code == 2 and res.err == f"error: {message}\n", res
    assert not (tmp_path / "r").exists()


# -- a third-party plugin's declarations ---------------------------------------------------
@dataclasses.dataclass
class ToneOptions:
    shape: Literal["sine", "square"] = option("sine", "wave shape")
    voices: int = option(2, "voices", minimum=1, maximum=8)
    gain: float = option(0.5, "output gain", unit="dB", positive=True)


class _Tones(Modality):
    name = "tones"
    Options = ToneOptions

    def build_generator(self, latent_dim: int, opts: Any) -> Any: ...
    def open_dataset(self, source: Any, opts: Any) -> Any: ...
    def write_examples(self, *args: Any, **kwargs: Any) -> Any: ...
    def write_grid(self, *args: Any, **kwargs: Any) -> Any: ...
    def read_examples(self, *args: Any, **kwargs: Any) -> Any: ...


class _TonesPlugin:
    @hookimpl
    def register_modalities(self, register: Any) -> None:
        register(_Tones())


@pytest.fixture
def tones():
    plugins.register_plugin(_TonesPlugin(), name="tones")
    try:
        reg = plugins.get_registry()
        assert reg.plugins["tones"].error is None
        yield reg.modality("tones")
    finally:
        plugins.unregister_plugin("tones")


def test_a_plugins_choices_and_bounds_reach_help(tones, cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option
    res = cli("train", "--help")
    assert res.code == 0, res
    lines = {line.split()[1]: " ".join(line.split()) for line in res.out.splitlines()
             if line.startswith("│ --")}
    assert "sine|square wave shape (default tones: sine)" in lines["--shape"]
    assert "voices; must be between 1 and 8 (default tones: 2)" in lines["--voices"]
    assert "output gain; unit: dB; must be positive (default tones: 0.5)" in lines["--gain"]


def test_a_plugins_options_are_checked_against_their_declarations(tones, cli, tmp_path):
    assert tones.make_options({"voices": 8, "gain": 1}).gain == 1.0
    with pytest.raises(UserError, match=r"^`voices` must be between 1 and 8, got 9$"):
        tones.make_options({"voices": 9})
    with pytest.raises(UserError, match=r"^`shape` must be sine or square, got 'saw'$"):
        tones.make_options({"shape": "saw"})
    res = cli("train", "--modality", "tones", "--gain", "0", "--out", tmp_path / "r")
    assert res.code == 2
    assert res.err == "error: --gain must be positive, got 0.0\n", res


# -- structure -----------------------------------------------------------------------------
def _imports(path: Path, package: str) -> set[str]:
    """The modules of ``package`` that ``path`` imports anywhere (TYPE_CHECKING included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == package:
                found |= {f"{package}.{a.name}" for a in node.names}
            elif node.module.startswith(package + "."):
                found.add(node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith(package + ".")}
    return found


def test_the_plugins_package_imports_without_a_circle():
    folder = ROOT / "latentgen" / "plugins"
    modules = {f"latentgen.plugins.{p.stem}": p for p in folder.glob("*.py")
               if p.stem != "__init__"}
    graph = {m: _imports(p, "latentgen.plugins") & set(modules) for m, p in modules.items()}
    done: set[str] = set()

    def visit(module: str, path: tuple[str, ...]) -> None:
        assert module not in path, " -> ".join([*path, module])
        if module not in done:
            for other in graph[module]:
                visit(other, (*path, module))
            done.add(module)

    for module in graph:
        visit(module, ())


@pytest.mark.parametrize("name", ["options.py", "reference.py"])
def test_the_cli_imports_only_what_latentgen_exports(name):
    tree = ast.parse((ROOT / "cli" / "latentgen_cli" / name).read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("latentgen"):
            assert node.module == "latentgen", node.module
            assert {a.name for a in node.names} <= set(latentgen.__all__)
        elif isinstance(node, ast.Import):
            assert all(a.name == "latentgen" or not a.name.startswith("latentgen.")
                       for a in node.names)
        elif (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
              and node.value.id == "latentgen"):
            assert node.attr in latentgen.__all__, node.attr


def test_declaring_imports_no_torch():
    code = ("import sys, latentgen\n"
            "latentgen.option, latentgen.declarations, latentgen.Declaration\n"
            "assert 'torch' not in sys.modules, 'torch imported'\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
