"""Synthesis, measured: how far the generator's prior samples are from real data, beside the
linear model it generalises and the floor that real data itself reaches.

Three sets of N examples are compared with N reference examples (held-out data, the training
data, or any data) by the multi-scale sliced Wasserstein distance of their feature pictures
(``Modality.feature_pictures``: pixels, log-mel spectrograms, frames and their changes):

- the model: f(Z) for Z drawn from the prior;
- PCA: samples of the noise-free linear model with as many components as the generator has
  latent numbers, mean + W z with z drawn from the training data's covariance in the
  components' subspace, clipped to the data range, as the generator's output is. They are the
  same kind of sample as f(Z), which carries no observation noise either: probabilistic PCA's
  isotropic noise (sigma e) would add speckle the generator's samples never have and make the
  baseline look worse than the linear model is (``PPCA.sample(noise=True)``, kept for
  densities: ``--nll``);
- the floor: training examples (others than the reference's, when the reference is the
  training data). A perfect generator scores about the floor, not 0: N samples of the data's
  own distribution are that far from N others.

``rel = (model - floor) / (PCA - floor)``: 0 is as good as real data, 1 no better than PCA.
The distance depends on N: compare numbers at equal N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from latentgen.assembly.trained import Source, Trained
from latentgen.data.examples import Examples
from latentgen.errors import UserError
from latentgen.measures.baselines import fit_pca
from latentgen.measures.defaults import DEFAULT_SYNTHESIS_N
from latentgen.measures.registry import Block, Line, Request, Table, register_measure
from latentgen.measures.swd import SWDReference
from latentgen.runtime.seeding import derived_generator

#: feature pictures per set at most (a video gives one per frame): evenly spaced beyond it
MAX_PICTURES = 4096


@dataclass
class PPCA:
    """Probabilistic PCA (Tipping and Bishop 1999): x = mean + W z + sigma e, z ~ N(0, I_k),
    e ~ N(0, I_D), with the maximum-likelihood W and sigma^2 of the training data."""

    mean: Tensor        # (D,)
    components: Tensor  # (k, D), orthonormal rows
    variances: Tensor   # (k,) the data's variance along each component
    noise: float        # sigma^2: the mean variance of the other D - k directions
    shape: tuple[int, ...]
    clip: tuple[float, float] | None = None

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None, noise: bool = False
               ) -> Tensor:
        """``n`` examples (n, *shape) of the linear model. Without ``noise`` (the synthesis
        baseline): mean + W z, the data's variance along each component (``variances``) and
        nothing outside their span, as noise-free as the generator's f(Z). With ``noise``:
        probabilistic PCA's samples, sigma^2 in every direction (the density ``--nll`` uses)."""
        k, dim = self.components.shape
        z = torch.randn(n, k, generator=generator, dtype=torch.float64)
        if noise:
            e = torch.randn(n, dim, generator=generator, dtype=torch.float64)
            scale = (self.variances - self.noise).clamp_min(0).sqrt()
            x = self.mean + (z * scale) @ self.components + math.sqrt(self.noise) * e
        else:
            x = self.mean + (z * self.variances.sqrt()) @ self.components
        x = x.float().view(n, *self.shape)
        return x.clamp(*self.clip) if self.clip else x


@torch.no_grad()
def fit_ppca(data: Examples, k: int, device: torch.device,
             clip: tuple[float, float] | None = None, batch_size: int = 512) -> PPCA:
    """Probabilistic PCA of ``data`` with ``k`` components (float64)."""
    pca = fit_pca(data, k, device, batch_size=batch_size)
    mean, comp = pca.mean.to(device), pca.components.to(device)
    along = torch.zeros(len(comp), dtype=torch.float64, device=device)
    total = torch.zeros((), dtype=torch.float64, device=device)
    for index in torch.arange(len(data)).split(batch_size):
        x = data.get(index, device).flatten(1).double() - mean
        along += (x @ comp.T).pow(2).sum(0)
        total += x.pow(2).sum()
    n, dim = len(data), comp.shape[1]
    variances = along / max(1, n - 1)
    rest = (total / max(1, n - 1) - variances.sum()).clamp_min(0)
    noise = float(rest / (dim - len(comp))) if dim > len(comp) else 0.0
    shape = tuple(data.example_shape)
    return PPCA(pca.mean, pca.components, variances.cpu(), noise, shape, clip)


def _pick(n_total: int, n: int, seed: int, key: str, exclude: Tensor | None = None) -> Tensor:
    """``n`` indices of ``n_total``, seeded, not in ``exclude``."""
    order = torch.randperm(n_total, generator=derived_generator(seed, key))
    if exclude is not None:
        order = order[~torch.isin(order, exclude)]
    return order[:n].sort().values


def _pictures(run: Trained, x: Tensor, options: Any = None) -> Tensor:
    model = run.model
    pics = model.modality.feature_pictures(x, options or model.options).float()
    if len(pics) > MAX_PICTURES:
        pics = pics[torch.linspace(0, len(pics) - 1, MAX_PICTURES).long()]
    return pics


