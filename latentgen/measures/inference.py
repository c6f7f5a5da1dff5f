"""Latents for examples the generator was not trained on (or re-inferred from scratch).

Held-out data has no banked latents, so they are inferred on the fixed generator: chains start
at the prior's mode (zero for N(0, I)) and run ``steps`` updates of the chosen sampler. The default,
``DEFAULT_STEPS`` steps of the ``map`` sampler (gradient descent whose step tunes itself per
example, starting from the run's step size), finds the MAP latent: the reconstruction that
error figures are about. Plain fixed-step descent (``gd``) at the training step size was
measured to oscillate: on 24x24 digits it left the held-out error 35 % above the converged
one. Langevin may be chosen instead (a posterior sample). From the mode, MAP inference anneals
sigma over its first half (``AdaptiveMAP.anneal``): descent straight at the true sigma stalls in
poor optima on sharply fitted generators.
With masks, only the observed entries of each example pull on its latent.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from latentgen.data.examples import Examples
from latentgen.data.masks import Masks
from latentgen.measures.defaults import (
    COLD_ANNEAL,
    DEFAULT_SAMPLER,
    DEFAULT_STEPS,
    REFINE_STEPS,
)
from latentgen.model.samplers import AdaptiveMAP
from latentgen.runtime.seeding import derived_generator

if TYPE_CHECKING:
    from latentgen.assembly.model import Model



def infer_latents(model: Model, device: torch.device, data: Examples,
                  steps: int = DEFAULT_STEPS, sampler: str = DEFAULT_SAMPLER,
                  step_size: float | None = None, batch_size: int = 256, seed: int = 0,
                  masks: Masks | None = None, start: torch.Tensor | None = None
                  ) -> torch.Tensor:
    """Latents for every example of ``data``, from the prior's mode or from ``start`` (one
    per example). From the mode, MAP inference anneals sigma (``COLD_ANNEAL``); from a
    start it does not (the start is in its basin already)."""
    smp = model.sampler(sampler, step_size)
    if isinstance(smp, AdaptiveMAP):
        smp.anneal = COLD_ANNEAL if start is None else 1.0
    was_training = model.generator.training
    model.generator.eval()
    out = []
    for b, index in enumerate(torch.arange(len(data)).split(batch_size)):
        y = model.observation.measure(data.get(index, device))  # A x under --observe
        if start is None:
            z0 = model.prior.mode(len(index), device)
        else:
            z0 = start[index.to(start.device)].to(device)
        mask = masks.for_indices(index, device) if masks is not None else None
        out.append(smp.infer(z0, y, model.generator, model.observation, model.prior, steps,
                             mask=mask, rng=derived_generator(seed, "infer", b)))
    model.generator.train(was_training)
    return torch.cat(out)


def spread_subset(n: int, limit: int) -> torch.Tensor | None:
    """At most ``limit`` indices spread evenly over ``range(n)`` (always the same ones), or
    None when ``n`` is within the limit."""
    if n <= limit:
        return None
    return torch.linspace(0, n - 1, limit).round().long()


def training_latents(model: Model, device: torch.device, data: Examples,
                     banked: torch.Tensor, masks: Masks | None = None) -> torch.Tensor:
    """MAP latents of training examples, refined from their banked Langevin samples, so that
    training error is measured the way held-out error is (at the posterior mode)."""
    return infer_latents(model, device, data, REFINE_STEPS, DEFAULT_SAMPLER, masks=masks,
                         start=banked)


@torch.no_grad()
def per_example_mse(model: Model, device: torch.device, data: Examples, z: torch.Tensor,
                    batch_size: int = 256, masks: Masks | None = None,
                    where: str = "all") -> torch.Tensor:
    """Mean squared error per element of each example, on the modality's metric scale.

    ``where`` picks the entries: "all", or with ``masks`` "observed" or "missing". The output
    is clipped to the data range first, as the writers clip it: the error is that of what a
    user gets (it matters only for generators with headroom beyond the range).
    """
    errs = []
    for index in torch.arange(len(data)).split(batch_size):
        y = data.get(index, device)
        sq = (y - _output(model, z[index.to(z.device)])).pow(2)
        errs.append(masked_mean(sq, index, device, masks, where))
    return torch.cat(errs) * model.metric_scale


def _output(model: Model, z: torch.Tensor) -> torch.Tensor:
    """f(z) clipped to the modality's data range."""
    lo, hi = model.modality.data_range
    return model.generator(z).clamp(lo, hi)


def masked_mean(sq: torch.Tensor, index: torch.Tensor, device: torch.device,
                 masks: Masks | None, where: str) -> torch.Tensor:
    if where == "all" or masks is None:
        return sq.flatten(1).mean(1).cpu()
    m = masks.for_indices(index, device).expand_as(sq)
    if where == "missing":
        m = 1.0 - m
    count = m.flatten(1).sum(1)
    # an example with no entries of the kind asked contributes NaN, and nanmean skips it
    return ((sq * m).flatten(1).sum(1) / count.where(count > 0, torch.nan)).cpu()


@torch.no_grad()
def per_example_extras(model: Model, device: torch.device, data: Examples, z: torch.Tensor,
                       batch_size: int = 256) -> dict[str, torch.Tensor]:
    """The modality's own error measures (``Modality.extra_metrics``) per example."""
    parts: dict[str, list[torch.Tensor]] = {}
    for index in torch.arange(len(data)).split(batch_size):
        y = data.get(index, device)
        x = _output(model, z[index.to(z.device)])
        for name, v in model.modality.extra_metrics(y, x, model.options).items():
            parts.setdefault(name, []).append(v.cpu())
    return {name: torch.cat(v) for name, v in parts.items()}


def masks_for(model: Model, spec: str, n_examples: int, what: str) -> Masks:
    """The masks ``spec`` names (``--mask``) for ``n_examples`` examples of ``what``, drawn with
    the run's seed: a training example gets the same holes it had in training."""
    from latentgen.data.masks import parse_masks
    from latentgen.errors import UserError

    if model.observation.operator is not None:
        raise UserError(f"`mask` {spec}: the run learned from indirect observations "
                        f"(`observe` {model.config.observe}); leave `mask` out")
    masks = parse_masks(spec, model.modality, model.options,
                        tuple(model.generator.data_shape), seed=model.config.seed)
    masks.check(n_examples, what)
    return masks
