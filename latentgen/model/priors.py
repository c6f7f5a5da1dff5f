"""Priors p(Z) on the latent factors."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
from torch import Tensor


class Prior(ABC):
    """A distribution over latents of shape ``latent_shape`` (per example)."""

    def __init__(self, latent_shape: tuple[int, ...]) -> None:
        self.latent_shape = tuple(latent_shape)

    @abstractmethod
    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> Tensor:
        """Draw ``n`` latents, shape ``(n, *latent_shape)``."""

    def sample_into(self, out: Tensor, generator: torch.Generator | None = None) -> None:
        """Fill ``out`` (``(n, *latent_shape)``) with the ``n`` draws ``sample(n, generator)``
        gives; override to draw in place (the latent bank of a large dataset is filled this
        way, chunk by chunk, without temporary copies)."""
        out.copy_(self.sample(out.shape[0], generator=generator, device=out.device))

    @abstractmethod
    def log_prob(self, z: Tensor) -> Tensor:
        """Log density per example, shape ``(n,)``."""

    def grad_log_prob(self, z: Tensor) -> Tensor:
        """d log p(z) / dz; override with a closed form where one exists."""
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.log_prob(z).sum(), z)
        return g


class StandardNormal(Prior):
    """N(0, I): the prior of factor analysis and of the seed's model."""

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> Tensor:
        gen_device = generator.device if generator is not None else device
        z = torch.randn((n, *self.latent_shape), generator=generator, device=gen_device)
        return z.to(device)

    def sample_into(self, out: Tensor, generator: torch.Generator | None = None) -> None:
        if generator is not None and generator.device != out.device or not out.is_contiguous():
            return super().sample_into(out, generator)
        torch.randn(out.shape, generator=generator, out=out)

    def log_prob(self, z: Tensor) -> Tensor:
        d = z[0].numel()
        return -0.5 * z.flatten(1).pow(2).sum(1) - 0.5 * d * math.log(2 * math.pi)

    def grad_log_prob(self, z: Tensor) -> Tensor:
        return -z
