"""Missing entries filled with the posterior mean (randomize-then-optimize draws).

For a linear generator with a Gaussian prior the perturbed fits are exact posterior samples,
so their mean and spread are checked against the closed form; then the commands that take
``--posterior-samples``.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from latentgen import StandardNormal
from latentgen.model.observation import GaussianObservation
from latentgen.model.samplers import AdaptiveMAP

from .test_samplers import Linear


def _masked_problem(d: int = 2, D: int = 10, sigma: float = 0.5):
    g = torch.Generator().manual_seed(3)
    w = torch.randn(D, d, generator=g) * 0.5
    y = torch.randn(D, generator=g)
    mask = torch.ones(D)
    mask[D // 2:] = 0  # the second half is missing
    wo = w[mask.bool()]
    cov = torch.linalg.inv(wo.T @ wo / sigma**2 + torch.eye(d))
    mean = cov @ wo.T @ y[mask.bool()] / sigma**2
    return Linear(w), y, mask, mean, cov, GaussianObservation(sigma), StandardNormal((d,))


def test_perturbed_fits_are_posterior_samples_of_a_linear_model():
    from latentgen.measures.recovery import perturbed_fits

    gen, y, mask, mean, cov, obs, prior = _masked_problem()
    n = 2000  # one draw for each of n copies of the example: n independent draws
    (z,) = list(perturbed_fits(AdaptiveMAP(0.3), gen, obs, prior, y.expand(n, -1),
                               mask.expand(n, -1), samples=1, steps=200))
    # the mean of n draws is within a few standard errors of the posterior mean
    se = (cov.diagonal() / n).sqrt()
    assert ((z.mean(0) - mean).abs() < 4 * se).all(), (z.mean(0), mean)
    # and their spread is the posterior's, not a point (MAP) or the prior's
    spread = torch.cov(z.T)
    assert torch.allclose(spread, cov, atol=0.15 * float(cov.diagonal().max()))
    assert float(cov.diagonal().max()) < 0.9  # the observed half narrows the prior


def test_draws_depend_on_seed_and_batch_only():
    from latentgen.measures.recovery import perturbed_fits

    gen, y, mask, _, _, obs, prior = _masked_problem()
    y4 = y.expand(4, -1)
    a = list(perturbed_fits(AdaptiveMAP(0.3), gen, obs, prior, y4, mask, 2, 30, seed=1))
    b = list(perturbed_fits(AdaptiveMAP(0.3), gen, obs, prior, y4, mask, 2, 30, seed=1))
    c = list(perturbed_fits(AdaptiveMAP(0.3), gen, obs, prior, y4, mask, 2, 30, seed=2))
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[0], a[1])


def test_evaluate_and_reconstruct_fill_holes_with_the_posterior_mean(trained_run, tiny_data,
                                                                   cli, tmp_path):
    runs = {}
    for k in ("0", "3"):
        res = cli("evaluate", trained_run, "--test-data", tiny_data["test"], "--mask",
                  "block:6", "--infer-steps", "10", "--posterior-samples", k,
                  "--no-reconstruction", "--measure", "reconstruction", "--json")
        assert res.code == 0, res
        runs[k] = json.loads(res.out)["test"]
        assert runs[k]["posterior_samples"] == int(k)
    assert runs["0"]["recovery_mse"] != runs["3"]["recovery_mse"]
    assert runs["3"]["recovery_mse"] > 0 and runs["3"]["mean_fill_mse"] > 0

    res = cli("reconstruct", trained_run, "--data", tiny_data["test"], "--mask", "block:6",
              "--n", "4", "--infer-steps", "10", "--posterior-samples", "2",
              "--out", tmp_path / "rec")
    assert res.code == 0, res
    assert len(list((tmp_path / "rec").glob("recovered_*.png"))) == 4


def test_negative_posterior_samples_are_refused(trained_run, cli, tmp_path):
    res = cli("reconstruct", trained_run, "--mask", "block:6", "--posterior-samples", "-1",
              "--out", tmp_path / "x")
    assert res.code == 2 and "--posterior-samples must be 0 or more" in res.err, res
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize("k", [0, 2])
def test_python_reconstruct_keeps_observed_entries(trained_run, tiny_data, k):
    import latentgen

    run = latentgen.load_run(trained_run, "cpu")
    rec = run.reconstruct(tiny_data["test"], n=3, infer_steps=5, mask="block:4",
                          posterior_samples=k)
    assert rec.recovered is not None and rec.occluded is not None
    kept = rec.occluded != 0.0  # the fill of the data range [-1, 1] is 0
    assert torch.equal(rec.recovered[kept], rec.originals[kept])
    assert rec.latents.shape[0] == 3 and np.isfinite(rec.summary()["recovery_mse"])
