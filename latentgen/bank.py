"""The latent bank: the persistent Z_i of every training example, indexed by dataset index.

ABP's Langevin chains are persistent: each epoch continues example i's chain from where the
previous epoch left it, so the bank is part of the model's state and lives in every checkpoint.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .priors import Prior


class LatentBank:
    """N latents of shape ``latent_shape`` on one device, read and written by index batches."""

    def __init__(self, latents: Tensor) -> None:
        self.latents = latents

    @classmethod
    def from_prior(cls, prior: Prior, n: int, seed: int,
                   device: torch.device | str = "cpu") -> "LatentBank":
        """Chains start at prior draws that depend only on the seed (not on the device)."""
        rng = torch.Generator().manual_seed(seed)
        return cls(prior.sample(n, generator=rng).to(device))

    def __len__(self) -> int:
        return self.latents.shape[0]

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.latents.shape[1:])

    def read(self, index: Tensor) -> Tensor:
        return self.latents[index.to(self.latents.device)]

    def write(self, index: Tensor, z: Tensor) -> None:
        self.latents[index.to(self.latents.device)] = z.to(self.latents.device, self.latents.dtype)

    def state(self) -> Tensor:
        return self.latents.detach().cpu().clone()

    def load(self, latents: Tensor) -> None:
        if latents.shape != self.latents.shape:
            raise ValueError(f"latent bank shape {tuple(latents.shape)} does not match "
                             f"{tuple(self.latents.shape)}")
        self.latents.copy_(latents)
