"""FID and KID: distances between sets of pictures in the feature space of a network, with the
network pluggable (``register_extractors``) and two built in:

- ``fid_inception``: the TF-Inception network of the original FID code, through pytorch-fid
  (``latentgen.plugins.fid_inception``): its numbers are comparable with published FID;
- ``inception``: torchvision's Inception-v3 (``latentgen.plugins.inception``): other weights
  and layers, so its numbers are NOT comparable with published FID.

- FID (Heusel et al. 2017): the Fréchet distance between Gaussians fit to the two feature
  sets, ||m1 - m2||^2 + Tr(C1 + C2 - 2 (C1 C2)^(1/2)); from feature sets or from their
  statistics (mean, covariance), pytorch-fid's ``.npz`` files included.
- KID (Bińkowski et al. 2018): the unbiased squared MMD with the kernel (x.y / F + 1)^3,
  averaged over random subsets, with its standard error; unlike FID it has no bias in N.

An extractor with a ``value_range`` attribute is given the range the pictures' values span
(the modality's range for pixels, else the reference's), so that every compared set is mapped
the same way. One with a ``cache_key`` attribute (naming the network and its weights) has the
statistics of real data cached on disk (``FeatureCache``): a 50,000-picture reference is
passed through the network once, not at every evaluation.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import zipfile
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from latentgen.errors import UserError
from latentgen.runtime.files import WriteError, atomic_write

KID_SUBSETS = 100
KID_SUBSET_SIZE = 1000
#: the environment variable that moves the statistics cache (``off``: no cache)
CACHE_VARIABLE = "LATENTGEN_FID_CACHE"

Extractor = Callable[[Tensor], Tensor]


@dataclass
class FeatureStats:
    """The statistics FID needs of a set of pictures: the mean ``mu`` (F,) and covariance
    ``sigma`` (F, F) of their features (float64), and the features themselves (float32) when
    known, which KID needs."""

    mu: Tensor
    sigma: Tensor
    n: int
    features: Tensor | None = None
    _root: Tensor | None = field(default=None, repr=False, compare=False)

    def sqrt_sigma(self) -> Tensor:
        """sigma^(1/2), computed once: a reference is compared with several sets, and the
        eigendecomposition of a 2048 x 2048 covariance is the slow part of FID."""
        if self._root is None:
            vals, vecs = torch.linalg.eigh(self.sigma.double())
            self._root = (vecs * vals.clamp_min(0).sqrt()) @ vecs.T
        return self._root

    @classmethod
    def of(cls, feats: Tensor) -> FeatureStats:
        """The statistics of features (N, F); covariance with N - 1, as pytorch-fid's
        ``np.cov``."""
        x = feats.double()
        return cls(x.mean(0), torch.cov(x.T), len(x), feats.float())

    def save(self, path: Path) -> None:
        """Write as ``.npz`` (atomically) with pytorch-fid's names: ``mu``, ``sigma``, so that
        pytorch-fid reads it as precomputed statistics too."""
        arrays: dict[str, Any] = {"mu": self.mu.numpy(), "sigma": self.sigma.numpy(),
                                  "n": np.int64(self.n)}
        if self.features is not None:
            arrays["features"] = self.features.numpy()
        atomic_write(path, lambda fh: np.savez(fh, **arrays))

    @classmethod
    def load(cls, path: str | Path) -> FeatureStats:
        """Statistics from an ``.npz`` file: pytorch-fid's (``--save-stats``: ``mu``,
        ``sigma``) or one this module wrote."""
        try:
            with np.load(path) as f:
                if "mu" not in f.files or "sigma" not in f.files:
                    raise UserError(f"{path} holds no 'mu' and 'sigma' arrays; give an .npz of "
                                    "feature statistics as pytorch-fid --save-stats writes")
                mu, sigma = torch.from_numpy(f["mu"]).double(), torch.from_numpy(f["sigma"])
                feats = torch.from_numpy(f["features"]) if "features" in f.files else None
                n = int(f["n"]) if "n" in f.files else len(feats) if feats is not None else 0
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise UserError(f"cannot read feature statistics {path} ({type(exc).__name__}); "
                            "give an .npz file with 'mu' and 'sigma'") from None
        if mu.dim() != 1 or sigma.shape != (len(mu), len(mu)):
            raise UserError(f"{path}: 'mu' {tuple(mu.shape)} and 'sigma' {tuple(sigma.shape)} "
                            "are not a mean and its covariance; give another statistics file")
        return cls(mu, sigma.double(), n, feats)


@torch.no_grad()
def frechet_distance_stats(mu_a: Tensor, sigma_a: Tensor, mu_b: Tensor, sigma_b: Tensor
                           ) -> float:
    """FID between Gaussians N(mu_a, sigma_a) and N(mu_b, sigma_b) (float64), the number
    pytorch-fid's ``calculate_frechet_distance`` gives."""
    return frechet_distance(FeatureStats(mu_a, sigma_a, 0), FeatureStats(mu_b, sigma_b, 0))


