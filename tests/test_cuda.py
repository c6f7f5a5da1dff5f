"""CUDA checks (pytest -m gpu); skipped where torch sees no GPU."""

from __future__ import annotations

import pytest
import torch

from latentgen.config import TrainConfig
from latentgen.model import TrainedRun
from latentgen.training import train

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")]


def test_train_on_cuda_then_use_the_run_on_cpu(tiny_data, tmp_path):
    cfg = TrainConfig(data=str(tiny_data["train"]), latent_dim=4, epochs=2, langevin_steps=5,
                      device="cuda",
                      modality_options={"image_size": 16, "channels": 1, "width": 8})
    train(cfg, tmp_path / "run")
    run = TrainedRun.load(tmp_path / "run", "cpu")
    assert run.latents.device.type == "cpu" and run.epoch == 2
    assert torch.isfinite(run.latents).all()
