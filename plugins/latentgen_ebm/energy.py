"""The energy-based prior p(Z) ~ exp(-E(Z)) N(0, I) on the latent factors.

E is an MLP (d -> width -> ... -> 1, GELU), small beside the generator. A latent field
(d, *positions) is scored position by position with the same E and the energies summed, as if
its channel vectors were independent draws: a fully convolutional generator then still takes
a larger field for a larger output, and a vector latent (d,) is the published model exactly.

Draws are short-run Langevin chains started from N(0, I) (``PriorSettings.steps`` steps of
size ``step_size``):

    Z <- Z - s^2 / 2 * (dE/dZ + Z) + s * N(0, I)

Learning is maximum likelihood: the gradient of log p(Z_posterior) is that of
-E(Z_posterior) + E(Z_prior) in expectation, so the loss the trainer minimises per example is
E(Z_posterior) - E(Z_prior) (``contrast``), with Z_prior a fresh draw of the chains above. E
then lowers the energy where the posterior latents are and raises it where the prior's chains
end up without them, until the two agree.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from latentgen import Prior, PriorSettings

#: draws run this many chains at a time: the chains' graphs stay small for any number asked
DRAW_CHUNK = 4096


def energy_net(d: int, width: int, depth: int) -> nn.Sequential:
    """d -> width (-> width) x (depth - 1) -> 1, GELU between the layers."""
    if width < 1 or depth < 1:
        raise ValueError(f"the energy needs width and depth of at least 1, got {width}, {depth}")
    layers: list[nn.Module] = []
    size = d
    for _ in range(depth):
        layers += [nn.Linear(size, width), nn.GELU()]
        size = width
    layers.append(nn.Linear(size, 1))
    return nn.Sequential(*layers)


class EnergyPrior(Prior):
    """p(Z) ~ exp(-E(Z)) N(0, I), E learned by the trainer beside the generator."""

    normalized = False

    def __init__(self, latent_shape: tuple[int, ...],
                 settings: PriorSettings = PriorSettings()) -> None:
        super().__init__(latent_shape)
        self.settings = settings
        self.net = energy_net(self.latent_shape[0], settings.width, settings.depth)

    # -- the energy ----------------------------------------------------------------------
    def energy(self, z: Tensor, net: nn.Module | None = None) -> Tensor:
        """E(Z) per example, shape (n,): the sum of E over a field's positions."""
        net = self.net if net is None else net
        assert net is not None
        n, d = z.shape[0], z.shape[1]
        positions = math.prod(z.shape[2:])
        vectors = z.reshape(n, d, positions).transpose(1, 2).reshape(n * positions, d)
        return net(vectors).reshape(n, positions).sum(1)

    def contrast(self, z_posterior: Tensor, z_prior: Tensor,
                 net: nn.Module | None = None) -> Tensor:
        return self.energy(z_posterior, net) - self.energy(z_prior, net)

    def log_prob(self, z: Tensor) -> Tensor:
        """log p(Z) up to the (unknown) normalising constant of exp(-E) N(0, I)."""
        return (-self.energy(z) - 0.5 * z.flatten(1).pow(2).sum(1)
                - 0.5 * math.prod(z.shape[1:]) * math.log(2 * math.pi))

    def grad_log_prob(self, z: Tensor) -> Tensor:
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.energy(z).sum(), z)
        return -(g + z.detach())

    # -- draws ---------------------------------------------------------------------------
    def _device(self) -> torch.device:
        assert self.net is not None
        return next(self.net.parameters()).device

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> Tensor:
        if n > DRAW_CHUNK:  # many draws (e.g. as many as a large latent bank): memory flat
            return torch.cat([self.sample(min(DRAW_CHUNK, n - i), generator, device)
                              for i in range(0, n, DRAW_CHUNK)])
        work = self._device()
        noise_device = generator.device if generator is not None else work

        def normal(shape: tuple[int, ...]) -> Tensor:
            return torch.randn(shape, generator=generator, device=noise_device).to(work)

        z = normal((n, *self.latent_shape))
        s = self.settings.step_size
        dtype = next(self.net.parameters()).dtype  # type: ignore[union-attr]
        z = z.to(dtype)
        for _ in range(self.settings.steps):
            # the drift is -(dE/dZ + Z) = grad log p: grad_log_prob's own formula
            z = z + 0.5 * s * s * self.grad_log_prob(z) + s * normal(tuple(z.shape)).to(dtype)
        return z.detach().to(device)

    # -- checkpoints ---------------------------------------------------------------------
    def state_dict(self) -> dict[str, Tensor]:
        assert self.net is not None
        return {f"net.{k}": v.detach().clone() for k, v in self.net.state_dict().items()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if not state:  # nothing learned yet
            return
        assert self.net is not None
        weights = {k[len("net."):]: v for k, v in state.items() if k.startswith("net.")}
        stray = sorted(k for k in state if not k.startswith("net."))
        if stray:
            raise ValueError(f"prior parameters {stray} are not an energy network's")
        self.net.load_state_dict(weights)