@torch.no_grad()
def frechet_distance(a: Tensor | FeatureStats, b: Tensor | FeatureStats) -> float:
    """FID between feature sets (N, F) or their statistics (``FeatureStats``), in any mix;
    pass the reference as ``b``: its sigma^(1/2) is kept for the next set.
    Tr((Ca Cb)^(1/2)) is taken as Tr((Cb^(1/2) Ca Cb^(1/2))^(1/2)), the same number: the
    matrix is symmetric, so its square root comes from an eigendecomposition, without the
    complex parts and the diagonal offset scipy's ``sqrtm`` of Ca Cb may need."""
    sa, sb = (x if isinstance(x, FeatureStats) else FeatureStats.of(x) for x in (a, b))
    if sa.mu.shape != sb.mu.shape:
        raise UserError(f"cannot compare {len(sa.mu)} features with {len(sb.mu)}: give "
                        "statistics made with the same extractor")
    ca, cb, root_b = sa.sigma.double(), sb.sigma.double(), sb.sqrt_sigma()
    if sa.features is not None and 1 < sa.n < len(sa.mu):
        # fewer examples than features: the same non-zero eigenvalues from an N x N matrix,
        # Y Y^T for Y = (X - mu) Cb^(1/2) / sqrt(N - 1), at N F^2 work instead of F^3
        y = (sa.features.double() - sa.mu.double()) @ root_b / math.sqrt(sa.n - 1)
        middle = torch.linalg.eigvalsh(y @ y.T).clamp_min(0).sqrt().sum()
    else:
        middle = torch.linalg.eigvalsh(root_b @ ca @ root_b).clamp_min(0).sqrt().sum()
    return float((sa.mu.double() - sb.mu.double()).pow(2).sum() + ca.trace() + cb.trace()
                 - 2 * middle)


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
    """The features (N, F) of ``pictures``, as float32 (the networks' own precision: half the
    memory of float64 for 50,000 pictures; the statistics are taken in float64)."""
    with torch.no_grad():
        return torch.cat([extractor(pictures[i:i + batch_size]).flatten(1).float().cpu()
                          for i in range(0, len(pictures), batch_size)])


# -- the cache of real data's statistics -----------------------------------------------------
_FOLDER: ContextVar[str | Path | None] = ContextVar("latentgen_fid_cache", default=None)


@contextmanager
def fid_cache(folder: str | Path | None) -> Iterator[None]:
    """Within the block, cache statistics in ``folder`` ("off": not at all; None: the
    default, ``cache_folder()``)."""
    token = _FOLDER.set(folder)
    try:
        yield
    finally:
        _FOLDER.reset(token)


def cache_folder() -> Path | None:
    """Where statistics are cached: the folder ``fid_cache`` gave, else $LATENTGEN_FID_CACHE,
    else ``$XDG_CACHE_HOME/latentgen/fid`` (``~/.cache/latentgen/fid``); None when "off"."""
    chosen = _FOLDER.get()
    if chosen is None:
        chosen = os.environ.get(CACHE_VARIABLE) or None
    if chosen is None:
        base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
        return Path(base) / "latentgen" / "fid"
    return None if str(chosen).lower() == "off" else Path(chosen).expanduser()


def _slug(text: str) -> str:
    """``text`` as a short file name part: its start (what the set is) and its end (the
    source's file name) when it is long."""
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-.") or "data"
    return slug if len(slug) <= 48 else f"{slug[:20]}--{slug[-26:]}"