def _examples(data: Examples, index: Tensor, batch_size: int = 512) -> Tensor:
    return torch.cat([data.get(part) for part in index.split(batch_size)])


def synthesis_quality(run: Trained, reference: Examples, name: str, n: int = DEFAULT_SYNTHESIS_N,
                      seed: int = 0, batch_size: int = 256,
                      reference_is_train: bool = False, extractor: str | None = None,
                      extractor_weights: str | None = None, train: Examples | None = None,
                      scale: int = 1) -> dict[str, Any]:
    """The synthesis measures of ``run`` against ``reference`` (named ``name`` in the result):
    ``{"swd", "swd_levels", "swd_pca", "swd_floor", "rel", "n", "reference"}``; with
    ``extractor`` (a registered feature extractor's name) also FID and KID of the same three
    sets (``fid``, ``kid``, ``kid_se``, each also ``_pca`` and ``_floor``) and
    ``fid_comparable``, whether that FID is comparable with published FID. ``train``: the
    training examples when they are open already (during training). ``scale`` K > 1 measures
    samples K times larger (``Run.synthesize(scale=K)``): ``reference`` and ``train`` must then
    hold data of that size, and PCA keeps as many components as the larger latent field has
    numbers."""
    if n < 2:
        raise UserError(f"`n` must be at least 2 for the synthesis measures, got {n}")
    if train is None:
        train = reference if reference_is_train else run.training_examples()
    # N of each set: as many as the reference holds, and as the training data holds for the
    # floor (the other half, when the reference is the training data)
    n = min(n, len(train) // 2 if reference_is_train else min(len(reference), len(train)))
    if n < 2:
        raise UserError(f"the reference ({name}) holds too few examples for the synthesis "
                        "measures; give one with at least 2 (4 when it is the training data)")
    net: Any = None
    if extractor is not None:  # before any work: a missing weights file is told at once
        from latentgen.plugins.registry import get_registry

        net = get_registry().extractor(extractor)(device=run.device, weights=extractor_weights)
    ref_index = _pick(len(reference), n, seed, "swd-reference")
    floor_index = _pick(len(train), n, seed, "swd-floor",
                        exclude=ref_index if reference_is_train else None)
    options, prior = run.at_scale(scale)
    ref_pictures = _pictures(run, _examples(reference, ref_index), options)
    ref = SWDReference(ref_pictures, seed=seed)

    samples = torch.cat(list(run.synthesis_batches(n, seed=seed, batch_size=batch_size,
                                                   scale=scale)))
    model = run.model
    ppca = fit_ppca(train, int(math.prod(prior.latent_shape)), run.device,
                    clip=model.modality.data_range)
    baseline = ppca.sample(n, generator=derived_generator(seed, "swd-ppca"))
    floor_set = _examples(train, floor_index)
    sets = {"model": _pictures(run, samples, options), "pca": _pictures(run, baseline, options),
            "floor": _pictures(run, floor_set, options)}
    got, pca, floor = (ref.distance(pictures) for pictures in sets.values())
    gap = pca.mean - floor.mean
    rel = (got.mean - floor.mean) / gap if gap > 0 else math.nan
    result = {"swd": got.mean, "swd_levels": got.levels, "swd_pca": pca.mean,
              "swd_pca_levels": pca.levels, "swd_floor": floor.mean,
              "swd_floor_levels": floor.levels, "rel": rel, "n": n, "reference": name}
    if scale != 1:
        result["scale"] = scale
    if net is not None:
        from latentgen.measures.features import feature_distances

        lo, hi = model.modality.data_range
        # pictures within the data range are pixels: mapped from it, as a written file is
        pixels = lo <= float(ref_pictures.min()) and float(ref_pictures.max()) <= hi
        # the reference's and the floor's statistics (real data) are cached per data source
        result.update(feature_distances(net, ref_pictures, sets, seed=seed,
                                        value_range=(lo, hi) if pixels else None,
                                        real={"floor": f"floor-{train.source}"},
                                        label=f"{name}-{reference.source}"))
        result["extractor"] = extractor
        # published FID: the original FID network on pixels, at equal N (papers: 50,000)
        result["fid_comparable"] = bool(getattr(net, "fid_comparable", False)) and pixels
    return result


def quality_against(trained: Trained, reference: Source = "train",
                    n: int = DEFAULT_SYNTHESIS_N, seed: int = 0, test: Source = None,
                    extractor: str | None = None, extractor_weights: str | None = None,
                    scale: int = 1) -> dict[str, Any]:
    """``synthesis_quality`` against ``reference``: "train", "test" (``test``, else the run's
    held-out data) or data (a path, a tensor, a Dataset). ``scale`` K > 1 measures samples K
    times larger against the reference and training data opened K times larger (a texture
    model: larger crops of its pictures)."""
    kw: dict[str, Any] = {"extractor": extractor, "extractor_weights": extractor_weights}
    model = trained.model
    cfg = model.config
    asked = reference if isinstance(reference, str) and reference in ("train", "test") else None
    if asked == "test":
        reference = test if test is not None else cfg.test_data
        if reference is None:
            raise UserError("`reference` test needs held-out data: give `test_data` (or "
                            "train with it), or use `reference` train or a path")
    if scale != 1:
        options = trained.at_scale(scale)[0]
        train = model.open_data(cfg.data, "the run's training data", options)
        if asked == "train":
            return synthesis_quality(trained, train, "train", n, seed, reference_is_train=True,
                                     scale=scale, **kw)
        if not isinstance(reference, (str, Path)):
            raise UserError("`scale` measures against data given by path (or train / test), "
                            "opened at the larger size; not tensors or datasets")
        data = model.open_data(str(reference), "`reference`", options)
        return synthesis_quality(trained, data, str(reference), n, seed, train=train,
                                 scale=scale, **kw)
    if asked == "train":
        return synthesis_quality(trained, trained.training_examples(), "train", n, seed,
                                 reference_is_train=True, **kw)
    data, _ = trained.open_source(reference, "`test_data`" if asked else "`reference`")
    name = asked or (str(reference) if isinstance(reference, (str, Path)) else "data")
    return synthesis_quality(trained, data, name, n, seed, **kw)


_SETS = (("model (prior samples)", "swd"), ("PCA (probabilistic, same d)", "swd_pca"),
         ("floor (training examples)", "swd_floor"))


def _present(result: dict[str, Any], trained: Trained, request: Request) -> list[Block]:
    found = result["synthesis"]
    levels = len(found["swd_levels"])
    blocks: list[Block] = [Table(
        f"synthesis — sliced Wasserstein distance (x 1e3) of {found['n']} examples from "
        f"{found['reference']}", ("samples", "SWD", *[f"level {i + 1}" for i in range(levels)]),
        tuple((name, f"{found[key]:.2f}", *[f"{v:.2f}" for v in found[key + "_levels"]])
              for name, key in _SETS))]
    if "fid" in found:
        blocks.append(Table(f"in the features of {found['extractor']}",
                            ("samples", "FID", "KID", "± se"),
                            tuple((label, f"{found['fid' + sfx]:.2f}",
                                   f"{found['kid' + sfx]:.4f}", f"{found['kid_se' + sfx]:.4f}")
                                  for label, sfx in (("model", ""), ("PCA", "_pca"),
                                                     ("floor", "_floor")))))
    rel = found["rel"]
    blocks.append(Line(f"rel = (model - floor) / (PCA - floor) = {rel:.3f}" if rel == rel else
                       "rel: undefined (PCA's samples are no farther than the floor)"))
    blocks.append(Line("rel 0: as close as real data; 1: no closer than PCA; levels run from "
                       "the finest to the coarsest", dim=True))
    if "fid" in found:
        if found.get("fid_comparable"):
            blocks.append(Line(f"FID in {found['extractor']}'s features: comparable with "
                               f"published FID at equal N ({found['n']} here; papers use "
                               "50,000)"))
        else:
            blocks.append(Line(f"FID in {found['extractor']}'s features: not comparable with "
                               "published FID (only fid_inception on pictures is)", dim=True))
    return blocks


def _html(result: dict[str, Any], trained: Trained, request: Request) -> str:
    import html

    from latentgen.runtime.html import html_table

    found = result["synthesis"]
    rows = [[name, found[key], *found[key + "_levels"]] for name, key in _SETS]
    levels = [f"level {i + 1}" for i in range(len(found["swd_levels"]))]
    rel = found["rel"]
    return ("<h2>Synthesis, measured</h2>" +
            html_table(["samples", "SWD (x 1e3)", *levels], rows,
                       fmt=lambda v: f"{v:.2f}" if isinstance(v, float) else str(v)) +
            f'<p class="note">Sliced Wasserstein distance of {found["n"]} examples from '
            f'{html.escape(str(found["reference"]))} (levels from the finest to the coarsest); '
            f"rel = (model - floor) / (PCA - floor) = "
            f"{f'{rel:.3f}' if rel == rel else 'undefined'}: 0 is as close as real data, 1 "
            "no closer than PCA.</p>")


@register_measure("synthesis", title="Synthesis, measured", present=_present, html=_html)
def synthesis_measure(trained: Trained, request: Request) -> dict[str, Any]:
    """``synthesis``: ``quality_against`` the request's ``reference`` (default: ``test`` when
    it is given, else the training data), with its ``n``, ``seed``, ``extractor`` and
    ``scale``."""
    ref = request.reference if request.reference is not None else (
        "test" if request.test_data is not None else "train")
    return {"synthesis": quality_against(
        trained, ref, n=request.n, seed=request.seed, test=request.test_data,
        extractor=request.extractor, extractor_weights=request.extractor_weights,
        scale=request.scale)}
