"""Missing entries filled with their posterior mean: randomize-then-optimize.

A masked example (occluded pixels, the missing frames of a clip) has a posterior over what its
holes hold, and the estimate with the least expected squared error is that posterior's mean,
E[f(Z) | observed entries], not f at the posterior's mode. The two differ most where the model
is sharp and the observed entries leave it unsure: the middle third of a clip of a bouncing
ball, where the mode draws one sharp ball on one path and a wrong path costs twice what a
blur between the likely ones does. MAP inference therefore lost to a linear dynamic system's
smoother (a posterior mean) on the missing frames of held-out clips, and lost more the sharper
training made the model (docs/video.md).

Langevin chains started at the mode do not reach the other paths: their step must stay below
what the observed entries' curvature allows, and the paths differ by innovations of the
prior's whole scale. So each of ``samples`` draws is instead one optimisation of a randomly
perturbed posterior (randomize-then-optimize, or perturb-and-MAP): the observed entries get
noise of the observation's sigma, y + sigma * e, and the prior's centre is moved to a prior
draw Z~ (for a Gaussian prior, N(Z; Z~, Sigma) in place of N(Z; mu, Sigma)); the draw's MAP
fit starts at Z~. For a linear generator with a Gaussian prior these fits are exact posterior
samples; here they are independent approximate ones, each one sampler run, so K of them cost
K times the MAP fit. The estimate is the mean of their (clipped) outputs.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import Tensor, nn

from latentgen.data.examples import Examples
from latentgen.data.masks import Masks
from latentgen.measures.defaults import COLD_ANNEAL, DEFAULT_SAMPLER, DEFAULT_STEPS
from latentgen.measures.inference import infer_latents, masked_mean
from latentgen.model.observation import GaussianObservation
from latentgen.model.priors import Prior
from latentgen.model.samplers import AdaptiveMAP, Sampler
from latentgen.runtime.seeding import derived_generator

if TYPE_CHECKING:
    from latentgen.assembly.model import Model


class CentredPrior(Prior):
    """``prior`` moved by ``shift`` (one per example): log p(Z - shift). For a Gaussian prior
    with mean mu this is the Gaussian centred at mu + shift, the perturbed prior term of
    randomize-then-optimize."""

    def __init__(self, prior: Prior, shift: Tensor) -> None:
        super().__init__(tuple(prior.latent_shape))
        self.base, self.shift = prior, shift

    def log_prob(self, z: Tensor) -> Tensor:
        return self.base.log_prob(z - self.shift)

    def grad_log_prob(self, z: Tensor) -> Tensor:
        return self.base.grad_log_prob(z - self.shift)

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> Tensor:  # not used by samplers
        return self.base.sample(n, generator, device) + self.shift.to(device)

    def mode(self, n: int, device: torch.device | str = "cpu") -> Tensor:
        return self.base.mode(n, device) + self.shift.to(device)


@dataclass
class Recovered:
    """What masked inference returns: ``outputs``, the estimate of every entry (N, *data
    shape, on the CPU, clipped to the data range), and ``latents``, each example's MAP latent
    given its observed entries (what scores and latent measures read)."""

    outputs: Tensor
    latents: Tensor


@torch.no_grad()
def _clipped(model: Model, z: Tensor) -> Tensor:
    lo, hi = model.modality.data_range
    return model.generator(z).clamp(lo, hi)


def recover(model: Model, device: torch.device, data: Examples, masks: Masks,
            steps: int = DEFAULT_STEPS, sampler: str = DEFAULT_SAMPLER, samples: int = 0,
            batch_size: int = 256, seed: int = 0) -> Recovered:
    """Estimates of the examples of ``data`` from the entries ``masks`` observes: with
    ``samples`` K > 0 the mean of K randomize-then-optimize draws (the module's docstring),
    with 0 f at the MAP latent; each fit is ``steps`` updates of ``sampler``. The MAP latents
    are returned either way (K > 0 costs K + 1 fits)."""
    if samples < 0:
        raise ValueError(f"samples must be 0 or more, got {samples}")
    z_map = infer_latents(model, device, data, steps, sampler, masks=masks,
                          batch_size=batch_size, seed=seed)
    if samples == 0:
        return Recovered(_batched_outputs(model, z_map, batch_size), z_map.cpu())
    smp = model.sampler(sampler)
    if isinstance(smp, AdaptiveMAP):
        smp.anneal = COLD_ANNEAL  # each draw starts far from its fit, as from the mode
    was_training = model.generator.training
    model.generator.eval()
    outputs = []
    for b, index in enumerate(torch.arange(len(data)).split(batch_size)):
        y = data.get(index, device)
        total = torch.zeros_like(y)
        for z in perturbed_fits(smp, model.generator, model.observation, model.prior, y,
                                masks.for_indices(index, device), samples, steps, seed, b):
            total += _clipped(model, z)
        outputs.append((total / samples).cpu())
    model.generator.train(was_training)
    return Recovered(torch.cat(outputs), z_map.cpu())


def perturbed_fits(sampler: Sampler, generator: nn.Module, observation: GaussianObservation,
                   prior: Prior, y: Tensor, mask: Tensor | None, samples: int, steps: int,
                   seed: int = 0, batch: int = 0) -> Iterator[Tensor]:
    """``samples`` randomize-then-optimize draws of the latents of ``y`` (one batch): each is
    ``steps`` updates of ``sampler`` on the posterior with ``y``'s observed entries plus noise
    of the observation's sigma and the prior centred on a prior draw, started at that draw.
    Draw k of batch b uses the random numbers of ``(seed, b, k)`` only."""
    for k in range(samples):
        g = derived_generator(seed, "recover", batch, k)
        draw = prior.sample(len(y), generator=g).to(y.device)
        shift = draw - prior.mode(len(y), y.device)
        noisy = y + observation.sigma * torch.randn(y.shape, generator=g).to(y.device)
        yield sampler.infer(draw, noisy, generator, observation, CentredPrior(prior, shift),
                            steps, mask=mask, rng=derived_generator(seed, "recover-chain",
                                                                    batch, k))


def _batched_outputs(model: Model, z: Tensor, batch_size: int) -> Tensor:
    return torch.cat([_clipped(model, part).cpu() for part in z.split(batch_size)])


def masked_mse(model: Model, data: Examples, outputs: Tensor, masks: Masks, where: str,
               batch_size: int = 256) -> Tensor:
    """Per-example mean squared error of ``outputs`` on the ``where`` ("observed" or
    "missing") entries, on the modality's metric scale; NaN for an example with none."""
    errs = []
    for index in torch.arange(len(data)).split(batch_size):
        sq = (data.get(index) - outputs[index]).pow(2)
        errs.append(masked_mean(sq, index, torch.device("cpu"), masks, where))
    return torch.cat(errs) * model.metric_scale
