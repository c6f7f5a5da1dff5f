"""CUDA checks (pytest -m gpu); skipped where torch sees no GPU."""

from __future__ import annotations

import pytest
import torch

from latentgen.assembly.config import TrainConfig
from latentgen.run import Run as TrainedRun
from tests.conftest import train_api as train

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


@pytest.mark.parametrize("place", ["host", "disk"])
def test_latent_bank_placement_on_cuda(tiny_data, tmp_path, place):
    """The bank in host memory or on disk trains what a bank on the GPU trains."""
    from latentgen.assembly.rundir import RunDir

    base = dict(data=str(tiny_data["train"]), latent_dim=4, epochs=2, langevin_steps=5,
                device="cuda", modality_options={"image_size": 16, "channels": 1, "width": 8})
    train(TrainConfig(**base), tmp_path / "device")
    train(TrainConfig(**base, latents_on=place), tmp_path / place)
    a, b = (RunDir(tmp_path / name).load_checkpoint() for name in ("device", place))
    for key in a["generator"]:  # cuDNN may round differently from run to run
        assert torch.allclose(a["generator"][key], b["generator"][key], atol=1e-3)
    assert torch.allclose(a["latents"][:], b["latents"][:], atol=1e-2)
