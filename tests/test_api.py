"""The Python API: docs/python-api.md runs as written, and the API and the CLI resolve the same
settings to the same run."""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

import pytest
import torch

import latentgen
from latentgen import UserError

ROOT = Path(__file__).resolve().parents[1]

#: a small, fast configuration per modality (embedded data), as CLI flags and as API settings
TINY = {
    "image": {"latent_dim": 4, "batch_size": 32, "langevin_steps": 2, "image_size": 16,
              "channels": 1, "width": 8},
    "audio": {"latent_dim": 4, "batch_size": 16, "langevin_steps": 2, "sample_rate": 4000,
              "clip_seconds": 0.25, "width": 8, "normalize": False},
    "video": {"latent_dim": 4, "batch_size": 8, "langevin_steps": 2, "frames": 8,
              "image_size": 16, "channels": 1, "width": 4},
}


def _flags(settings: dict) -> list[str]:
    out = []
    for key, value in settings.items():
        flag = "--" + key.replace("_", "-")
        if isinstance(value, bool):
            out.append(flag if value else "--no-" + key.replace("_", "-"))
        else:
            out += [flag, str(value)]
    return out


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.S)


def test_python_api_doc_runs_as_written(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    blocks = _python_blocks((ROOT / "docs" / "python-api.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 5
    namespace: dict = {}
    checked = 0
    for block in blocks:
        for line in block.splitlines():
            stmt, _, expected = line.partition("  # ")
            if not stmt.startswith("print(") or not expected:
                continue
            checked += 1
        buffer = io.StringIO()
        with contextlib.redirect_stdout(buffer):
            exec(compile(block, "docs/python-api.md", "exec"), namespace)  # noqa: S102
        printed = buffer.getvalue().splitlines()
        wanted = [line.partition("  # ")[2].strip() for line in block.splitlines()
                  if line.startswith("print(") and "  # " in line]
        assert len(printed) == len(wanted), (block, printed)
        for got, want in zip(printed, wanted):
            if want.endswith("..."):
                assert got.startswith(want[:-3]), (got, want)
            else:
                assert got == want, (got, want)
    assert checked >= 10
    assert (tmp_path / "runs" / "faces" / "checkpoints" / "last.pt").exists()
    assert (tmp_path / "out" / "samples" / "grid.png").exists()


@pytest.mark.parametrize("modality", sorted(TINY))
def test_api_and_cli_write_the_same_config(modality, cli, tmp_path):
    settings = {"modality": modality, "max_steps": 1, "device": "cpu", "seed": 3,
                **TINY[modality]}
    res = cli("train", *_flags(settings), "--out", tmp_path / "cli")
    assert res.code == 0, res
    run = latentgen.train(out=tmp_path / "api", **settings)
    cli_text = (tmp_path / "cli" / "config.toml").read_text()
    api_text = (tmp_path / "api" / "config.toml").read_text()
    assert cli_text == api_text
    assert run.config == latentgen.load_run(tmp_path / "cli", "cpu").config
    a = torch.load(tmp_path / "cli/checkpoints/last.pt", weights_only=True)["generator"]
    b = torch.load(tmp_path / "api/checkpoints/last.pt", weights_only=True)["generator"]
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_api_and_cli_agree_through_a_config_file(cli, tmp_path):
    toml = tmp_path / "settings.toml"
    toml.write_text('modality = "image"\nlatent_dim = 4\nsigma = 0.7\nbatch_size = 32\n'
                    'langevin_steps = 2\n[modality_options]\nimage_size = 16\nchannels = 1\n'
                    'width = 8\n')
    res = cli("train", "--config", toml, "--sigma", "0.6", "--max-steps", "1", "--device",
              "cpu", "--out", tmp_path / "cli")
    assert res.code == 0, res
    latentgen.train(toml, sigma=0.6, max_steps=1, device="cpu", out=tmp_path / "api")
    assert ((tmp_path / "cli" / "config.toml").read_text()
            == (tmp_path / "api" / "config.toml").read_text())
    assert latentgen.load_run(tmp_path / "api", "cpu").config.sigma == 0.6
    # a bad explicit value is named as the setting; a bad value in the file names the file
    with pytest.raises(UserError, match=r"^`epochs` must be at least 1, got 0$"):
        latentgen.resolve_config(toml, epochs=0)
    toml.write_text(toml.read_text().replace("latent_dim = 4", "latent_dim = 0"))
    with pytest.raises(UserError, match=r"settings.toml: setting latent_dim must be at least 1"):
        latentgen.resolve_config(toml)


def test_a_train_config_gets_its_modalitys_defaults_and_is_not_changed():
    from latentgen.plugins.registry import get_registry

    cfg = latentgen.TrainConfig(modality="video", modality_options={"frames": 8})
    before = (cfg.to_dict(), cfg.given)
    resolved = latentgen.resolve_config(cfg)
    video = get_registry().modality("video").train_defaults
    for key, value in video.items():
        assert getattr(resolved, key) == value, key
    assert (cfg.to_dict(), cfg.given) == before
    # an explicit setting still wins over the modality's default
    assert latentgen.resolve_config(cfg, sigma=0.5).sigma == 0.5
    assert latentgen.resolve_config({"modality": "video", "sigma": 0.25}).sigma == 0.25


def test_bool_modality_options_work_both_ways(cli):
    from latentgen_cli.app import build_command
    from latentgen_cli.options import given_modality_options

    train = build_command().commands["train"]
    for flag, value in (("--no-normalize", False), ("--normalize", True)):
        ctx = train.make_context("train", ["--modality", "audio", flag])
        options = given_modality_options(ctx.params)
        assert options == {"normalize": value}
        cfg = latentgen.resolve_config(modality="audio", modality_options=options)
        assert cfg.modality_options["normalize"] is value


def test_unknown_keywords_name_both_lists():
    with pytest.raises(UserError, match=r"unknown setting\(s\) epoch: not training settings"):
        latentgen.resolve_config(epoch=3)
    with pytest.raises(UserError, match="frames"):
        latentgen.resolve_config(modality="image", frames=3)


def test_resume_refuses_settings_that_change_what_is_learned(tmp_path):
    latentgen.train(out=tmp_path / "r", max_steps=1, device="cpu", **TINY["image"])
    with pytest.raises(UserError, match="`sigma` cannot change"):
        latentgen.train(out=tmp_path / "r", resume=True, sigma=0.2)
    with pytest.raises(UserError, match="`image_size` cannot change"):
        latentgen.train(out=tmp_path / "r", resume=True, modality_options={"image_size": 32})


def test_data_as_tensor_or_dataset(tmp_path):
    run = latentgen.train(out=tmp_path / "r", max_steps=1, device="cpu", **TINY["image"])
    x = run.synthesize(6, seed=1)
    assert x.shape == (6, 1, 16, 16) and x.abs().max() <= 1.0
    assert torch.equal(x, run.synthesize(6, seed=1))
    from torch.utils.data import TensorDataset

    as_tensor = run.reconstruct(x, infer_steps=5)
    as_dataset = run.reconstruct(TensorDataset(x, torch.zeros(6)), infer_steps=5)
    assert torch.equal(as_tensor.reconstructions, as_dataset.reconstructions)
    assert as_tensor.mse.shape == (6,)
    with pytest.raises(UserError, match="shape"):
        run.reconstruct(torch.zeros(2, 3, 8, 8))
    assert run.interpolate(x[:2], x[2:4], steps=3, infer_steps=5).shape == (2, 4, 1, 16, 16)


def test_import_latentgen_does_not_import_torch():
    import subprocess
    import sys

    code = ("import sys, latentgen, latentgen.data, latentgen.model, latentgen.plugins; "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, env={**os.environ})
    assert out.stdout.strip() == "False"


def test_paths_are_taken_and_tensors_refused_as_training_data(tiny_data, tmp_path):
    settings = dict(TINY["image"], max_steps=1, device="cpu")
    run = latentgen.train(data=tiny_data["train"], test_data=tiny_data["test"],
                          out=tmp_path / "r", **settings)
    assert run.config.data == str(tiny_data["train"].resolve())
    with pytest.raises(UserError, match="data must be a path .* not Tensor"):
        latentgen.train(data=torch.zeros(4, 1, 16, 16), out=tmp_path / "t", **settings)
    assert not (tmp_path / "t").exists()


def test_a_failed_resume_leaves_no_working_bank(tmp_path):
    latentgen.train(out=tmp_path / "r", max_steps=1, device="cpu", latents_on="disk",
                    **TINY["image"])
    last = tmp_path / "r" / "checkpoints" / "last.pt"
    state = torch.load(last, weights_only=True)
    state["generator"].pop(next(iter(state["generator"])))  # no longer fits the generator
    torch.save(state, last)
    with pytest.raises(UserError, match="does not fit this run"):
        latentgen.train(out=tmp_path / "r", resume=True, epochs=2)
    assert not list((tmp_path / "r" / "checkpoints").glob("bank-rank*"))


def test_default_run_folders_do_not_collide(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    runs = [latentgen.train(max_steps=1, device="cpu", **TINY["image"]) for _ in range(3)]
    assert len({r.path for r in runs}) == 3


def test_pictures_train_with_their_own_defaults_and_a_width_by_size():
    """The image modality's measured defaults fill what nothing else sets, and --width 0 (its
    default) keeps the transposed-convolution stack's first hidden layer at 128 channels or
    more: 64 at 16 and 28 px, 32 above; the residual generator (the default for whole
    pictures) ends at 32 at every size; an explicit width is kept."""
    from latentgen.assembly.model import Model
    from latentgen.plugins.registry import get_registry

    image = get_registry().modality("image")
    resolved = latentgen.resolve_config({"modality": "image"})
    for key, value in image.train_defaults.items():
        assert getattr(resolved, key) == value, key
    given = latentgen.resolve_config({"modality": "image", "langevin_steps": 30})
    assert given.langevin_steps == 30

    def first_and_last(size: int, **opts) -> tuple[int, int]:
        cfg = latentgen.resolve_config({"modality": "image", "latent_dim": 4,
                                        "modality_options": {"image_size": size,
                                                             "generator": "convt", **opts}})
        convs = [m for m in Model.from_config(cfg).generator.modules()
                 if isinstance(m, torch.nn.ConvTranspose2d)]
        return convs[0].out_channels, convs[-2].out_channels

    def residual(size: int) -> tuple[str, int, int]:
        cfg = latentgen.resolve_config({"modality": "image", "latent_dim": 4,
                                        "modality_options": {"image_size": size}})
        model = Model.from_config(cfg)
        convs = [m for m in model.generator.modules()
                 if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
        return model.options.generator, convs[0].out_channels, convs[-1].in_channels

    assert residual(16) == ("resnet", 64, 32)
    assert residual(32) == ("resnet", 128, 32)
    assert first_and_last(16) == (128, 64)
    assert first_and_last(28) == (128, 64)
    assert first_and_last(32) == (128, 32)
    assert first_and_last(64) == (256, 32)
    assert first_and_last(16, width=8) == (16, 8)
