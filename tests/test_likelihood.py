"""The marginal log-likelihood: importance sampling around the posterior mode against the
closed form of a linear-Gaussian generator, probabilistic PCA's exact value, `evaluate --nll`."""

from __future__ import annotations

import json

import torch
from torch import nn

from latentgen.data.examples import Examples
from latentgen.measures.likelihood import importance_log_likelihood, ppca_log_likelihood
from latentgen.measures.synthesis import fit_ppca
from latentgen.model.observation import GaussianObservation
from latentgen.model.priors import LearnedGaussian, StandardNormal
from latentgen.model.samplers import AdaptiveMAP

D, Q, SIGMA = 30, 3, 0.3


class _Linear(nn.Module):
    """f(z) = W z + b: p(Y) is N(b, W W^T + sigma^2 I) in closed form."""

    latent_shape = (Q,)
    data_shape = (1, D)

    def __init__(self, w: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.w, self.b = w, b

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.w.T + self.b).view(-1, 1, D)


class _Model:
    def __init__(self, generator: nn.Module) -> None:
        self.generator = generator
        self.prior = StandardNormal((Q,))
        self.observation = GaussianObservation(SIGMA)

    def sampler(self, name: str | None = None, step_size: float | None = None) -> AdaptiveMAP:
        return AdaptiveMAP(0.1)


def _linear_gaussian(n: int = 20):
    g = torch.Generator().manual_seed(0)
    w, b = torch.randn(D, Q, generator=g) * 0.8, torch.randn(D, generator=g) * 0.1
    cov = w @ w.T + SIGMA**2 * torch.eye(D)
    y = torch.distributions.MultivariateNormal(b, cov).sample((n,))
    exact = torch.distributions.MultivariateNormal(b.double(), cov.double()).log_prob(
        y.double())
    return _Model(_Linear(w, b)), Examples(y.view(n, 1, D), lambda t: t, "linear"), exact


def test_importance_sampling_matches_the_closed_form_of_a_linear_gaussian_generator():
    model, data, exact = _linear_gaussian()
    got = importance_log_likelihood(model, data, torch.device("cpu"), samples=64)  # type: ignore[arg-type]
    assert (got["log_p"] - exact).abs().max() < 0.5
    assert got["se"].max() < 0.1


def test_importance_sampling_matches_the_closed_form_under_a_learned_gaussian_prior():
    """With Z ~ N(mu, S), p(Y) is N(W mu + b, W S W^T + sigma^2 I): the proposal takes the
    prior's curvature S^-1, and the estimate still lands on the closed form."""
    g = torch.Generator().manual_seed(3)
    w, b = torch.randn(D, Q, generator=g) * 0.8, torch.randn(D, generator=g) * 0.1
    prior = LearnedGaussian((Q,))
    scale = torch.tensor([[2.0, 0, 0], [0.5, 1.5, 0], [0, -0.3, 0.7]], dtype=torch.float64)
    mean = torch.tensor([1.0, -0.5, 0.2], dtype=torch.float64)
    prior.load_state_dict({"mean": mean, "scale": scale})
    cov = (w.double() @ scale) @ (w.double() @ scale).T + SIGMA**2 * torch.eye(D)
    dist = torch.distributions.MultivariateNormal(w.double() @ mean + b.double(), cov)
    y = dist.sample((20,))
    model = _Model(_Linear(w, b))
    model.prior = prior  # type: ignore[assignment]
    data = Examples(y.float().view(20, 1, D), lambda t: t, "linear")
    got = importance_log_likelihood(model, data, torch.device("cpu"), samples=64)  # type: ignore[arg-type]
    assert (got["log_p"] - dist.log_prob(y)).abs().max() < 0.5
    assert got["se"].max() < 0.1


def test_probabilistic_pca_log_likelihood_is_exact():
    g = torch.Generator().manual_seed(1)
    y = torch.randn(500, 3, generator=g) @ torch.randn(3, 12, generator=g) \
        + 0.2 * torch.randn(500, 12, generator=g)
    data = Examples(y.view(500, 1, 12), lambda t: t, "gaussian")
    ppca = fit_ppca(data, 3, torch.device("cpu"))
    comp, lam = ppca.components.double(), ppca.variances.double()
    cov = (comp.T * lam) @ comp + ppca.noise * (torch.eye(12, dtype=torch.float64)
                                                - comp.T @ comp)
    exact = torch.distributions.MultivariateNormal(ppca.mean.double(), cov).log_prob(
        y.double())
    torch.testing.assert_close(ppca_log_likelihood(ppca, data, torch.device("cpu")), exact)


def test_evaluate_nll_reports_each_held_out_set(trained_run, tiny_data, cli):
    res = cli("evaluate", trained_run, "--nll", "--nll-samples", "8", "--test-data",
              tiny_data["test"], "--negative-data", tiny_data["negative"], "--infer-steps", "30",
              "--no-reconstruction", "--json")
    assert res.code == 0, res
    found = json.loads(res.out)
    assert sorted(found) == ["latents", "nll"]
    for name in ("test", "negative"):
        r = found["nll"][name]
        for key in ("nll", "nll_se", "bits_per_dim", "bits_per_dim_se", "pca_nll",
                    "pca_bits_per_dim", "n", "samples"):
            assert key in r, key
    assert found["nll"]["test"]["nll"] < found["nll"]["negative"]["nll"]


def test_nll_without_held_out_data_is_one_line(trained_run, cli):
    res = cli("evaluate", trained_run, "--nll")
    assert res.code == 2 and "--nll needs held-out data" in res.err, res
