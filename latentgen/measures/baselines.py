"""Baselines and judgements for reconstruction error: PCA at equal d, the training-mean fill,
and the regime (over-fitting, good fit, under-fitting) that train / test / negative errors show.

PCA is the linear factor analysis a non-linear generator must beat at the same number of
latent factors; it is fit here with torch alone, on the same model-space data the generator
sees, and its error is reported on the same metric scale.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from latentgen.data.examples import Examples
from latentgen.data.masks import Masks
from latentgen.model.operators import Operator, min_norm

#: with at least as many examples as elements, examples up to this many elements get an exact
#: PCA from the D x D covariance
EXACT_PCA_MAX_DIM = 8192
#: otherwise PCA is fit through the Gram matrix of at most this many training examples
GRAM_PCA_MAX_EXAMPLES = 4096


@dataclass
class PCA:
    mean: Tensor        # (D,)
    components: Tensor  # (k, D), orthonormal rows
    exact: bool
    #: range reconstructions are clipped to (the data range, as for the generator's output)
    clip: tuple[float, float] | None = None

    @torch.no_grad()
    def reconstruct(self, y: Tensor) -> Tensor:
        """Projections of the examples ``y`` (N, *shape) onto the components, same shape."""
        mean, comp = self.mean.to(y.device), self.components.to(y.device)
        x = y.flatten(1).double() - mean
        out = ((x @ comp.T) @ comp + mean).float().view_as(y)
        return out.clamp(*self.clip) if self.clip else out

    @torch.no_grad()
    def per_example_mse(self, data: Examples, device: torch.device, scale: float = 1.0,
                        batch_size: int = 512) -> Tensor:
        """Per-element squared error of projecting each example onto the k components."""
        mean, comp = self.mean.to(device), self.components.to(device)
        errs = []
        for index in torch.arange(len(data)).split(batch_size):
            y = data.get(index, device).flatten(1).double()
            x = (y - mean) @ comp.T @ comp + mean
            if self.clip:
                x = x.clamp(*self.clip)
            errs.append((y - x).pow(2).mean(1).float().cpu())
        return torch.cat(errs) * scale


@torch.no_grad()
def fit_pca(data: Examples, k: int, device: torch.device, batch_size: int = 512,
            clip: tuple[float, float] | None = None) -> PCA:
    """Top-``k`` principal components of ``data`` (float64 on ``device``)."""
    n = len(data)
    index = torch.arange(n)
    first = data.get(index[:1], device).flatten(1)
    dim = first.shape[1]
    k = max(1, min(k, dim, n - 1 if n > 1 else 1))
    total = torch.zeros(dim, dtype=torch.float64, device=device)
    for part in index.split(batch_size):
        total += data.get(part, device).flatten(1).double().sum(0)
    mean = total / n
    if dim <= EXACT_PCA_MAX_DIM and (n >= dim or n > GRAM_PCA_MAX_EXAMPLES):
        cov = torch.zeros(dim, dim, dtype=torch.float64, device=device)
        for part in index.split(batch_size):
            x = data.get(part, device).flatten(1).double() - mean
            cov += x.T @ x
        _, vecs = torch.linalg.eigh(cov)  # ascending eigenvalues
        return PCA(mean.cpu(), vecs[:, -k:].flip(1).T.contiguous().cpu(), exact=True,
                   clip=clip)
    # Fewer examples than entries, or long examples (sound, video): the N x N Gram matrix
    # gives the same components more cheaply (of a fixed subsample when N is large).
    exact = n <= GRAM_PCA_MAX_EXAMPLES
    if not exact:
        index = torch.randperm(n, generator=torch.Generator().manual_seed(0))[
            :GRAM_PCA_MAX_EXAMPLES].sort().values
    x = torch.cat([data.get(part, device).flatten(1).double() - mean
                   for part in index.split(batch_size)])
    vals, u = torch.linalg.eigh(x @ x.T)
    vals, u = vals[-k:].flip(0), u[:, -k:].flip(1)
    comp = (x.T @ u) / vals.clamp_min(1e-12).sqrt()
    return PCA(mean.cpu(), comp.T.contiguous().cpu(), exact=exact, clip=clip)


@dataclass
class IndirectPCA:
    """The linear baseline of a model learned from observations y = A x (``--observe``): PCA
    fitted on the training data's y alone (x is never seen), an example recovered as the x of
    least norm whose A x is the PCA reconstruction of its y (``operators.min_norm``)."""

    pca: PCA
    operator: Operator
    clip: tuple[float, float] | None = None

    @torch.no_grad()
    def reconstruct(self, x: Tensor) -> Tensor:
        """Recoveries of the examples ``x`` (N, *shape) from their observations A x."""
        y = self.operator(x.float())
        out = min_norm(self.operator, self.pca.reconstruct(y))
        return out.clamp(*self.clip) if self.clip else out

    def per_example_mse(self, data: Examples, device: torch.device, scale: float = 1.0,
                        batch_size: int = 512) -> Tensor:
        """Per-element squared error of each recovered example against the true one."""
        errs = []
        for index in torch.arange(len(data)).split(batch_size):
            x = data.get(index, device)
            errs.append((self.reconstruct(x) - x).pow(2).flatten(1).mean(1).cpu())
        return torch.cat(errs) * scale


def baseline_pca(model: object, train: Examples, device: torch.device) -> PCA | IndirectPCA:
    """PCA at the generator's number of latent numbers, fitted on what the model learned from:
    the training data, or its observations y = A x under ``--observe``."""
    k = math.prod(model.generator.latent_shape)  # type: ignore[attr-defined]
    clip = model.modality.data_range  # type: ignore[attr-defined]
    operator = model.observation.operator  # type: ignore[attr-defined]
    if operator is None:
        return fit_pca(train, k, device, clip=clip)
    ys = []
    for index in torch.arange(len(train)).split(512):
        ys.append(operator(train.get(index, device).float()).cpu())
    observed = Examples(torch.cat(ys), _as_float, f"A x of {train.source}")
    return IndirectPCA(fit_pca(observed, k, device), operator, clip)


def _as_float(batch: Tensor) -> Tensor:
    return batch.float()


@torch.no_grad()
def mean_fill_mse(train: Examples, data: Examples, masks: Masks, device: torch.device,
                  scale: float = 1.0, batch_size: int = 512) -> Tensor:
    """Per-example error on the missing entries when they are filled with the training mean."""
    total = None
    for part in torch.arange(len(train)).split(batch_size):
        s = train.get(part, device).double().sum(0)
        total = s if total is None else total + s
    assert total is not None
    mean = (total / len(train)).float()
    errs = []
    for index in torch.arange(len(data)).split(batch_size):
        y = data.get(index, device)
        miss = 1.0 - masks.for_indices(index, device).expand_as(y)
        count = miss.flatten(1).sum(1)
        err = ((y - mean).pow(2) * miss).flatten(1).sum(1)
        errs.append((err / count.where(count > 0, torch.nan)).cpu())
    return torch.cat(errs) * scale


#: held-out error this many times the training error is over-fitting, whatever the rest
FAR_ABOVE_TRAIN = 3.0

#: the rule, as printed beside the verdict
REGIME_RULE = ("under-fitting when train, test and negative errors lie within a factor 1.5 of "
               "each other; otherwise over-fitting when test is above PCA's test error (the "
               "linear model generalises better), above 3 x train, or nearer negative than "
               "train (test - train > (negative - train) / 2); else a good fit")


def regime(train: float, test: float, negative: float, pca_test: float | None = None) -> str:
    """The seed's reading of the three errors: 'over-fitting', 'good fit' or 'under-fitting'
    ('undetermined' when an error is not a finite number). ``pca_test``, PCA's error on the
    test set at the same d, when known: a test error above it is over-fitting."""
    if not all(math.isfinite(v) for v in (train, test, negative)):
        return "undetermined"
    low, high = min(train, test, negative), max(train, test, negative)
    if high <= 1.5 * low:
        return "under-fitting"
    beaten = pca_test is not None and math.isfinite(pca_test) and test > pca_test
    if beaten or test > FAR_ABOVE_TRAIN * train or test - train > (negative - train) / 2:
        return "over-fitting"
    return "good fit"


@torch.no_grad()
def pca_extras(pca: PCA | IndirectPCA, model: object, data: Examples, device: torch.device,
               batch_size: int = 256) -> dict[str, Tensor]:
    """The modality's own error measures for PCA's reconstructions, per example."""
    parts: dict[str, list[Tensor]] = {}
    for index in torch.arange(len(data)).split(batch_size):
        y = data.get(index, device)
        extras = model.modality.extra_metrics(y, pca.reconstruct(y), model.options)  # type: ignore[attr-defined]
        for name, v in extras.items():
            parts.setdefault(name, []).append(v.cpu())
    return {name: torch.cat(v) for name, v in parts.items()}
