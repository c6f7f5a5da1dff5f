"""Plugin discovery, isolation of broken plugins, the env-var filter, the example plugin."""

from __future__ import annotations

import json
import sys

import pytest

from latentgen import hookimpl
from latentgen.errors import UserError
from latentgen.plugins import registry as plugins
from latentgen.plugins.registry import get_registry


def test_builtin_image_plugin_comes_from_the_entry_point_group():
    reg = get_registry()
    assert reg.owners["modalities:image"] == "image"
    assert reg.plugins["image"].error is None
    assert reg.plugins["image"].version != "?"
    assert {"langevin", "gd"} <= set(reg.samplers) and "normal" in reg.priors


def test_env_var_restricts_plugins(monkeypatch):
    monkeypatch.setenv(plugins.ENV_VAR, "")
    plugins.reset()
    assert "image" not in get_registry().modalities
    with pytest.raises(UserError, match="unknown modality 'image'"):
        get_registry().modality("image")
    monkeypatch.setenv(plugins.ENV_VAR, "image")
    plugins.reset()
    assert "image" in get_registry().modalities


class _Broken:
    @hookimpl
    def register_modalities(self, register):
        raise RuntimeError("boom")


class _Clash:
    @hookimpl
    def register_modalities(self, register):
        from latentgen_image.modality import ImageModality

        register(ImageModality())


def test_a_plugin_whose_hook_raises_is_reported_and_skipped(cli):
    plugins.register_plugin(_Broken(), name="broken")
    try:
        reg = get_registry()
        assert "boom" in reg.plugins["broken"].error
        assert "image" in reg.modalities
        res = cli("plugins", "--json")
        assert res.code == 0
        info = {p["name"]: p for p in json.loads(res.out)}
        assert "boom" in info["broken"]["error"] and info["image"]["error"] is None
    finally:
        plugins.unregister_plugin("broken")


def test_a_name_clash_is_refused():
    plugins.register_plugin(_Clash(), name="clash")
    try:
        reg = get_registry()
        assert "already registered by plugin 'image'" in reg.plugins["clash"].error
        assert reg.owners["modalities:image"] == "image"
    finally:
        plugins.unregister_plugin("clash")


def test_an_entry_point_that_fails_to_import_is_isolated(tmp_path, monkeypatch, cli):
    dist = tmp_path / "latentgen_bad-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: latentgen-bad\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[latentgen]\nbad = latentgen_no_such_module\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.reset()
    reg = get_registry()
    assert "ModuleNotFoundError" in reg.plugins["bad"].error
    assert "image" in reg.modalities
    res = cli("plugins")
    assert res.code == 0 and "bad" in res.out and "ModuleNotFoundError" in res.out


def test_example_plugin_is_found_through_its_entry_point(tmp_path, monkeypatch):
    """Install the example plugin's metadata the way pip would, without pip."""
    from tests.conftest import EXAMPLE_PLUGIN

    dist = tmp_path / "latentgen_waves-0.1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: latentgen-waves\n"
                                   "Version: 0.1.0\n")
    (dist / "entry_points.txt").write_text("[latentgen]\nwaves = latentgen_waves\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.syspath_prepend(str(EXAMPLE_PLUGIN))
    plugins.reset()
    reg = get_registry()
    assert reg.owners["modalities:waves"] == "waves"
    assert reg.plugins["waves"].version == "0.1.0"
    sys.modules.pop("latentgen_waves", None)


def test_example_plugin_trains_and_synthesizes_from_the_cli(example_plugin, cli, tmp_path):
    run = tmp_path / "run"
    res = cli("train", "--modality", "waves", "--out", run, "--epochs", "2", "--latent-dim", "3",
              "--langevin-steps", "3", "--length", "32", "--device", "cpu")
    assert res.code == 0, res
    assert "length = 32" in (run / "config.toml").read_text()
    res = cli("synthesize", run, "--n", "5", "--out", tmp_path / "syn")
    assert res.code == 0, res
    assert len(list((tmp_path / "syn").glob("sample_*.npy"))) == 5
    assert (tmp_path / "syn" / "grid.png").exists()


def test_modality_option_of_another_modality_is_refused(example_plugin, cli, tmp_path):
    res = cli("train", "--modality", "image", "--length", "32", "--out", tmp_path / "x")
    assert res.code == 2
    assert "--length does not apply to modality 'image'" in res.err
    assert not (tmp_path / "x").exists()
