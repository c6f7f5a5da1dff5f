"""How far the aggregate posterior (the banked latents of the training data) is from the prior.

Synthesis draws Z from the prior, but the generator learned from the banked latents: where
the two differ, prior samples fall where the generator saw no latent, and come out poor
however well it reconstructs. Measured here three ways, each on the latents' channel vectors
(a latent field's positions pooled):

- moments: the bank's mean and covariance against the prior's (estimated from prior draws,
  so any prior works): the distance of the means in the prior's standard deviations, and the
  range of the covariance's eigenvalues relative to the prior's (1 and 1 when they agree);
- ``kl``: KL(N(bank moments) || N(prior moments)) in nats per vector, 0 when they agree;
- ``mmd``: the unbiased squared maximum mean discrepancy of the whole latents (Gaussian
  kernel, median bandwidth) between up to 1,000 banked and 1,000 prior latents, beside
  ``mmd_threshold``, the 95th percentile of its value over random relabellings of the two
  sets: above it, the difference is more than the sampling noise of these sets.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from latentgen.assembly.trained import Trained
from latentgen.measures.registry import Block, Line, Request, register_measure
from latentgen.model.priors import LatentMoments, Prior
from latentgen.runtime.seeding import derived_generator

#: latents of each side in the two-sample statistic
MMD_N = 1000
#: random relabellings behind the threshold
PERMUTATIONS = 200


def _gaussian_kl(mean_a: Tensor, cov_a: Tensor, mean_b: Tensor, cov_b: Tensor) -> float:
    d = len(mean_a)
    jitter = 1e-9 * torch.eye(d, dtype=cov_b.dtype)
    lb = torch.linalg.cholesky(cov_b + jitter)
    la = torch.linalg.cholesky(cov_a + jitter)
    inv_lb = torch.linalg.inv(lb)
    trace = (inv_lb @ la).pow(2).sum()
    diff = inv_lb @ (mean_b - mean_a)
    log_det = 2 * (lb.diagonal().log().sum() - la.diagonal().log().sum())
    return float(0.5 * (trace + diff.pow(2).sum() - d + log_det))


def _mmd(x: Tensor, y: Tensor, seed: int) -> tuple[float, float]:
    """Unbiased MMD^2 of x and y and its 95th percentile under relabelling."""
    both = torch.cat([x, y])
    dist = torch.cdist(both, both).pow(2)
    off = dist[~torch.eye(len(both), dtype=torch.bool)]
    bandwidth = off.median().clamp_min(1e-12)
    k = torch.exp(-dist / bandwidth)
    k.fill_diagonal_(0.0)
    n, m = len(x), len(y)

    def stat(is_x: Tensor) -> Tensor:  # (P, n + m) masks -> (P,)
        wx = is_x.double()
        wy = 1.0 - wx
        kxx = ((wx @ k) * wx).sum(1) / (n * (n - 1))
        kyy = ((wy @ k) * wy).sum(1) / (m * (m - 1))
        kxy = ((wx @ k) * wy).sum(1) / (n * m)
        return kxx + kyy - 2 * kxy

    labels = torch.zeros(n + m, dtype=torch.bool)
    labels[:n] = True
    rng = derived_generator(seed, "mmd-permutations")
    perms = torch.stack([labels[torch.randperm(n + m, generator=rng)]
                         for _ in range(PERMUTATIONS)])
    observed = float(stat(labels[None])[0])
    return observed, float(stat(perms).quantile(0.95))


def latent_gap(latents: Tensor, prior: Prior, seed: int = 0) -> dict[str, Any]:
    """``{"mean_distance", "cov_eig_min", "cov_eig_max", "bank_var", "prior_var", "kl",
    "mmd", "mmd_threshold", "n", "matches"}`` for banked ``latents`` (n, *latent_shape) and
    ``prior``; ``matches`` is True when ``mmd`` is below ``mmd_threshold``."""
    z = latents.detach().float().cpu()
    rng = derived_generator(seed, "latent-gap")
    draws = prior.sample(max(len(z), MMD_N), generator=rng).float().cpu()
    mean_b, cov_b = LatentMoments.of(z).mean_cov()
    mean_p, cov_p = LatentMoments.of(draws).mean_cov()
    d = len(mean_b)
    lp = torch.linalg.cholesky(cov_p + 1e-9 * torch.eye(d, dtype=cov_p.dtype))
    inv_lp = torch.linalg.inv(lp)
    relative = torch.linalg.eigvalsh(inv_lp @ cov_b @ inv_lp.T)
    pick = torch.randperm(len(z), generator=rng)[:MMD_N]
    mmd, threshold = _mmd(z[pick].flatten(1).double(), draws[:MMD_N].flatten(1).double(), seed)
    return {"mean_distance": float((inv_lp @ (mean_b - mean_p)).norm()),
            "cov_eig_min": float(relative.min()), "cov_eig_max": float(relative.max()),
            "bank_var": float(cov_b.diagonal().mean()), "prior_var": float(cov_p.diagonal().mean()),
            "kl": _gaussian_kl(mean_b, cov_b, mean_p, cov_p), "mmd": mmd,
            "mmd_threshold": threshold, "n": int(len(pick)), "matches": mmd <= threshold}


def _describe(gap: dict[str, Any]) -> str:
    return (f"mean {gap['mean_distance']:.2f} prior standard deviations off, covariance "
            f"eigenvalues {gap['cov_eig_min']:.2f} to {gap['cov_eig_max']:.2f} of the "
            f"prior's, KL {gap['kl']:.2f} nats")


def _present(result: dict[str, Any], trained: Trained, request: Request) -> list[Block]:
    gap = result["latents"]
    verdict = ("follow the prior" if gap["matches"] else
               "differ from the prior (prior samples fall where the generator saw no latent)")
    return [Line(f"banked latents {verdict}: {_describe(gap)}, MMD^2 {gap['mmd']:.4f} (noise "
                 f"level {gap['mmd_threshold']:.4f})")]


def _html(result: dict[str, Any], trained: Trained, request: Request) -> str:
    gap = result["latents"]
    return (f"<p>Banked latents {'follow' if gap['matches'] else 'differ from'} the prior: "
            f"{_describe(gap)}, MMD<sup>2</sup> {gap['mmd']:.4f} (noise "
            f"level {gap['mmd_threshold']:.4f}).</p>")


@register_measure("latents", title="Latents against the prior", present=_present, html=_html,
                  default=True)
def latents_measure(trained: Trained, request: Request) -> dict[str, Any]:
    """``latents``: ``latent_gap`` of the banked latents and the prior."""
    return {"latents": latent_gap(trained.latents, trained.model.prior, seed=request.seed)}
