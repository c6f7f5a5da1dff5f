"""The learned Gaussian prior (the banked latents' moments) and the latent-gap diagnostic."""

from __future__ import annotations

import pytest
import torch

from latentgen.measures.latent_gap import latent_gap
from latentgen.model.priors import LatentMoments, LearnedGaussian, StandardNormal
from latentgen.run import Run as TrainedRun
from latentgen.training.bank import LatentBank
from tests.conftest import resume_api
from tests.conftest import train_api as train
from tests.test_engine import _config


def _correlated(n: int, d: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    a = torch.randn(d, d, generator=g, dtype=torch.float64) / d ** 0.5 + 2 * torch.eye(d)
    mean = torch.linspace(-1, 2, d, dtype=torch.float64)
    z = torch.randn(n, d, generator=g, dtype=torch.float64) @ a.T + mean
    return z, mean, a @ a.T


def test_a_new_learned_prior_draws_what_the_standard_normal_draws():
    shape = (5, 3, 2)
    a = LearnedGaussian(shape).sample(7, generator=torch.Generator().manual_seed(3))
    b = StandardNormal(shape).sample(7, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_learn_takes_the_moments_of_the_latents():
    z, mean, cov = _correlated(20000, 4)
    prior = LearnedGaussian((4,))
    prior.learn(LatentMoments.of(z))
    draws = prior.sample(20000, generator=torch.Generator().manual_seed(1)).double()
    torch.testing.assert_close(draws.mean(0), mean, atol=0.08, rtol=0)
    torch.testing.assert_close(torch.cov(draws.T), cov, atol=0.15, rtol=0.05)


def test_log_prob_and_gradient_are_those_of_the_gaussian():
    z, _, _ = _correlated(500, 3, seed=2)
    prior = LearnedGaussian((3,))
    prior.learn(LatentMoments.of(z))
    cov = prior.scale @ prior.scale.T
    exact = torch.distributions.MultivariateNormal(prior.mean, covariance_matrix=cov)
    x = torch.randn(6, 3, dtype=torch.float64)
    torch.testing.assert_close(prior.log_prob(x), exact.log_prob(x))
    x.requires_grad_(True)
    (auto,) = torch.autograd.grad(exact.log_prob(x).sum(), x)
    torch.testing.assert_close(prior.grad_log_prob(x.detach()), auto)


def test_a_latent_field_shares_one_channel_gaussian_over_its_positions():
    prior = LearnedGaussian((2, 4, 5))
    field = torch.randn(50, 2, 4, 5) * torch.tensor([3.0, 0.5])[:, None, None] + 1.0
    prior.learn(LatentMoments.of(field))
    assert prior.mean.shape == (2,)
    torch.testing.assert_close(prior.mean, torch.ones(2, dtype=torch.float64), atol=0.1, rtol=0)
    sd = (prior.scale @ prior.scale.T).diagonal().sqrt()
    torch.testing.assert_close(sd, torch.tensor([3.0, 0.5], dtype=torch.float64), atol=0.15,
                               rtol=0.1)
    assert prior.sample(3).shape == (3, 2, 4, 5)
    assert prior.log_prob(field[:3]).shape == (3,)
    assert prior.grad_log_prob(field[:3]).shape == (3, 2, 4, 5)


def test_few_latents_give_a_covariance_shrunk_towards_the_identity():
    z, _, _ = _correlated(3, 8)  # rank 2: without shrinkage there is no Cholesky factor
    prior = LearnedGaussian((8,))
    prior.learn(LatentMoments.of(z))
    assert torch.isfinite(prior.scale).all() and (prior.scale.diagonal() > 0).all()


def test_state_round_trips_and_an_empty_state_keeps_the_standard_normal():
    z, _, _ = _correlated(100, 3)
    a = LearnedGaussian((3,))
    a.learn(LatentMoments.of(z))
    b = LearnedGaussian((3,))
    b.load_state_dict(a.state_dict())
    assert torch.equal(a.mean, b.mean) and torch.equal(a.scale, b.scale)
    c = LearnedGaussian((3,))
    c.load_state_dict({})
    assert torch.equal(c.scale, torch.eye(3, dtype=torch.float64))
    with pytest.raises(ValueError):
        c.load_state_dict({"mean": torch.zeros(4), "scale": torch.eye(4)})


def test_bank_moments_are_those_of_its_rows():
    z = torch.randn(40000, 3)
    bank = LatentBank(z.clone())
    got, want = bank.moments(), LatentMoments.of(z)
    assert got.count == want.count
    torch.testing.assert_close(got.outer, want.outer)


def test_training_with_the_learned_prior_fits_it_and_resumes_exactly(tiny_data, tmp_path):
    # a constant rate: resumed with a larger --epochs, a decaying one would stretch its fall
    train(_config(tiny_data["train"], epochs=3, prior="gaussian", lr_end=1.0),
          tmp_path / "straight")
    train(_config(tiny_data["train"], epochs=1, prior="gaussian", lr_end=1.0),
          tmp_path / "split")
    resume_api(tmp_path / "split", epochs=3)
    a = TrainedRun.load(tmp_path / "straight", "cpu")
    b = TrainedRun.load(tmp_path / "split", "cpu")
    torch.testing.assert_close(a.latents, b.latents, rtol=0, atol=1e-6)
    assert torch.equal(a.prior.mean, b.prior.mean)
    # the prior is the bank's moments (shrunk by d / (n + d)), not N(0, I) any more
    mean, _ = LatentMoments.of(a.latents).mean_cov()
    torch.testing.assert_close(a.prior.mean, mean, atol=1e-6, rtol=0)
    assert not torch.equal(a.prior.scale, torch.eye(4, dtype=torch.float64))
    gap = a.latent_gap()
    assert gap["mean_distance"] < 0.3 and 0.5 < gap["cov_eig_min"] <= gap["cov_eig_max"] < 2


def test_latent_gap_tells_a_bank_that_follows_the_prior_from_one_that_does_not():
    prior = StandardNormal((6,))
    near = latent_gap(torch.randn(800, 6), prior)
    assert near["matches"] and near["kl"] < 0.05 and near["mean_distance"] < 0.2
    far = latent_gap(2.5 * torch.randn(800, 6) + 1.0, prior)
    assert not far["matches"] and far["mmd"] > far["mmd_threshold"]
    assert far["kl"] > 3 and 4 < far["cov_eig_max"] < 9 and far["mean_distance"] > 2


def test_roles_of_latent_positions_get_a_law_each():
    # a (2, 5) latent: position 0 one role, positions 1..4 another (the dynamic generator's
    # layout in small); a longer field keeps the rule
    def roles(shape):
        r = torch.ones(shape[1], dtype=torch.long)
        r[0] = 0
        return r

    prior = LearnedGaussian((2, 5))
    prior.assign_roles(roles)
    z = torch.randn(400, 2, 5, dtype=torch.float64)
    z[:, :, 0] = z[:, :, 0] * 3.0 + 4.0
    prior.learn([LatentMoments.of(z, roles((2, 5)) == r) for r in range(2)])
    assert prior.mean.shape == (2, 2)
    torch.testing.assert_close(prior.mean[0], torch.full((2,), 4.0, dtype=torch.float64),
                               atol=0.4, rtol=0)
    torch.testing.assert_close(prior.mean[1], torch.zeros(2, dtype=torch.float64), atol=0.15,
                               rtol=0)
    # log p and its gradient: the sum of each position's Gaussian of its role
    x = torch.randn(3, 2, 5, dtype=torch.float64)
    laws = [torch.distributions.MultivariateNormal(prior.mean[r], scale_tril=prior.scale[r])
            for r in range(2)]
    exact = lambda v: sum(laws[int(r)].log_prob(v[:, :, p])  # noqa: E731
                          for p, r in enumerate(roles((2, 5))))
    torch.testing.assert_close(prior.log_prob(x), exact(x))
    x.requires_grad_(True)
    (auto,) = torch.autograd.grad(exact(x).sum(), x)
    torch.testing.assert_close(prior.grad_log_prob(x.detach()), auto)
    assert torch.allclose(prior.mode(1)[0, :, 0].double(), prior.mean[0].double())
    draws = prior.sample(2000, generator=torch.Generator().manual_seed(0))
    assert abs(float(draws[:, :, 0].mean()) - 4.0) < 0.3 and abs(float(draws[:, :, 3].mean())) < 0.2
    # a longer field: the rule asked again; the state round-trips
    longer = prior.resized((2, 9))
    assert longer.sample(2).shape == (2, 2, 9)
    assert longer.log_prob(torch.zeros(1, 2, 9)).shape == (1,)
    other = LearnedGaussian((2, 5))
    other.assign_roles(roles)
    other.load_state_dict(prior.state_dict())
    torch.testing.assert_close(other.log_prob(x.detach()), prior.log_prob(x.detach()))
    with pytest.raises(ValueError, match="roles"):
        other.load_state_dict({"mean": torch.zeros(2), "scale": torch.eye(2)})