def cache_path(extractor: Extractor, pictures: Tensor, label: str) -> Path | None:
    """The cache file of the statistics of ``pictures`` in ``extractor``'s features, or None
    when either cannot be cached. The key is a digest of the pictures themselves (which names
    the data source and the selection of it exactly, so a changed file is never mistaken for
    the old one), the extractor's ``cache_key`` (network and weights) and the value range it
    maps; the name also says, for a person, the ``label``, extractor, N and picture size."""
    key, folder = getattr(extractor, "cache_key", None), cache_folder()
    if key is None or folder is None:
        return None
    digest = hashlib.sha256()
    digest.update(repr((key, getattr(extractor, "value_range", None),
                        tuple(pictures.shape), str(pictures.dtype))).encode())
    digest.update(pictures.detach().cpu().contiguous().view(torch.uint8).numpy().data)
    size = "x".join(str(s) for s in pictures.shape)
    return folder / f"{_slug(label)}-{_slug(str(key))}-{size}-{digest.hexdigest()[:16]}.npz"


def reference_stats(extractor: Extractor, pictures: Tensor, label: str = "reference",
                    batch_size: int = 64) -> FeatureStats:
    """The statistics of real pictures in ``extractor``'s features: read from the cache when
    they were computed before, else computed and cached (``cache_path``)."""
    path = cache_path(extractor, pictures, label)
    if path is not None and path.is_file():
        try:
            return FeatureStats.load(path)
        except UserError:
            pass  # a damaged cache file: computed again and replaced
    stats = FeatureStats.of(features(extractor, pictures, batch_size))
    if path is not None:
        try:
            stats.save(path)
        except WriteError as exc:  # the measure stands without its cache: say so, go on
            import warnings

            warnings.warn(f"{exc} (feature statistics not cached; `fid_cache` DIR or "
                          f"{CACHE_VARIABLE} moves the cache)", stacklevel=2)
    return stats


def feature_distances(extractor: Extractor, reference: Tensor | FeatureStats,
                      sets: dict[str, Tensor], seed: int = 0,
                      value_range: tuple[float, float] | None = None,
                      real: Mapping[str, str] | None = None, label: str = "reference"
                      ) -> dict[str, float]:
    """FID and KID of each of ``sets`` (name -> pictures) from ``reference`` (pictures or
    statistics): ``{"fid": .., "kid": .., "kid_se": .., "fid_<name>": ..}`` with the first set
    unsuffixed. ``value_range``: what the pictures' values span (None: the reference's).
    The statistics of ``reference`` and of the ``real`` sets (real data, not samples:
    set name -> its label) are cached, the reference's under ``label``. KID is NaN against
    statistics without features."""
    if hasattr(extractor, "value_range"):  # one map of values for every compared set
        if value_range is None and isinstance(reference, Tensor):
            value_range = (float(reference.min()), float(reference.max()))
        if value_range is not None:
            extractor.value_range = value_range
    ref = (reference if isinstance(reference, FeatureStats)
           else reference_stats(extractor, reference, label))
    out: dict[str, float] = {}
    for i, (name, pictures) in enumerate(sets.items()):
        got = (reference_stats(extractor, pictures, real[name]) if real and name in real
               else FeatureStats.of(features(extractor, pictures)))
        suffix = "" if i == 0 else f"_{name}"
        out[f"fid{suffix}"] = frechet_distance(got, ref)
        kid, kid_se = (kernel_inception_distance(got.features, ref.features, seed=seed)
                       if got.features is not None and ref.features is not None
                       else (math.nan, math.nan))
        out[f"kid{suffix}"] = kid
        out[f"kid_se{suffix}"] = kid_se
    return out


def fid(samples: Tensor, reference: Tensor | FeatureStats | str | Path,
        extractor: str | Extractor = "fid_inception", weights: str | Path | None = None,
        device: torch.device | str = "cpu", value_range: tuple[float, float] = (-1.0, 1.0),
        label: str = "reference") -> float:
    """FID of ``samples`` (N, C, H, W), values in ``value_range``, from ``reference``: real
    pictures in the same range (their statistics cached under ``label``, ``cache_folder()``),
    ``FeatureStats``, or the path of an ``.npz`` of statistics (pytorch-fid's). ``extractor``:
    a registered name ("fid_inception": comparable with published FID) with its ``weights``
    file, or a callable."""
    if isinstance(extractor, str):
        from latentgen.plugins.registry import get_registry

        net: Extractor = get_registry().extractor(extractor)(device=device, weights=weights)
    else:
        net = extractor
    if hasattr(net, "value_range"):
        net.value_range = value_range
    if isinstance(reference, (str, Path)):
        reference = FeatureStats.load(reference)
    ref = (reference if isinstance(reference, FeatureStats)
           else reference_stats(net, reference, label))
    return frechet_distance(features(net, samples), ref)
