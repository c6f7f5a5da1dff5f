"""The settings schema: one declaration per setting, from which flags, TOML and docs come."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from latentgen import UserError
from latentgen.assembly.config import RESUMABLE, SETTINGS, TrainConfig

ROOT = Path(__file__).resolve().parents[1]


def test_cli_reference_is_generated_and_current():
    from latentgen_cli.reference import render

    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == render(), "docs/cli.md is stale: run `make docs`"


def test_every_setting_has_a_flag_and_help_in_train(cli, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option: no wrapping inside words
    res = cli("train", "--help")
    assert res.code == 0
    text = " ".join(res.out.replace("│", " ").split())
    from latentgen_cli.options import helped

    for s in SETTINGS.values():
        assert s.flag in text, s.name
        # the whole help, markup and all, with the flags for the settings it names
        assert " ".join(helped(s.help).split()) in text, s.name
        assert not re.search(r"`[a-z_][a-z0-9_]*`", helped(s.help)), s.name
        if s.unit:
            assert f"Unit: {s.unit}." in text, s.name
    for flag in ("--compile", "--no-compile", "--reinit-chains", "--persistent-chains",
                 "--fp64-gradients", "--fp32-gradients", "--normalize", "--no-normalize",
                 "--latent-field", "--no-latent-field", "--observer"):
        assert flag in text, flag


def test_choices_are_typed_and_refused_before_work(cli, tmp_path):
    assert SETTINGS["precision"].choices == ("fp32", "bf16", "auto")
    assert SETTINGS["latents_on"].choices == ("device", "host", "disk")
    res = cli("train", "--precision", "fp16", "--out", tmp_path / "r")
    assert res.code == 2 and "--precision must be fp32, bf16 or auto, got 'fp16'" in res.err
    assert not (tmp_path / "r").exists()


def test_values_are_checked_against_their_declaration():
    # named as a Python caller and a config's key name them; the CLI shows the flag instead
    with pytest.raises(UserError, match="^`epochs` must be at least 1, got 0$"):
        TrainConfig.from_dict({"epochs": 0})
    with pytest.raises(UserError, match="^`sigma` must be number, got 'big'$"):
        TrainConfig.from_dict({"sigma": "big"})
    with pytest.raises(UserError, match="^`compile` must be bool"):
        TrainConfig.from_dict({"compile": 1})
    with pytest.raises(UserError, match="^`lr_end` must be between 0 and 1, got 2.0$"):
        TrainConfig.from_dict({"lr_end": 2.0})
    # from a file, the message names the file and the key written there
    with pytest.raises(UserError, match=r"^run.toml: setting epochs must be at least 1, got 0$"):
        TrainConfig.from_dict({"epochs": 0}, source="run.toml")
    with pytest.raises(UserError, match="unknown setting"):
        TrainConfig.from_dict({"epoch": 3})
    assert TrainConfig.from_dict({"sigma": 1}).sigma == 1.0 and isinstance(
        TrainConfig.from_dict({"sigma": 1}).sigma, float)


def test_resumable_settings_come_from_the_schema():
    assert set(RESUMABLE) == {"epochs", "device", "compile", "observers", "max_steps",
                              "latents_on", "workers", "synthesis_every", "precision",
                              "eval_warm_steps"}


def test_toml_is_written_by_a_library_and_round_trips():
    cfg = TrainConfig(data='odd "name"\nwith a newline\\and \t tab', observers=["a", "b"],
                      modality_options={"image_size": 16})
    text = cfg.to_toml()
    back = tomllib.loads(text)
    assert back["data"] == cfg.data and back["observers"] == ["a", "b"]
    assert TrainConfig.from_dict(back) == cfg
    assert "max_steps" not in back  # None is left out, and reads back as None


def test_a_config_remembers_what_was_given():
    cfg = TrainConfig(modality="video", sigma=0.5)
    assert cfg.given == {"modality", "sigma"}
    assert TrainConfig().given == frozenset()
