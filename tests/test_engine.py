"""The ABP engine learns, and a resumed run equals an uninterrupted one."""

from __future__ import annotations

import csv
import tomllib

import torch

from latentgen.assembly.config import TrainConfig
from latentgen.run import Run as TrainedRun
from tests.conftest import resume_api
from tests.conftest import train_api as train


def _config(data, **kw) -> TrainConfig:
    base = dict(data=str(data), latent_dim=4, batch_size=32, langevin_steps=5, device="cpu",
                epochs=4, modality_options={"image_size": 16, "channels": 1, "width": 8})
    base.update(kw)
    return TrainConfig(**base)


def _metrics(run_dir):
    with open(run_dir / "metrics.csv") as fh:
        return list(csv.DictReader(fh))


def test_engine_lowers_reconstruction_error(tiny_data, tmp_path):
    train(_config(tiny_data["train"], epochs=8), tmp_path / "run")
    rows = _metrics(tmp_path / "run")
    assert [int(r["epoch"]) for r in rows] == list(range(1, 9))
    first, last = float(rows[0]["train_mse"]), float(rows[-1]["train_mse"])
    assert last < 0.6 * first, (first, last)


def test_resume_equals_uninterrupted_run(tiny_data, tmp_path):
    # at a constant rate (the default), a run extended from 2 to 4 epochs is the 4-epoch run
    # (with a decaying one an interrupted run is: tests/test_schedule.py)
    train(_config(tiny_data["train"], epochs=4, lr_end=1.0), tmp_path / "straight")
    train(_config(tiny_data["train"], epochs=2, lr_end=1.0), tmp_path / "split")
    resume_api(tmp_path / "split", epochs=4)

    a = TrainedRun.load(tmp_path / "straight", "cpu")
    b = TrainedRun.load(tmp_path / "split", "cpu")
    assert b.epoch == 4
    for (k, va), (_, vb) in zip(a.model.generator.state_dict().items(),
                                b.model.generator.state_dict().items()):
        torch.testing.assert_close(va, vb, rtol=0, atol=1e-6, msg=k)
    torch.testing.assert_close(a.latents, b.latents, rtol=0, atol=1e-6)
    sa = torch.load(tmp_path / "straight/checkpoints/last.pt", weights_only=True)
    sb = torch.load(tmp_path / "split/checkpoints/last.pt", weights_only=True)
    assert sa["step"] == sb["step"]
    assert [r["loss"] for r in _metrics(tmp_path / "straight")] == \
        [r["loss"] for r in _metrics(tmp_path / "split")]


def test_same_seed_same_run_other_seed_other_run(tiny_data, tmp_path):
    for name, seed in [("a", 0), ("b", 0), ("c", 1)]:
        train(_config(tiny_data["train"], epochs=1, seed=seed), tmp_path / name)
    w = {n: TrainedRun.load(tmp_path / n, "cpu").model.generator.state_dict() for n in "abc"}
    key = next(iter(w["a"]))
    assert torch.equal(w["a"][key], w["b"][key])
    assert not torch.equal(w["a"][key], w["c"][key])


def test_checkpoint_contents(tiny_data, tmp_path):
    train(_config(tiny_data["train"], epochs=2, checkpoint_every=1), tmp_path / "run")
    ckpt = torch.load(tmp_path / "run/checkpoints/last.pt", weights_only=True)
    for key in ("generator", "latents", "optimizer", "epoch", "plugin", "rng"):
        assert key in ckpt
    # config.toml is the run's one stored configuration: checkpoints carry no second copy
    assert "config" not in ckpt
    assert ckpt["epoch"] == 2
    assert ckpt["latents"].shape == (128, 4)
    assert ckpt["plugin"]["name"] == "image" and ckpt["plugin"]["version"]
    stored = tomllib.loads((tmp_path / "run/config.toml").read_text())
    assert stored["modality_options"] == {"image_size": 16, "channels": 1, "width": 8,
                                          "latent_field": False, "generator": "resnet",
                                          "crops": 0}
    assert (tmp_path / "run/checkpoints/epoch_0001.pt").exists()
    assert not list((tmp_path / "run/checkpoints").glob("*.tmp"))


def test_short_run_chains_reinitialise(tiny_data, tmp_path):
    """With --reinit-chains, inference starts from the prior every iteration, so the bank only
    records the last inferred latents; training still learns."""
    train(_config(tiny_data["train"], epochs=6, reinit_chains=True, langevin_steps=10),
          tmp_path / "run")
    rows = _metrics(tmp_path / "run")
    assert float(rows[-1]["train_mse"]) < float(rows[0]["train_mse"])
