"""Latents for examples the generator was not trained on (or re-inferred from scratch).

Held-out data has no banked latents, so they are inferred on the fixed generator: chains start
at the prior's mode (zero) and run ``steps`` updates of the chosen sampler. The default,
``DEFAULT_STEPS`` gradient-descent steps at the run's step size, finds the MAP latent: the
reconstruction that error figures are about. Langevin may be chosen instead (a posterior sample).
"""

from __future__ import annotations

import torch

from .data import Examples
from .model import TrainedRun
from .seeding import derived_generator

DEFAULT_STEPS = 300
DEFAULT_SAMPLER = "gd"


def infer_latents(trained: TrainedRun, data: Examples, steps: int = DEFAULT_STEPS,
                  sampler: str = DEFAULT_SAMPLER, step_size: float | None = None,
                  batch_size: int = 256, seed: int = 0) -> torch.Tensor:
    model = trained.model
    smp = model.sampler(sampler, step_size)
    out = []
    for b, index in enumerate(torch.arange(len(data)).split(batch_size)):
        y = data.get(index, trained.device)
        z0 = torch.zeros((len(index), *model.generator.latent_shape), device=trained.device)
        rng = derived_generator(seed, "infer", b)
        out.append(smp.infer(z0, y, model.generator, model.observation, model.prior, steps,
                             rng=rng))
    return torch.cat(out)


@torch.no_grad()
def per_example_mse(trained: TrainedRun, data: Examples, z: torch.Tensor,
                    batch_size: int = 256) -> torch.Tensor:
    """Mean squared error per element of each example, on the modality's metric scale."""
    model = trained.model
    errs = []
    for index in torch.arange(len(data)).split(batch_size):
        y = data.get(index, trained.device)
        x = model.generator(z[index.to(z.device)])
        errs.append((y - x).pow(2).flatten(1).mean(1).cpu())
    return torch.cat(errs) * model.modality.metric_scale
