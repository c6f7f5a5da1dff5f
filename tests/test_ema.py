"""--ema: a moving average of the generator's weights, in the checkpoint, used after training."""

from __future__ import annotations

import torch

import latentgen
from latentgen.assembly.rundir import RunDir

from .conftest import TINY_TRAIN


def _settings() -> dict:
    flags = dict(zip(TINY_TRAIN[::2], TINY_TRAIN[1::2]))
    return {k[2:].replace("-", "_"): (v if k == "--device" else int(v))
            for k, v in flags.items()}


def test_the_average_is_kept_and_used_by_the_loaded_run(tiny_data, tmp_path):
    out = tmp_path / "run"
    latentgen.train(out=out, data=str(tiny_data["train"]), epochs=2, ema=0.9, **_settings())
    state = RunDir(out).load_checkpoint()
    live, ema = state["generator"], state["generator_ema"]
    assert live.keys() == ema.keys()
    assert any(not torch.equal(live[k], ema[k]) for k in live)
    run = latentgen.load_run(out)
    for k, v in run.generator.state_dict().items():
        torch.testing.assert_close(v.cpu(), ema[k])
    # a resumed run goes on from the stored average
    latentgen.train(out=out, resume=True, epochs=3)
    again = RunDir(out).load_checkpoint()
    assert again["epoch"] == 3 and "generator_ema" in again


def test_without_ema_the_checkpoint_holds_one_generator(tiny_data, tmp_path):
    out = tmp_path / "run"
    latentgen.train(out=out, data=str(tiny_data["train"]), epochs=1, **_settings())
    assert "generator_ema" not in RunDir(out).load_checkpoint()
