"""The engine's speed options against a plain loop, and `latentgen bench`."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from latentgen.assembly.config import TrainConfig
from latentgen.benchmark import count_flops, reference_iteration
from latentgen.model.observation import GaussianObservation
from latentgen.model.priors import StandardNormal
from latentgen.model.samplers import Langevin, UnadjustedLangevin
from latentgen.plugins.registry import get_registry
from latentgen.runtime.seeding import derived_generator
from latentgen.training.bank import LatentBank
from latentgen.training.engine import ABPEngine
from tests.conftest import train_api as train


def _generator(size: int = 16, channels: int = 3):
    mod = get_registry().modality("image")
    torch.manual_seed(0)
    return mod.build_generator(8, mod.make_options({"image_size": size, "channels": channels,
                                                     "width": 8, "generator": "convt"}))


def test_engine_matches_the_plain_loop():
    """Channels-last, frozen weights, in-place updates and the fused optimizer change only the
    rounding: after 6 iterations the weights and latents equal the plain loop's."""
    base = _generator()
    n, steps, sigma, delta, seed = 16, 5, 0.5, 0.3, 3
    y = torch.rand(n, *base.data_shape, generator=torch.Generator().manual_seed(1)) * 2 - 1
    prior = StandardNormal(base.latent_shape)
    bank = LatentBank.from_prior(prior, n, seed)
    engine = ABPEngine(copy.deepcopy(base), prior, UnadjustedLangevin(delta),
                       GaussianObservation(sigma), bank, langevin_steps=steps, batch_size=8,
                       lr=1e-3, seed=seed)
    assert engine.generator.net[2].weight.is_contiguous(memory_format=torch.channels_last)
    ref = copy.deepcopy(base)
    ref_opt = torch.optim.Adam(ref.parameters(), lr=1e-3, betas=(0.5, 0.999))
    ref_bank = LatentBank.from_prior(prior, n, seed)
    for b, index in enumerate([torch.arange(8), torch.arange(8, 16)] * 3):
        loss, _ = engine.train_batch(y[index], index, 1, b)
        z, ref_loss = reference_iteration(ref, ref_opt, ref_bank.read(index), y[index], sigma,
                                          delta, steps, derived_generator(seed, "langevin", 1, b))
        ref_bank.write(index, z)
        # the learning loss itself (Adam would hide a wrongly scaled one in the weights)
        assert loss == pytest.approx(ref_loss, rel=1e-5)
    for (name, p), q in zip(engine.generator.named_parameters(), ref.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-4, atol=1e-5, msg=name)
    torch.testing.assert_close(bank.latents, ref_bank.latents, rtol=1e-4, atol=1e-4)


def test_bf16_and_fp32_training_agree_in_outcome(tiny_data, tmp_path):
    results = {}
    for precision in ("fp32", "bf16"):
        cfg = TrainConfig(data=str(tiny_data["train"]), epochs=6, latent_dim=4, batch_size=32,
                          langevin_steps=5, device="cpu", precision=precision,
                          modality_options={"image_size": 16, "channels": 1, "width": 8})
        run = train(cfg, tmp_path / precision)
        rows = run.metrics()
        results[precision] = (float(rows[0]["train_mse"]), float(rows[-1]["train_mse"]))
    (first32, last32), (first16, last16) = results["fp32"], results["bf16"]
    assert results["fp32"] != results["bf16"]  # bf16 really ran (it changes the rounding)
    assert last32 < 0.7 * first32 and last16 < 0.7 * first16  # both learn
    assert abs(last16 - last32) / last32 < 0.2, results  # to the same error


def test_bad_precision_is_a_one_line_error(cli, tiny_data, tmp_path):
    res = cli("train", "--data", tiny_data["train"], "--precision", "fp8", "--out", tmp_path / "r")
    assert res.code == 2 and "--precision must be fp32, bf16 or auto" in res.err
    assert not (tmp_path / "r").exists()


def test_auto_precision_is_measured_where_bf16_exists(monkeypatch):
    from latentgen.model import tuning
    from latentgen.runtime import speed

    cpu = torch.device("cpu")
    assert speed.resolve_precision("bf16", cpu) == ("bf16", "asked for")
    assert speed.resolve_precision("fp32", cpu)[0] == "fp32"
    assert speed.resolve_precision("auto", cpu, lambda: ("bf16", "auto: measured")) == (
        "bf16", "auto: measured")
    # bf16 is measured on CPUs with bf16 instructions (AVX512-BF16 or AMX), never named
    for amx, avx_bf16, measured in ((True, True, True), (False, True, True),
                                    (False, False, False)):
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx_bf16: v)
        assert tuning.bf16_supported(cpu) is measured
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: True)
    assert tuning.bf16_supported(torch.device("cuda"))


def test_runs_resume_across_precisions(tiny_data, tmp_path, cli):
    out = tmp_path / "run"
    common = ["--data", tiny_data["train"], "--image-size", "16", "--channels", "1",
              "--latent-dim", "4", "--width", "8", "--langevin-steps", "2", "--device", "cpu"]
    assert cli("train", *common, "--epochs", "1", "--out", out).code == 0
    first = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    res = cli("train", "--epochs", "2", "--precision", "bf16", "--resume", "--out", out)
    assert res.code == 0, res
    second = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert second["epoch"] == 2 and set(second["generator"]) == set(first["generator"])
    assert all(second["generator"][k].dtype == v.dtype for k, v in first["generator"].items())
    res = cli("train", "--epochs", "3", "--precision", "auto", "--resume", "--out", out)
    assert res.code == 0, res
    assert torch.load(out / "checkpoints" / "last.pt", weights_only=True)["epoch"] == 3


