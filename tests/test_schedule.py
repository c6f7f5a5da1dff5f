"""The learning-rate schedule: a half cosine from --lr to --lr x --lr-end over the run."""

from __future__ import annotations

import math

import pytest
import torch

from latentgen.assembly.config import TrainConfig
from latentgen.assembly.rundir import RunDir
from latentgen.run import Run as TrainedRun
from latentgen.training.schedule import lr_at
from tests.conftest import resume_api
from tests.conftest import train_api as train


def _config(data, **kw) -> TrainConfig:
    base = dict(data=str(data), latent_dim=4, batch_size=32, langevin_steps=2, device="cpu",
                epochs=3, modality_options={"image_size": 16, "channels": 1, "width": 8})
    base.update(kw)
    return TrainConfig(**base)


def test_the_rate_falls_along_a_half_cosine_to_its_end():
    rates = [lr_at(s, 11, 1e-3, 0.1) for s in range(11)]
    assert rates[0] == pytest.approx(1e-3)
    assert rates[-1] == pytest.approx(1e-4)
    assert rates[5] == pytest.approx(1e-3 * (0.1 + 0.9 * 0.5))  # half way: the mean
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert lr_at(50, 11, 1e-3, 0.1) == pytest.approx(1e-4)  # past the end: the final rate
    assert [lr_at(s, 11, 1e-3, 1.0) for s in (0, 5, 10)] == [1e-3] * 3
    assert lr_at(0, 1, 1e-3, 0.0) == 1e-3  # a one-step run takes its one step


def test_training_ends_at_the_final_rate(tiny_data, tmp_path):
    run = tmp_path / "run"
    train(_config(tiny_data["train"], lr=2e-3, lr_end=0.25), run)
    ckpt = torch.load(run / "checkpoints/last.pt", weights_only=True)
    steps = ckpt["step"]
    # the last step used the final rate; the optimizer's state records it
    assert ckpt["optimizer"]["param_groups"][0]["lr"] == pytest.approx(2e-3 * 0.25)
    assert steps == 3 * math.ceil(128 / 32)


def test_an_interrupted_run_resumes_on_the_same_schedule(tiny_data, tmp_path):
    train(_config(tiny_data["train"], lr_end=0.1), tmp_path / "straight")
    # stops mid-epoch 2
    train(_config(tiny_data["train"], lr_end=0.1, max_steps=5), tmp_path / "split")
    resume_api(tmp_path / "split", max_steps=None)
    a = TrainedRun.load(tmp_path / "straight", "cpu").model.generator.state_dict()
    b = TrainedRun.load(tmp_path / "split", "cpu").model.generator.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6, msg=k)


def test_a_run_written_before_the_schedule_keeps_a_constant_rate(tiny_data, tmp_path):
    run = tmp_path / "run"
    train(_config(tiny_data["train"], epochs=1, lr_end=0.5), run)
    path = run / "config.toml"
    path.write_text("\n".join(line for line in path.read_text().splitlines()
                              if not line.startswith("lr_end")) + "\n")
    assert RunDir(run).read_config().lr_end == 1.0
