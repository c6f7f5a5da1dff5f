"""Samplers against a linear-Gaussian model whose posterior is known in closed form.

y = W z + eps, z ~ N(0, I), eps ~ N(0, sigma^2 I):
    posterior covariance  S = (W^T W / sigma^2 + I)^-1
    posterior mean (MAP)  m = S W^T y / sigma^2 = (W^T W + sigma^2 I)^-1 W^T y
"""

from __future__ import annotations

import torch
from torch import nn

from latentgen import GradientDescent, Langevin, StandardNormal
from latentgen.model.observation import GaussianObservation
from latentgen.model.samplers import AdaptiveMAP, UnadjustedLangevin


class Linear(nn.Module):
    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z @ self.w.T


def _problem(d: int = 3, D: int = 12, sigma: float = 0.5):
    g = torch.Generator().manual_seed(1)
    w = torch.randn(D, d, generator=g, dtype=torch.float64) * 0.6
    y = torch.randn(D, generator=g, dtype=torch.float64)
    eye = torch.eye(d, dtype=torch.float64)
    cov = torch.linalg.inv(w.T @ w / sigma**2 + eye)
    mean = torch.linalg.solve(w.T @ w + sigma**2 * eye, w.T @ y)
    return Linear(w), y, mean, cov, GaussianObservation(sigma), StandardNormal((d,))


def test_gradient_descent_finds_the_map():
    gen, y, mean, _, obs, prior = _problem()
    z0 = torch.zeros(4, 3, dtype=torch.float64)
    z = GradientDescent(step_size=0.2).infer(z0, y.expand(4, -1), gen, obs, prior, steps=500)
    torch.testing.assert_close(z, mean.expand(4, -1), atol=1e-6, rtol=0)


def test_adaptive_map_converges_where_fixed_steps_diverge():
    gen, y, mean, _, obs, prior = _problem(D=400)  # large curvature: many data entries
    z0 = torch.zeros(4, 3, dtype=torch.float64)
    fixed = GradientDescent(step_size=0.3).infer(z0, y.expand(4, -1), gen, obs, prior, steps=50)
    assert not torch.allclose(fixed, mean.expand(4, -1), atol=1e-2)  # oscillates / diverges
    z = AdaptiveMAP(step_size=0.3).infer(z0, y.expand(4, -1), gen, obs, prior, steps=300)
    torch.testing.assert_close(z, mean.expand(4, -1), atol=1e-6, rtol=0)


def test_annealed_map_still_finds_the_map():
    gen, y, mean, _, obs, prior = _problem(D=400)
    z0 = torch.zeros(4, 3, dtype=torch.float64)
    z = AdaptiveMAP(step_size=0.3, anneal=10.0).infer(z0, y.expand(4, -1), gen, obs, prior,
                                                       steps=300)
    torch.testing.assert_close(z, mean.expand(4, -1), atol=1e-6, rtol=0)


def test_annealing_finds_the_better_of_two_optima():
    """A one-dimensional latent whose posterior has two optima: at the final sigma descent from
    z = -0.5 climbs into the poorer one (z = 0.80); annealed, it reaches the better (z = 0.31)."""

    class Wiggle(nn.Module):
        def forward(self, z: torch.Tensor) -> torch.Tensor:
            return torch.sin(3 * z) + 0.3 * z

    gen, obs, prior = Wiggle(), GaussianObservation(0.2), StandardNormal((1,))
    y = torch.tensor([[0.9]], dtype=torch.float64)

    def energy(z: torch.Tensor) -> float:
        return float(obs.energy(y, gen(z)) - prior.log_prob(z))

    z0 = torch.full((1, 1), -0.5, dtype=torch.float64)
    plain = AdaptiveMAP(step_size=0.1).infer(z0, y, gen, obs, prior, steps=400)
    annealed = AdaptiveMAP(step_size=0.1, anneal=10.0).infer(z0, y, gen, obs, prior, steps=400)
    assert abs(float(plain) - 0.80) < 0.02 and abs(float(annealed) - 0.31) < 0.02
    assert energy(annealed) < energy(plain) - 0.2