def test_langevin_flops_are_a_forward_and_a_backward_pass():
    gen = _generator(32)
    z = torch.randn(4, 8)
    y = torch.zeros(4, *gen.data_shape)
    forward = count_flops(lambda: gen(z))
    sampler = UnadjustedLangevin(0.1)
    step = count_flops(lambda: sampler.infer(z, y, gen, GaussianObservation(0.5),
                                             StandardNormal((8,)), 1))
    # the backward pass to Z costs one forward pass's FLOPs, less the first layer's weight
    # side (not needed): between 1.5 and 2 forward passes
    assert 1.5 * forward <= step <= 2.0 * forward
    # the Metropolis-adjusted chain evaluates its start too: one pass more per chain
    adjusted = [count_flops(lambda k=k: Langevin(0.1).infer(
        z, y, gen, GaussianObservation(0.5), StandardNormal((8,)), k)) for k in (1, 3)]
    assert adjusted[0] == pytest.approx(2 * step, rel=0.05)
    assert adjusted[1] == pytest.approx(4 * step, rel=0.05)


def test_bench_prints_its_figures_as_json(cli):
    res = cli("bench", "--image-size", "16", "--channels", "1", "--batch-size", "8",
              "--langevin-steps", "2", "--repeats", "1", "--device", "cpu", "--json")
    assert res.code == 0, res
    out = json.loads(res.out)
    assert out["data_shape"] == [1, 16, 16] and out["device"] == "cpu"
    assert out["threads"] == torch.get_num_threads() and out["precision"] == "fp32"
    assert out["langevin_flops"] > 0 and out["peak_flops"] > 1e8
    assert 0 < out["langevin_fraction_of_peak"] < 2 and 0 < out["reference_ratio"] < 3
    assert out["examples_per_s"] == pytest.approx(8 / out["iteration_s"])
    res = cli("bench", "--modality", "audio", "--sample-rate", "4000", "--clip-seconds", "0.25",
              "--batch-size", "4", "--langevin-steps", "1", "--repeats", "1", "--json")
    assert res.code == 0 and json.loads(res.out)["data_shape"] == [1, 32, 26]  # log-mel
    res = cli("bench", "--modality", "audio", "--sample-rate", "4000", "--clip-seconds", "0.25",
              "--representation", "waveform", "--batch-size", "4", "--langevin-steps", "1",
              "--repeats", "1", "--json")
    assert res.code == 0 and json.loads(res.out)["data_shape"] == [1, 1000]
    res = cli("bench", "--precision", "fp16")
    assert res.code == 2 and "--precision must be fp32, bf16 or auto" in res.err
    res = cli("bench", "--image-size", "16", "--channels", "1", "--batch-size", "4",
              "--langevin-steps", "1", "--repeats", "1", "--device", "cpu", "--precision",
              "auto", "--json")
    assert res.code == 0, res
    out = json.loads(res.out)
    from latentgen.model.tuning import bf16_supported

    # auto: measured where the CPU computes in bf16, and the reason says what was measured
    if bf16_supported(torch.device("cpu")):
        assert "as fast" in out["precision_reason"]
        assert out["precision_reason"].startswith(f"auto: {out['precision']}")
    else:
        assert (out["precision"], out["precision_reason"]) == (
            "fp32", "auto: this device has no bf16 arithmetic")
    assert out["precision_asked"] == "auto" and out["peak_precision"] == out["precision"]
    # every convolution's form, measured (or read from an earlier measurement here)
    assert out["forms"] and all(f["form"] and f["layer"] for f in out["forms"])
    assert set(out["cpu"]) >= {"model", "avx512", "avx512_bf16", "amx_tile"}


@pytest.mark.slow
def test_compiled_training_keeps_checkpoint_keys_and_resumes(tiny_data, tmp_path):
    opts = {"image_size": 16, "channels": 1, "width": 8}
    plain = train(TrainConfig(data=str(tiny_data["train"]), epochs=1, latent_dim=4,
                              langevin_steps=2, device="cpu", modality_options=opts),
                  tmp_path / "plain")
    cfg = TrainConfig(data=str(tiny_data["train"]), epochs=1, latent_dim=4, langevin_steps=2,
                      device="cpu", compile=True, modality_options=opts)
    run = train(cfg, tmp_path / "compiled")
    keys = set(torch.load(run.last_checkpoint, weights_only=True)["generator"])
    assert keys == set(torch.load(plain.run.last_checkpoint, weights_only=True)["generator"])
    from tests.conftest import resume_api

    resume_api(tmp_path / "compiled", epochs=2)
    assert len(run.read_metrics()) == 2
    # and without compiling: the checkpoint is the same either way
    resume_api(tmp_path / "compiled", epochs=3, compile=False)
    assert len(run.read_metrics()) == 3


def test_compile_failures_are_one_line_errors():
    from torch._dynamo.exc import BackendCompilerFailed

    from latentgen import UserError
    from latentgen.runtime.speed import compile_errors

    with pytest.raises(UserError, match="`compile` failed .*run without `compile`"):
        with compile_errors():
            raise BackendCompilerFailed(lambda: None, RuntimeError("no C++ compiler\nmore"), None)
    with pytest.raises(ValueError):  # other errors pass through untouched
        with compile_errors():
            raise ValueError("not a compile error")
