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


def posterior_energy(z: Tensor, y: Tensor, generator: nn.Module,
                     observation: GaussianObservation, prior: Prior,
                     mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """-log p(Z | Y) per example (up to a constant) and its gradient with respect to ``z``
    (one forward and one backward pass; call with the generator frozen and grad enabled)."""
    z = z.detach().requires_grad_(True)
    energy = observation.energy(y, generator(z), mask) - prior.log_prob(z)
    energy.sum().backward(inputs=[z])
    return energy.detach(), z.grad.detach()  # type: ignore[union-attr]


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


class UnadjustedLangevin(Sampler):
    """The seed's Langevin update as written, with a fixed step and no correction. Stable only
    while the step stays below the posterior's curvature allows (see ``Langevin``)."""

    name = "ula"
    noise = True


class Langevin(Sampler):
    """Langevin dynamics that cannot diverge: the seed's update, each move accepted or
    rejected per example by the Metropolis-Hastings rule (MALA); a rejected example halves its
    step for the rest of the chain.

    Why: the update is stable only while (delta^2 / 2) x lambda_max(J^T J) / sigma^2 < 2, J the
    generator's Jacobian at Z. Training sharpens the generator and lambda grows with it; on
    the embedded faces it reached 1.75 of that 2 at the defaults, and the examples that
    crossed it were flung far from their posterior, their errors dragged the next weight step
    off course, and the training error doubled for several epochs. The test needs the
    posterior energy and its gradient at the proposal, which the next step computes anyway:
    one more forward and backward pass per chain, whatever its length. Where the step is
    stable nearly every move is accepted and this is the plain update.
    """

    name = "langevin"
    noise = True
    acceptance = 1.0

    def infer(self, z0: Tensor, y: Tensor, generator: nn.Module, observation: GaussianObservation,
              prior: Prior, steps: int, mask: Tensor | None = None,
              rng: NoiseSource = None) -> Tensor:
        if steps <= 0 or z0.shape[0] == 0:  # (a process may hold no rows of a batch)
            return z0.detach().clone()

        def evaluate(z: Tensor) -> tuple[Tensor, Tensor]:
            return posterior_energy(z, y, generator, observation, prior, mask)

        view = (-1, *([1] * (z0.dim() - 1)))
        accepted = torch.zeros((), device=z0.device)
        with frozen(generator), torch.enable_grad():
            z = z0.detach().clone()
            energy, grad = evaluate(z)
            # eta = delta^2 / 2 per example; the noise is sqrt(2 eta) = delta
            eta = torch.full((z.shape[0],), 0.5 * self.step_size**2, device=z.device,
                             dtype=energy.dtype)
            for _ in range(steps):
                e = eta.view(view)
                noise = normal_like(z, rng)
                trial = z - e * grad + (2 * e).sqrt() * noise
                e_trial, g_trial = evaluate(trial)
                # log q(z | trial) - log q(trial | z) for the Gaussian proposals
                back = (z - trial + e * g_trial).flatten(1).pow(2).sum(1)
                forth = (trial - z + e * grad).flatten(1).pow(2).sum(1)
                log_ratio = energy - e_trial - (back - forth) / (4 * eta)
                u = torch.special.ndtr(normal_like(z.new_empty(z.shape[0], 1), rng)).view(-1)
                ok = torch.log(u) < log_ratio  # NaN (an overflowed proposal) rejects
                z = torch.where(ok.view(view), trial, z)
                grad = torch.where(ok.view(view), g_trial, grad)
                energy = torch.where(ok, e_trial, energy)
                eta = torch.where(ok, eta, eta * 0.5)
                accepted = accepted + ok.sum()
        #: the fraction of moves the last chain accepted (a diagnostic: far below 1, the step
        #: is too large for the posterior and the chains move slowly)
        self.acceptance = float(accepted) / (steps * z0.shape[0]) if z0.shape[0] else 1.0
        return z.detach()


class GradientDescent(Sampler):
    """The same update without noise: MAP inference of Z."""

    name = "gd"
    noise = False


class AdaptiveMAP(Sampler):
    """MAP inference that cannot diverge, with momentum: heavy-ball descent on -log p(Z | Y)
    with a step per example that grows by ``GROW`` after an accepted step and halves after a
    rejected one (a step is rejected when it would raise that example's energy), the
    example's velocity then restarting from zero.

    A fixed step (``gd``) is stable only while step x curvature < 2; the curvature grows with
    the number of data entries and shrinks with sigma^2, so the training step size (0.3) can
    make plain gradient descent oscillate on large examples. This sampler starts from the
    same step (delta^2 / 2) and finds its own, one forward and backward pass per step.
    Momentum matters because a sharp generator's posterior is badly conditioned: on MNIST
    digits (d = 16, 256 held-out digits) plain adaptive descent reached an error of 0.00932
    in 100 steps, 0.00873 in 300 and 0.00867 in 600, where this reaches 0.00825 in 100 and
    0.00810 in 300 (docs/benchmarks.md).

    ``anneal`` > 1 anneals sigma: the data term starts weighted by 1 / anneal^2 (sigma that
    many times larger, a smooth posterior the prior holds near its mode) and the weight rises
    geometrically to 1 over the first half of the steps. Inference from the prior's mode uses
    it (``latentgen.measures.inference``): on a generator trained to a sharp fit, MAP
    descent from the mode stalls in poor optima far out in the latent space (768 digits, 30
    epochs: mean energy 2,082 and error 0.0139 without, 1,406 and 0.0096 with ``anneal`` 10).
    """

    name = "map"
    noise = False
    #: the velocity kept from one step to the next (0: plain adaptive descent)
    MOMENTUM = 0.95
    #: the step's growth after an accepted step
    GROW = 1.1

    def __init__(self, step_size: float, anneal: float = 1.0) -> None:
        super().__init__(step_size)
        if not anneal >= 1.0:
            raise ValueError(f"anneal must be at least 1, got {anneal}")
        self.anneal = float(anneal)

    def infer(self, z0: Tensor, y: Tensor, generator: nn.Module, observation: GaussianObservation,
              prior: Prior, steps: int, mask: Tensor | None = None,
              rng: NoiseSource = None) -> Tensor:
        def parts(z: Tensor, weight: float) -> tuple[Tensor, Tensor, Tensor]:
            """(data energy, prior energy, gradient of weight x data + prior)."""
            z = z.detach().requires_grad_(True)
            data = observation.energy(y, generator(z), mask)
            held = -prior.log_prob(z)
            (weight * data + held).sum().backward(inputs=[z])
            return data.detach(), held.detach(), z.grad.detach()  # type: ignore[union-attr]

        annealed = max(1, steps // 2) if self.anneal > 1.0 else 0

        def weight(t: int) -> float:  # the data term's weight at step t
            return self.anneal ** (-2.0 * (1.0 - t / annealed)) if t < annealed else 1.0

        view = (-1, *([1] * (z0.dim() - 1)))
        with frozen(generator), torch.enable_grad():
            z = z0.detach().clone()
            data, held, grad = parts(z, weight(0))
            step = torch.full((z.shape[0],), 0.5 * self.step_size**2, device=z.device)
            velocity = torch.zeros_like(z)
            for t in range(steps):
                # while annealing the gradient is that of the previous step's weight (within
                # a few per cent); what is accepted is decided on exact energies at this one
                w = weight(t)
                moved = self.MOMENTUM * velocity - step.view(view) * grad
                trial = z + moved
                d_trial, h_trial, g_trial = parts(trial, w)
                ok = w * d_trial + h_trial <= w * data + held
                keep = ok.view(view)
                z = torch.where(keep, trial, z)
                grad = torch.where(keep, g_trial, grad)
                data = torch.where(ok, d_trial, data)
                held = torch.where(ok, h_trial, held)
                velocity = torch.where(keep, moved, torch.zeros_like(moved))
                step = torch.where(ok, step * self.GROW, step * 0.5)
        return z.detach()