def test_langevin_matches_posterior_mean_and_covariance():
    gen, y, mean, cov, obs, prior = _problem()
    n = 4000
    z0 = torch.zeros(n, 3, dtype=torch.float64)
    rng = torch.Generator().manual_seed(2)
    z = Langevin(step_size=0.05).infer(z0, y.expand(n, -1), gen, obs, prior, steps=600, rng=rng)
    emp_cov = torch.cov(z.T)
    # Monte-Carlo error of the mean ~ sqrt(diag(cov) / n); discretisation bias O(delta^2)
    tol = 4 * (cov.diagonal() / n).sqrt()
    assert ((z.mean(0) - mean).abs() < tol + 0.01).all(), (z.mean(0), mean)
    rel = (emp_cov - cov).norm() / cov.norm()
    assert rel < 0.1, f"covariance off by {rel:.3f}:\n{emp_cov}\n{cov}"


def test_langevin_stays_on_the_posterior_where_the_unadjusted_update_diverges():
    # many data entries: step x curvature far above 2 at the training step size, the case of
    # a generator sharpened by training (the error jumps of the embedded faces)
    gen, y, mean, cov, obs, prior = _problem(D=400)
    n = 256
    z0 = torch.zeros(n, 3, dtype=torch.float64)
    plain = UnadjustedLangevin(step_size=0.3).infer(z0, y.expand(n, -1), gen, obs, prior,
                                                    steps=20, rng=torch.Generator().manual_seed(3))
    assert not torch.isfinite(plain).all() or plain.abs().max() > 1e3  # flung away
    z = Langevin(step_size=0.3).infer(z0, y.expand(n, -1), gen, obs, prior, steps=200,
                                      rng=torch.Generator().manual_seed(3))
    assert torch.isfinite(z).all()
    spread = cov.diagonal().sqrt()
    assert ((z.mean(0) - mean).abs() < 4 * spread / n**0.5 + 0.05 * spread).all(), (
        z.mean(0), mean)
    assert (z.std(0) < 2 * spread).all() and (z.std(0) > 0.5 * spread).all()


def test_langevin_accepts_nearly_every_move_of_a_stable_step_and_rejects_unstable_ones():
    # where the plain update is stable the adjusted one is (almost) the plain one
    gen, y, *_, obs, prior = _problem()
    z0 = torch.zeros(64, 3, dtype=torch.float64)
    sampler = Langevin(0.05)
    sampler.infer(z0, y.expand(64, -1), gen, obs, prior, steps=10,
                  rng=torch.Generator().manual_seed(4))
    assert sampler.acceptance > 0.95
    sampler = Langevin(0.3)
    big, y_big, *_, obs_big, prior_big = _problem(D=400)
    sampler.infer(z0, y_big.expand(64, -1), big, obs_big, prior_big, steps=10,
                  rng=torch.Generator().manual_seed(4))
    assert sampler.acceptance < 0.9  # the unstable step is rejected, then halved


def test_inference_leaves_parameters_untouched_and_without_grad():
    gen, y, *_, obs, prior = _problem()
    before = gen.w.detach().clone()
    GradientDescent(0.1).infer(torch.zeros(2, 3, dtype=torch.float64), y.expand(2, -1), gen, obs,
                               prior, steps=5)
    assert gen.w.grad is None
    assert gen.w.requires_grad
    assert torch.equal(gen.w.detach(), before)


def test_energy_sums_over_dimensions_and_respects_mask():
    obs = GaussianObservation(sigma=0.5)
    y = torch.ones(2, 1, 4, 4)
    x = torch.zeros(2, 1, 4, 4)
    assert torch.allclose(obs.energy(y, x), torch.full((2,), 16 / (2 * 0.25)))
    mask = torch.zeros(2, 1, 4, 4)
    mask[:, :, :2] = 1
    assert torch.allclose(obs.energy(y, x, mask), torch.full((2,), 8 / (2 * 0.25)))
    assert torch.equal(obs.energy(y, y.clone()), torch.zeros(2))
