"""The latent-space energy-based prior (``--prior ebm``): what it learns, its draws, its place
in checkpoints (resume), divergence, and every modality training with it."""

from __future__ import annotations

import csv
import json

import pytest
import torch
from torch import nn

import latentgen
from latentgen.assembly.rundir import RunDir
from latentgen.data.examples import Examples
from latentgen.errors import UserError
from latentgen.measures.anomaly import DEFAULT_SCORE
from latentgen.measures.latent_gap import _mmd
from latentgen.model.observation import GaussianObservation
from latentgen.model.priors import PriorSettings, StandardNormal, make_prior
from latentgen.model.samplers import Langevin
from latentgen.plugins.hookspecs import hookimpl
from latentgen.plugins.registry import get_registry, register_plugin, unregister_plugin
from latentgen.training.bank import LatentBank
from latentgen.training.engine import ABPEngine
from latentgen_ebm import EnergyPrior
from tests.conftest import TINY_TRAIN, resume_api
from tests.conftest import train_api as train
from tests.test_audio import TINY_AUDIO
from tests.test_engine import _config
from tests.test_video import TINY_VIDEO


# -- what it learns ---------------------------------------------------------------------------
class Identity(nn.Module):
    """f(Z) = Z on 2-D latents; the parameter only gives the optimizer something to hold
    (its gradient is zero, so Adam never moves it)."""

    latent_shape = (2,)
    data_shape = (2,)

    def __init__(self) -> None:
        super().__init__()
        self.unused = nn.Parameter(torch.zeros(1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + 0 * self.unused


def _mixture(n: int, seed: int) -> torch.Tensor:
    """Four Gaussians (sd 0.3) at (+-1.5, +-1.5): far from N(0, I), which has one mode."""
    g = torch.Generator().manual_seed(seed)
    centres = torch.tensor([[1.5, 1.5], [-1.5, 1.5], [1.5, -1.5], [-1.5, -1.5]])
    return centres[torch.randint(0, 4, (n,), generator=g)] + 0.3 * torch.randn(n, 2, generator=g)


def test_the_learned_prior_draws_the_mixture_the_latents_come_from():
    """Data Y = Z + N(0, 0.3^2) with Z from a mixture, generator the identity: the maximum-
    likelihood prior is the mixture itself. The kernel two-sample statistic (unbiased MMD^2,
    Gaussian kernel) of 1,000 prior draws against 1,000 fresh mixture draws must fall below
    the 95th percentile of the same statistic over random relabellings of the two sets, i.e.
    within the noise of two samples of one distribution; N(0, I) draws must not."""
    g = torch.Generator().manual_seed(0)
    z_true = _mixture(1000, 0)
    y = z_true + 0.3 * torch.randn(1000, 2, generator=g)
    data = Examples(y, lambda b: b.float(), "mixture")
    prior = EnergyPrior((2,), PriorSettings(steps=60, step_size=0.4, width=64, depth=2))
    bank = LatentBank.from_prior(StandardNormal((2,)), len(y), seed=0)
    # the published posterior chain (step 0.1 at sigma 0.3); the rate falls to a tenth over
    # the run, which settles the energy (at a constant rate it wanders about the answer)
    engine = ABPEngine(Identity(), prior, Langevin(0.1), GaussianObservation(0.3), bank,
                       langevin_steps=20, batch_size=100, lr=1e-3, prior_lr=1e-3, seed=0,
                       lr_end=0.1, total_steps=300)
    for epoch in range(1, 31):
        engine.run_epoch(data, epoch)
    reference = _mixture(1000, 1).double()
    draws = prior.sample(1000, generator=torch.Generator().manual_seed(2)).double()
    mmd, threshold = _mmd(draws, reference, seed=0)
    assert mmd < threshold, (mmd, threshold)
    normal = StandardNormal((2,)).sample(1000, generator=torch.Generator().manual_seed(2))
    mmd_normal, threshold_normal = _mmd(normal.double(), reference, seed=0)
    assert mmd_normal > 10 * threshold_normal, (mmd_normal, threshold_normal)
    # the modes are all there: each quadrant holds about a quarter of the draws
    quadrants = torch.bincount((draws[:, 0] > 0).long() * 2 + (draws[:, 1] > 0).long(), minlength=4)
    assert quadrants.min() > 180, quadrants


# -- the prior itself -------------------------------------------------------------------------
def test_draws_are_chains_from_the_standard_normal_and_follow_their_generator():
    settings = PriorSettings(steps=0, step_size=0.4, width=8, depth=1)
    prior = EnergyPrior((3, 2), settings)
    a = prior.sample(5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, StandardNormal((3, 2)).sample(5, torch.Generator().manual_seed(4)))
    prior = EnergyPrior((3, 2), PriorSettings(steps=10, step_size=0.4, width=8, depth=1))
    b = prior.sample(5, generator=torch.Generator().manual_seed(4))
    c = prior.sample(5, generator=torch.Generator().manual_seed(4))
    assert torch.equal(b, c) and not torch.equal(a, b)
    assert b.shape == (5, 3, 2) and torch.isfinite(b).all()


def test_energy_log_prob_and_gradient():
    torch.manual_seed(0)
    prior = EnergyPrior((3, 4, 5), PriorSettings(width=16, depth=2))
    z = torch.randn(6, 3, 4, 5)
    # a field is scored position by position with one E, the energies summed
    per_position = prior.net(z.permute(0, 2, 3, 1).reshape(-1, 3)).reshape(6, 20).sum(1)
    torch.testing.assert_close(prior.energy(z), per_position)
    expected = -per_position - 0.5 * z.flatten(1).pow(2).sum(1) - 30 * torch.log(
        torch.tensor(2 * torch.pi))
    torch.testing.assert_close(prior.log_prob(z), expected)
    zz = z.clone().requires_grad_(True)
    (auto,) = torch.autograd.grad(prior.log_prob(zz).sum(), zz)
    torch.testing.assert_close(prior.grad_log_prob(z), auto)
    assert not prior.normalized


def test_state_dict_round_trip_and_refusals():
    a = EnergyPrior((4,), PriorSettings(width=8, depth=2))
    b = EnergyPrior((4,), PriorSettings(width=8, depth=2))
    b.load_state_dict(a.state_dict())
    z = torch.randn(3, 4)
    assert torch.equal(a.energy(z), b.energy(z))
    with pytest.raises(ValueError, match="not an energy network's"):
        b.load_state_dict({"mean": torch.zeros(4)})
    with pytest.raises(RuntimeError):
        EnergyPrior((4,), PriorSettings(width=16, depth=2)).load_state_dict(a.state_dict())


def test_factories_get_the_settings_when_they_ask_for_them():
    settings = PriorSettings(steps=7, width=12, depth=3)
    ebm = make_prior(get_registry().prior("ebm"), (5,), settings)
    assert isinstance(ebm, EnergyPrior) and ebm.settings == settings
    assert len([m for m in ebm.net if isinstance(m, nn.Linear)]) == 4  # type: ignore[union-attr]
    assert isinstance(make_prior(StandardNormal, (5,), settings), StandardNormal)
    with pytest.raises(TypeError, match="not a latentgen.Prior"):
        make_prior(lambda shape: object(), (5,), settings)


# -- in training ------------------------------------------------------------------------------
EBM = dict(prior="ebm", prior_steps=10, prior_width=16)


def test_resume_with_the_ebm_prior_equals_an_uninterrupted_run(tiny_data, tmp_path):
    whole = train(_config(tiny_data["train"], epochs=3, **EBM), tmp_path / "whole").path
    part = train(_config(tiny_data["train"], epochs=3, max_steps=6, **EBM), tmp_path / "part").path
    resume_api(part, max_steps=None)
    a, b = RunDir(whole).load_checkpoint(), RunDir(part).load_checkpoint()
    assert a["step"] == b["step"] == 12
    for key in ("generator", "prior"):
        assert a[key].keys() == b[key].keys() and a[key]
        for k in a[key]:
            assert torch.equal(a[key][k], b[key][k]), (key, k)
    assert torch.equal(a["latents"], b["latents"])
    sa, sb = a["prior_optimizer"]["state"], b["prior_optimizer"]["state"]
    assert sa.keys() == sb.keys() and sa
    for i in sa:
        for k in ("exp_avg", "exp_avg_sq"):
            assert torch.equal(sa[i][k], sb[i][k])
    rows = list(csv.DictReader(open(whole / "metrics.csv")))
    assert all(r["prior_loss"] for r in rows)


class ExplodingEnergy(EnergyPrior):
    """An energy that runs away on its 6th learning step (inside epoch 2 of 4 batches)."""

    calls = 0

    def contrast(self, z_posterior, z_prior, net=None):
        ExplodingEnergy.calls += 1
        terms = super().contrast(z_posterior, z_prior, net)
        return terms * 1e9 if ExplodingEnergy.calls >= 6 else terms


class ExplodingPlugin:
    @hookimpl
    def register_priors(self, register):
        register("exploding", ExplodingEnergy)


def test_a_diverging_prior_stops_with_one_line_and_keeps_the_last_checkpoint(tiny_data,
                                                                             tmp_path):
    register_plugin(ExplodingPlugin(), "exploding-prior")
    ExplodingEnergy.calls = 0
    try:
        with pytest.raises(UserError) as info:
            train(_config(tiny_data["train"], epochs=3, prior="exploding", prior_steps=5,
                          prior_width=8), tmp_path / "run")
    finally:
        unregister_plugin("exploding-prior")
    said = str(info.value)
    assert "\n" not in said and "prior diverged in epoch 2" in said and "`prior_lr`" in said
    assert "last.pt" in said
    state = RunDir(tmp_path / "run").load_checkpoint()
    assert state["epoch"] == 1 and all(torch.isfinite(v).all() for v in state["prior"].values())


def test_a_steep_step_size_is_caught_before_numbers_run_out(tiny_data, tmp_path, cli):
    res = cli("train", "--data", tiny_data["train"], "--out", tmp_path / "run", *TINY_TRAIN,
              "--epochs", "2", "--prior", "ebm", "--prior-step-size", "50", "--prior-steps",
              "20")
    assert res.code != 0 and "prior diverged in epoch 1" in res.err
    assert "no checkpoint was written" in res.err
    assert len(res.err.strip().splitlines()) == 1
    assert not RunDir(tmp_path / "run").holds_run()  # config.toml only: trains afresh


@pytest.mark.parametrize("options", [
    [*TINY_TRAIN, "--modality", "image", "--mask", "block:6"],
    [*TINY_AUDIO, "--latent-field"],
    [*TINY_VIDEO],
], ids=["image-masked", "audio-field", "video"])
def test_every_modality_trains_and_synthesizes_with_the_ebm_prior(options, tmp_path, cli):
    out = tmp_path / "run"
    res = cli("train", "--out", out, *options, "--prior", "ebm", "--prior-steps", "5",
              "--prior-width", "16", "--epochs", "1", "--max-steps", "2")
    assert res.code == 0, res
    state = RunDir(out).load_checkpoint()
    assert state["prior"] and "prior_optimizer" in state
    run = latentgen.load_run(out, "cpu")
    x = run.synthesize(3)
    assert x.shape == (3, *run.generator.data_shape) and torch.isfinite(x).all()
    res = cli("synthesize", out, "--n", "2", "--out", tmp_path / "samples")
    assert res.code == 0, res


# -- anomaly scores ---------------------------------------------------------------------------
def test_score_writes_one_row_per_example_and_evaluate_reports_detection(trained_run,
                                                                          tiny_data, tmp_path,
                                                                          cli):
    out = tmp_path / "scores.csv"
    res = cli("score", trained_run, "--data", tiny_data["negative"], "--out", out)
    assert res.code == 0, res
    rows = list(csv.DictReader(open(out)))
    n = len(latentgen.load_run(trained_run, "cpu").examples(str(tiny_data["negative"])))
    assert len(rows) == n
    assert list(rows[0]) == ["index", "score", "joint", "reconstruction", "prior", "norm",
                             "mse", "pca_residual"]
    for r in rows:
        assert float(r["joint"]) == pytest.approx(float(r["reconstruction"]) + float(r["prior"]))
        assert float(r["score"]) == float(r[DEFAULT_SCORE])
    res = cli("score", trained_run, "--data", tiny_data["negative"], "--out", out,
              "--score", "reconstruction")
    assert res.code == 0 and "reconstruction: ||Y - f(Z*)||^2" in res.out, res
    assert [r["score"] for r in csv.DictReader(open(out))] == [r["reconstruction"] for r in rows]
    res = cli("evaluate", trained_run, "--test-data", tiny_data["test"], "--negative-data",
              tiny_data["negative"], "--json")
    assert res.code == 0, res
    found = json.loads(res.out)["anomaly"]
    for key in ("auroc", "auprc", "pca_auroc", "pca_auprc", "chance_auprc"):
        assert 0.0 <= found[key] <= 1.0
    # faces against stripes: both scores tell them apart
    assert found["auroc"] > 0.9 and found["pca_auroc"] > 0.9
    res = cli("evaluate", trained_run, "--test-data", tiny_data["test"], "--negative-data",
              tiny_data["negative"])
    assert res.code == 0 and "anomaly detection" in res.out and "PCA residual" in res.out


def test_score_refusals_leave_no_file(trained_run, tmp_path, cli):
    out = tmp_path / "scores.csv"
    res = cli("score", trained_run, "--data", tmp_path / "missing", "--out", out)
    assert res.code != 0 and len(res.err.strip().splitlines()) == 1 and "missing" in res.err
    assert not out.exists()
    res = cli("score", trained_run, "--out", tmp_path)
    assert res.code != 0 and "is a folder" in res.err
    res = cli("score", trained_run, "--out", out, "--score", "energy")
    assert res.code != 0 and len(res.err.strip().splitlines()) == 1, res
    assert "--score must be one of joint, prior, reconstruction, norm" in res.err
    assert not out.exists()


def test_the_ebm_prior_has_no_likelihood_to_offer(tiny_data, tmp_path, cli):
    out = tmp_path / "run"
    assert cli("train", "--data", tiny_data["train"], "--out", out, *TINY_TRAIN, "--epochs",
               "1", "--prior", "ebm", "--prior-steps", "5").code == 0
    res = cli("evaluate", out, "--test-data", tiny_data["test"], "--nll")
    assert res.code != 0 and "normalised density" in res.err
    assert len(res.err.strip().splitlines()) == 1


def test_auroc_and_average_precision_on_cases_worked_by_hand():
    from latentgen.measures.anomaly import auroc, average_precision, detection

    scores, labels = [0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]
    # pairs (anomaly above normal): 0.35 > 0.1, 0.8 > both -> 3 of 4
    assert auroc(scores, labels) == pytest.approx(0.75)
    # ranked 0.8 (1), 0.4 (0), 0.35 (1): precision 1 at recall 0.5, 2/3 at recall 1
    assert average_precision(scores, labels) == pytest.approx(0.5 * 1 + 0.5 * 2 / 3)
    # ties count one half, and share a threshold
    assert auroc([1, 1, 0], [1, 0, 0]) == pytest.approx(0.75)
    assert average_precision([1, 1, 0], [1, 0, 0]) == pytest.approx(0.5)
    assert detection([0.0, 0.1], [0.2, 0.3]) == {"auroc": 1.0, "auprc": 1.0}
    with pytest.raises(ValueError, match="both labels"):
        auroc([0.1, 0.2], [1, 1])


def test_the_documented_prior_trains_as_a_plugin(tiny_data, tmp_path):
    """docs/plugins.md's Laplace prior, registered in-process, trains and synthesizes."""
    import re
    from pathlib import Path

    text = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text(encoding="utf-8")
    section = text[text.index("### Writing a prior"):]
    code = re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]
    namespace: dict = {}
    exec(compile(code, "docs/plugins.md", "exec"), namespace)  # noqa: S102

    class Plugin:
        register_priors = staticmethod(namespace["register_priors"])

    register_plugin(Plugin(), "laplace-prior")
    try:
        run = train(_config(tiny_data["train"], epochs=1, prior="laplace"), tmp_path / "run")
        z = run.prior.sample(2000, generator=torch.Generator().manual_seed(0))
        assert float(z.abs().mean()) == pytest.approx(1.0, abs=0.05)  # E|Z| of Laplace(0, 1)
        assert torch.isfinite(run.synthesize(4)).all()
    finally:
        unregister_plugin("laplace-prior")


def test_a_process_without_rows_of_a_batch_takes_the_prior_step_too():
    """Under torchrun a small last batch can leave a process no examples: it still draws the
    batch's prior latents (and checks them whole) and contributes nothing to the sum."""
    prior = EnergyPrior((2,), PriorSettings(steps=5, width=8, depth=1))
    bank = LatentBank.from_prior(StandardNormal((2,)), 4, seed=0)
    engine = ABPEngine(Identity(), prior, Langevin(0.1), GaussianObservation(0.3), bank,
                       langevin_steps=2, batch_size=4, lr=1e-3, seed=0)
    before = [p.detach().clone() for p in prior.net.parameters()]
    loss = engine._learn_prior(torch.zeros(0, 2), epoch=1, batch=0, size=4,
                               rows=torch.zeros(0, dtype=torch.long))
    assert loss == 0.0
    # Adam with a zero gradient leaves the weights where they were
    assert all(torch.equal(a, b) for a, b in zip(before, prior.net.parameters()))
