"""Posterior inference of latents on a fixed generator: Langevin dynamics and gradient descent.

One step on the log posterior log p(Z | Y) = -E(Y, f(Z)) + log p(Z) + const:

    Z <- Z + (delta^2 / 2) * [ -dE/dZ + d log p(Z)/dZ ] + delta * N(0, I)

Langevin keeps the noise term (a posterior sample); gradient descent drops it (MAP estimate).
Every step is batched: one forward and one backward pass for the whole batch.
"""

from __future__ import annotations

from abc import ABC
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn

from latentgen.model.observation import GaussianObservation
from latentgen.model.priors import Prior


class RowNoise:
    """Noise for some rows of a larger batch: every draw makes the whole batch's noise from
    ``generator`` and keeps ``rows``. A process of a distributed run that holds a few examples
    of a global batch thus gets for each of them the very noise one process would draw."""

    def __init__(self, generator: torch.Generator, batch_size: int, rows: Tensor) -> None:
        self.generator = generator
        self.batch_size = batch_size
        self.rows = rows

    @property
    def device(self) -> torch.device:
        return self.generator.device


#: where samplers draw noise from: a torch generator, or rows of a larger batch's draws
NoiseSource = torch.Generator | RowNoise | None


def normal_like(z: Tensor, rng: NoiseSource) -> Tensor:
    """Standard normal noise shaped like ``z`` (on its device) from ``rng``. Samplers draw
    every random number through this (or ``RowNoise``-aware code), so that a distributed run
    gives each example the noise one process would."""
    if isinstance(rng, RowNoise):
        full = torch.randn((rng.batch_size, *z.shape[1:]), generator=rng.generator,
                           device=rng.device)
        return full[rng.rows.to(full.device)].to(z.device)
    eps = torch.randn(z.shape, generator=rng, device=rng.device if rng is not None else z.device)
    return eps.to(z.device)


@contextmanager
def frozen(module: nn.Module) -> Iterator[nn.Module]:
    """Parameters stop requiring grad, so inference builds no graph for weight gradients."""
    flags = [p.requires_grad for p in module.parameters()]
    for p in module.parameters():
        p.requires_grad_(False)
    try:
        yield module
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


class Sampler(ABC):
    """Infers latents for data ``y`` from starting points ``z0`` with the generator held fixed."""

    name = "sampler"
    noise = True

    def __init__(self, step_size: float) -> None:
        if not step_size > 0:
            raise ValueError(f"step size must be positive, got {step_size}")
        self.step_size = float(step_size)

    def infer(self, z0: Tensor, y: Tensor, generator: nn.Module, observation: GaussianObservation,
              prior: Prior, steps: int, mask: Tensor | None = None,
              rng: NoiseSource = None) -> Tensor:
        """Run ``steps`` updates from ``z0``; noise, if any, is drawn from ``rng`` through
        ``normal_like``."""
        half_sq = 0.5 * self.step_size**2
        z = z0.detach().clone().requires_grad_(True)
        with frozen(generator), torch.enable_grad():
            for _ in range(steps):
                z.grad = None
                energy = observation.energy(y, generator(z), mask).sum()
                # backward(inputs=...) rather than autograd.grad: same result, and it works
                # under torch.utils.flop_counter, which the benchmark uses.
                energy.backward(inputs=[z])
                assert z.grad is not None
                with torch.no_grad():
                    step = prior.grad_log_prob(z).sub_(z.grad)
                    z.add_(step, alpha=half_sq)
                    if self.noise:
                        z.add_(normal_like(z, rng), alpha=self.step_size)
        return z.detach()


class Langevin(Sampler):
    """Langevin dynamics: gradient ascent on log p(Z | Y) plus Gaussian noise (a sample)."""

    name = "langevin"
    noise = True


class GradientDescent(Sampler):
    """The same update without noise: MAP inference of Z."""

    name = "gd"
    noise = False


class AdaptiveMAP(Sampler):
    """MAP inference that cannot diverge: gradient descent on -log p(Z | Y) with a step per
    example that grows by 1.2 after an accepted step and halves after a rejected one (a step
    is rejected when it would raise that example's energy).

    A fixed step (``gd``) is stable only while step x curvature < 2; the curvature grows with
    the number of data entries and shrinks with sigma^2, so the training step size (0.3) can
    make plain gradient descent oscillate on large examples. This sampler starts from the
    same step (delta^2 / 2) and finds its own, one forward and backward pass per step.
    """

    name = "map"
    noise = False

    def infer(self, z0: Tensor, y: Tensor, generator: nn.Module, observation: GaussianObservation,
              prior: Prior, steps: int, mask: Tensor | None = None,
              rng: NoiseSource = None) -> Tensor:
        def evaluate(z: Tensor) -> tuple[Tensor, Tensor]:
            z = z.detach().requires_grad_(True)
            energy = observation.energy(y, generator(z), mask) - prior.log_prob(z)
            energy.sum().backward(inputs=[z])
            return energy.detach(), z.grad.detach()  # type: ignore[union-attr]

        view = (-1, *([1] * (z0.dim() - 1)))
        with frozen(generator), torch.enable_grad():
            z = z0.detach().clone()
            energy, grad = evaluate(z)
            step = torch.full((z.shape[0],), 0.5 * self.step_size**2, device=z.device)
            for _ in range(steps):
                trial = z - step.view(view) * grad
                e_trial, g_trial = evaluate(trial)
                ok = e_trial <= energy
                z = torch.where(ok.view(view), trial, z)
                grad = torch.where(ok.view(view), g_trial, grad)
                energy = torch.where(ok, e_trial, energy)
                step = torch.where(ok, step * 1.2, step * 0.5)
        return z.detach()
