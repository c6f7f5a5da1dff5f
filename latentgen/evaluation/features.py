"""FID and KID: distances between sets of pictures in the feature space of a network, with the
network pluggable (``register_extractors``) and a built-in ``inception`` (torchvision's
Inception-v3, the features FID was defined with).

- FID (Heusel et al. 2017): the Fréchet distance between Gaussians fit to the two feature
  sets, ||m1 - m2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)).
- KID (Bińkowski et al. 2018): the unbiased squared MMD with the kernel (x.y / F + 1)^3,
  averaged over random subsets, with its standard error; unlike FID it has no bias in N.

The extractors are registered by plugins; the built-in ``inception`` lives in
``latentgen.plugins.inception``. An extractor with a ``value_range`` attribute is given the
reference's range of values, so that every compared set is mapped the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000

Extractor = Callable[[Tensor], Tensor]


@torch.no_grad()
def frechet_distance(a: Tensor, b: Tensor) -> float:
    """FID between feature sets ``a`` and ``b`` (N, F) (float64)."""
    a, b = a.double(), b.double()
    ma, mb = a.mean(0), b.mean(0)
    ca, cb = torch.cov(a.T), torch.cov(b.T)
    vals, vecs = torch.linalg.eigh(ca)
    root_a = (vecs * vals.clamp_min(0).sqrt()) @ vecs.T
    middle = torch.linalg.eigvalsh(root_a @ cb @ root_a).clamp_min(0).sqrt().sum()
    return float((ma - mb).pow(2).sum() + ca.trace() + cb.trace() - 2 * middle)


@torch.no_grad()
def kernel_inception_distance(a: Tensor, b: Tensor, subsets: int = KID_SUBSETS,
                              size: int = KID_SUBSET_SIZE, seed: int = 0
                              ) -> tuple[float, float]:
    """KID between feature sets ``a`` and ``b``: (mean, standard error) over subsets."""
    a, b = a.double(), b.double()
    m = min(size, len(a), len(b))
    g = torch.Generator().manual_seed(seed)
    dim = a.shape[1]
    values = []
    for _ in range(subsets):
        x = a[torch.randperm(len(a), generator=g)[:m]]
        y = b[torch.randperm(len(b), generator=g)[:m]]
        kxx, kyy, kxy = ((p @ q.T / dim + 1) ** 3 for p, q in ((x, x), (y, y), (x, y)))
        off = m * (m - 1)
        values.append(float((kxx.sum() - kxx.trace()) / off + (kyy.sum() - kyy.trace()) / off
                            - 2 * kxy.mean()))
    t = torch.tensor(values)
    return float(t.mean()), float(t.std() / math.sqrt(len(t))) if len(t) > 1 else 0.0


def features(extractor: Extractor, pictures: Tensor, batch_size: int = 64) -> Tensor:
    with torch.no_grad():
        return torch.cat([extractor(pictures[i:i + batch_size]).flatten(1).double().cpu()
                          for i in range(0, len(pictures), batch_size)])


def feature_distances(extractor: Extractor, reference: Tensor,
                      sets: dict[str, Tensor], seed: int = 0) -> dict[str, float]:
    """FID and KID of each of ``sets`` (name -> pictures) from ``reference``:
    ``{"fid": .., "kid": .., "kid_se": .., "fid_<name>": ..}`` with the first set unsuffixed."""
    if hasattr(extractor, "value_range"):  # one map of values for every compared set
        extractor.value_range = (float(reference.min()), float(reference.max()))
    ref = features(extractor, reference)
    out: dict[str, float] = {}
    for i, (name, pictures) in enumerate(sets.items()):
        got = features(extractor, pictures)
        suffix = "" if i == 0 else f"_{name}"
        kid, kid_se = kernel_inception_distance(got, ref, seed=seed)
        out[f"fid{suffix}"] = frechet_distance(got, ref)
        out[f"kid{suffix}"] = kid
        out[f"kid_se{suffix}"] = kid_se
    return out
