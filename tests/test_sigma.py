"""A learned sigma: refit to the training residuals after every epoch, the Langevin step
following it, stored in checkpoints and read back by every verb."""

from __future__ import annotations

import csv
import math

import pytest
import torch

from latentgen.assembly.config import TrainConfig
from latentgen.assembly.rundir import RunDir
from latentgen.model.observation import SIGMA_FLOOR, GaussianObservation
from latentgen.run import Run as TrainedRun
from tests.conftest import resume_api
from tests.conftest import train_api as train


def _config(data, **kw) -> TrainConfig:
    base = dict(data=str(data), latent_dim=4, batch_size=32, langevin_steps=2, device="cpu",
                epochs=3, learn_sigma=True,
                modality_options={"image_size": 16, "channels": 1, "width": 8})
    base.update(kw)
    return TrainConfig(**base)


def test_the_maximum_likelihood_sigma_is_the_root_mean_squared_residual():
    obs = GaussianObservation(0.5, learn=True)
    obs.learn(0.04)
    assert obs.sigma == pytest.approx(0.2)
    assert obs.scale == pytest.approx(0.4)
    obs.learn(0.0)  # an exact fit leaves sigma where it was
    obs.learn(float("nan"))
    assert obs.sigma == pytest.approx(0.2)
    obs.learn(1e-12)
    assert obs.sigma == SIGMA_FLOOR
    fixed = GaussianObservation(0.5)
    fixed.learn(0.04)
    assert fixed.sigma == 0.5 and fixed.scale == 1.0


def test_training_learns_sigma_and_every_verb_uses_it(tiny_data, tmp_path):
    run = tmp_path / "run"
    train(_config(tiny_data["train"]), run)
    with open(run / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    sigmas = [float(r["sigma"]) for r in rows]
    # the residuals of a 3-epoch run are far below the starting 0.5: sigma falls to them
    assert sigmas[-1] < 0.45
    mse = float(rows[-1]["train_mse"]) * 4  # metric scale [0, 1] -> model scale [-1, 1]
    assert sigmas[-1] == pytest.approx(math.sqrt(mse), rel=1e-4)
    ckpt = torch.load(run / "checkpoints/last.pt", weights_only=True)
    assert ckpt["observation"]["sigma"] == pytest.approx(sigmas[-1], abs=1e-6)
    loaded = TrainedRun.load(run, "cpu")
    assert loaded.model.observation.sigma == pytest.approx(sigmas[-1], abs=1e-6)
    # the run's sampler keeps delta / sigma
    step = loaded.model.sampler().step_size
    assert step == pytest.approx(0.3 * sigmas[-1] / 0.5, rel=1e-5)


def test_a_fixed_sigma_stays_and_writes_no_column(tiny_data, tmp_path):
    run = tmp_path / "run"
    train(_config(tiny_data["train"], learn_sigma=False, epochs=1), run)
    with open(run / "metrics.csv") as fh:
        assert "sigma" not in next(csv.DictReader(fh))
    assert TrainedRun.load(run, "cpu").model.observation.sigma == 0.5


def test_an_interrupted_run_resumes_with_the_learned_sigma(tiny_data, tmp_path):
    train(_config(tiny_data["train"]), tmp_path / "straight")
    # stops mid-epoch 2, after sigma was refit once
    train(_config(tiny_data["train"], max_steps=5), tmp_path / "split")
    resume_api(tmp_path / "split", max_steps=None)
    a = TrainedRun.load(tmp_path / "straight", "cpu")
    b = TrainedRun.load(tmp_path / "split", "cpu")
    assert a.model.observation.sigma == pytest.approx(b.model.observation.sigma, abs=1e-6)
    sa, sb = a.model.generator.state_dict(), b.model.generator.state_dict()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=1e-6, msg=k)


def test_a_run_written_before_sigma_was_learned_keeps_it_fixed(tiny_data, tmp_path):
    run = tmp_path / "run"
    train(_config(tiny_data["train"], epochs=1), run)
    path = run / "config.toml"
    path.write_text("\n".join(line for line in path.read_text().splitlines()
                              if not line.startswith("learn_sigma")) + "\n")
    assert RunDir(run).read_config().learn_sigma is False
