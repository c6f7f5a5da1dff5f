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

from latentgen.assembly.trained import Source, Trained
from latentgen.data.examples import Examples
from latentgen.measures.defaults import DEFAULT_NLL_SAMPLES
from latentgen.measures.inference import infer_latents
from latentgen.measures.registry import Block, Line, Request, Table, register_measure
from latentgen.runtime.seeding import derived_generator

if TYPE_CHECKING:
    from latentgen.assembly.model import Model
    from latentgen.measures.synthesis import PPCA

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


def check_likelihood(trained: Trained, samples: int) -> None:
    """Refuse (one line) what has no estimate: too few samples, a run learned from indirect
    observations, a prior known up to its constant only."""
    from latentgen.errors import UserError

    if samples < 2:
        raise UserError(f"`nll_samples` must be at least 2, got {samples}")
    model = trained.model
    if model.observation.operator is not None:
        raise UserError("`nll` is not available for a run learned from indirect "
                        "observations (`observe`); compare it by recovery error")
    if not model.prior.normalized:
        raise UserError(f"`nll` needs a prior with a normalised density; the run's "
                        f"'{model.config.prior}' prior is known up to its constant only "
                        "(compare such runs by `synthesis` or by reconstruction error)")


def linear_model(trained: Trained) -> PPCA:
    """Probabilistic PCA of the training data with as many components as the generator has
    latent numbers: the exact likelihood beside the estimate."""
    from latentgen.measures.synthesis import fit_ppca

    return fit_ppca(trained.training_examples(),
                    int(math.prod(trained.model.generator.latent_shape)), trained.device)


def log_likelihood(trained: Trained, data: Source, samples: int = DEFAULT_SAMPLES,
                   steps: int = 300, seed: int = 0, ppca: PPCA | None = None
                   ) -> dict[str, Any]:
    """``likelihood_summary`` of ``data`` under ``trained``, beside probabilistic PCA of its
    training data (``ppca`` when fit already, else ``linear_model``)."""
    check_likelihood(trained, samples)
    examples, _ = trained.open_source(data, "`test_data`")
    ppca = ppca if ppca is not None else linear_model(trained)
    return likelihood_summary(trained.model, ppca, examples, trained.device, samples, steps,
                              seed)


def _present(result: dict[str, Any], trained: Trained, request: Request) -> list[Block]:
    found = result["nll"]
    rows = tuple((name, str(r["n"]), f"{r['nll']:.1f}", f"{r['nll_se']:.1f}",
                  f"{r['bits_per_dim']:.3f}", f"{r['pca_nll']:.1f}",
                  f"{r['pca_bits_per_dim']:.3f}") for name, r in found.items())
    some = next(iter(found.values()))
    return [Table("negative log-likelihood (model space), lower is better",
                  ("set", "examples", "model nats", "± se", "model bits/dim", "PCA nats",
                   "PCA bits/dim"), rows),
            Line(f"importance sampling: {some['samples']} draws per example from the Laplace "
                 "approximation at the posterior mode; PCA: exact, same number of latent "
                 "numbers", dim=True)]


@register_measure("nll", title="Negative log-likelihood", present=_present, report=False)
def nll_measure(trained: Trained, request: Request) -> dict[str, Any]:
    """``nll``: for the request's ``test`` and ``negative`` sets, ``log_likelihood`` with
    ``nll_samples`` draws per example (probabilistic PCA fit once for both)."""
    from latentgen.errors import UserError

    held = {k: v for k, v in (("test", request.test_data), ("negative", request.negative_data))
            if v is not None}
    if not held:
        raise UserError("`nll` needs held-out data: give `test_data` (and `negative_data`)")
    check_likelihood(trained, request.nll_samples)
    ppca = linear_model(trained)  # one fit for both sets
    found = {name: log_likelihood(trained, source, samples=request.nll_samples,
                                  steps=request.infer_steps, seed=request.seed, ppca=ppca)
             for name, source in held.items()}
    return {"nll": found}
