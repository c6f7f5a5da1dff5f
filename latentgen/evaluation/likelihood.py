"""The marginal log-likelihood log p(Y) = log ∫ p(Y | Z) p(Z) dZ of held-out examples, by
importance sampling, beside probabilistic PCA's exact one at the same number of latent numbers.

For each example the proposal is a Gaussian around its posterior mode Z* (MAP inference from
the prior's mode): the Laplace approximation N(Z*, H^-1), H = J^T J / sigma^2 + P with J the
generator's Jacobian at Z* and P the prior's curvature there, -d^2 log p(Z) / dZ^2 (I for
N(0, I)) (Gauss-Newton for the likelihood;
the estimate stays unbiased in p(Y) whatever the prior, only its variance depends on the fit).
With K proposal draws Z_k and weights w_k = p(Y | Z_k) p(Z_k) / q(Z_k),

    log p(Y) ~ log (1/K sum_k w_k),

whose standard error (delta method) is std(w) / (sqrt(K) mean(w)). Densities are over the
model-space data (e.g. pixels in [-1, 1]); bits per dimension divide -log p(Y) by D log 2.
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor

from latentgen.data.examples import Examples
from latentgen.evaluation.defaults import DEFAULT_NLL_SAMPLES
from latentgen.evaluation.inference import infer_latents
from latentgen.runtime.seeding import derived_generator

if TYPE_CHECKING:
    from latentgen.evaluation.synthesis import PPCA
    from latentgen.training.assembly import Model

#: proposal draws per example
DEFAULT_SAMPLES = DEFAULT_NLL_SAMPLES


def _jacobians(model: Model, z: Tensor) -> Tensor:
    """d f(z) / d z for each latent of ``z`` (B, *latent_shape): (B, D, q)."""
    from torch.func import jacfwd, vmap

    shape = tuple(z.shape[1:])

    def f(flat: Tensor) -> Tensor:
        return model.generator(flat.view(1, *shape)).flatten()

    with warnings.catch_warnings():
        # forward-mode AD loads torch's own scripted decompositions the first time, which
        # warns about torch.jit.script: PyTorch's matter, not the user's
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*",
                                category=FutureWarning)
        return vmap(jacfwd(f))(z.flatten(1))


def _prior_curvature(model: Model, z: Tensor) -> Tensor:
    """-d^2 log p(z) / dz^2 at each latent of ``z``: (B, q, q)."""
    from torch.func import jacfwd, vmap

    shape = tuple(z.shape[1:])

    def minus_grad(flat: Tensor) -> Tensor:
        return -model.prior.grad_log_prob(flat.view(1, *shape)).flatten()

    return vmap(jacfwd(minus_grad))(z.flatten(1))


@torch.no_grad()
def importance_log_likelihood(model: Model, data: Examples, device: torch.device,
                              samples: int = DEFAULT_SAMPLES, steps: int = 300,
                              batch_size: int = 16, seed: int = 0) -> dict[str, Tensor]:
    """Per example: ``log_p`` (nats) and its standard error ``se``."""
    sigma = model.observation.sigma
    was_training = model.generator.training
    model.generator.eval()
    modes = infer_latents(model, device, data, steps=steps)
    log_ps, ses = [], []
    for b, index in enumerate(torch.arange(len(data)).split(batch_size)):
        y = data.get(index, device).flatten(1).double()
        z_star = modes[index.to(modes.device)].to(device)
        with torch.enable_grad():
            jac = _jacobians(model, z_star).double()
        q = jac.shape[-1]
        with torch.enable_grad():
            curvature = _prior_curvature(model, z_star).double()
        hess = jac.transpose(1, 2) @ jac / sigma**2 + curvature
        chol = torch.linalg.cholesky(hess)  # H = L L^T; draws z* + L^-T e have covariance H^-1
        g = derived_generator(seed, "likelihood", b)
        eps = torch.randn(len(index), samples, q, generator=g, dtype=torch.float64).to(device)
        offsets = torch.linalg.solve_triangular(chol.transpose(1, 2), eps.transpose(1, 2),
                                                upper=True).transpose(1, 2)
        z = z_star.flatten(1).double()[:, None] + offsets                   # (B, K, q)
        log_q = (-0.5 * eps.pow(2).sum(-1) - 0.5 * q * math.log(2 * math.pi)
                 + torch.log(torch.diagonal(chol, dim1=1, dim2=2)).sum(-1, keepdim=True))
        shape = (len(index) * samples, *z_star.shape[1:])
        x = model.generator(z.float().view(shape)).flatten(1).double()
        x = x.view(len(index), samples, -1)
        dim = x.shape[-1]
        log_lik = (-(y[:, None] - x).pow(2).sum(-1) / (2 * sigma**2)
                   - 0.5 * dim * math.log(2 * math.pi * sigma**2))
        log_prior = model.prior.log_prob(z.float().view(shape)).double().view(len(index), -1)
        log_w = log_lik + log_prior - log_q
        log_p = torch.logsumexp(log_w, dim=1) - math.log(samples)
        w = torch.exp(log_w - log_w.max(dim=1, keepdim=True).values)
        ses.append((w.std(dim=1) / (math.sqrt(samples) * w.mean(dim=1))).cpu())
        log_ps.append(log_p.cpu())
    model.generator.train(was_training)
    return {"log_p": torch.cat(log_ps), "se": torch.cat(ses)}


@torch.no_grad()
def ppca_log_likelihood(ppca: PPCA, data: Examples, device: torch.device,
                        batch_size: int = 512) -> Tensor:
    """Exact log N(y; mean, W W^T + sigma^2 I) per example (nats), by the Woodbury identity
    in the components' basis: C = U diag(lambda) U^T + sigma^2 (I - U U^T)."""
    mean, comp = ppca.mean.to(device).double(), ppca.components.to(device).double()
    lam = torch.maximum(ppca.variances.to(device).double(),
                        torch.tensor(ppca.noise, dtype=torch.float64, device=device))
    noise = max(ppca.noise, 1e-12)
    dim, k = comp.shape[1], comp.shape[0]
    log_det = torch.log(lam).sum() + (dim - k) * math.log(noise)
    out = []
    for index in torch.arange(len(data)).split(batch_size):
        x = data.get(index, device).flatten(1).double() - mean
        proj = x @ comp.T
        quad = (proj.pow(2) / lam).sum(1) + (x.pow(2).sum(1) - proj.pow(2).sum(1)) / noise
        out.append((-0.5 * (quad + log_det + dim * math.log(2 * math.pi))).cpu())
    return torch.cat(out)


def likelihood_summary(model: Model, ppca: PPCA, data: Examples, device: torch.device,
                       samples: int = DEFAULT_SAMPLES, steps: int = 300, seed: int = 0
                       ) -> dict[str, Any]:
    """What `evaluate --nll` reports for one set: mean -log p(Y) in nats per example and bits
    per dimension, with standard errors, beside probabilistic PCA's exact figure."""
    found = importance_log_likelihood(model, data, device, samples, steps, seed=seed)
    exact = ppca_log_likelihood(ppca, data, device)
    n, dim = len(data), int(math.prod(data.example_shape))
    nll = -found["log_p"]
    # across examples (the spread of the per-example values) and within (importance sampling)
    se = math.sqrt(float(nll.var()) / n + float(found["se"].pow(2).mean()) / n) if n > 1 \
        else float(found["se"][0])
    per_dim = dim * math.log(2)
    return {"nll": float(nll.mean()), "nll_se": se, "bits_per_dim": float(nll.mean()) / per_dim,
            "bits_per_dim_se": se / per_dim, "pca_nll": float(-exact.mean()),
            "pca_bits_per_dim": float(-exact.mean()) / per_dim, "n": n, "samples": samples}
