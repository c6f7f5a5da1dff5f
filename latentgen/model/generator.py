"""The generator interface: a top-down network f(Z; W) from a latent batch to a data batch."""

from __future__ import annotations

from torch import Tensor, nn


class Generator(nn.Module):
    """Maps latents of shape ``(N, *latent_shape)`` to data of shape ``(N, *data_shape)``.

    A latent may be a vector ``(d,)`` or a spatial field ``(d, h, w)``, ``(d, t)``,
    ``(d, t, h, w)``; a fully convolutional generator then turns a larger field into a larger
    output, which is why both shapes are attributes rather than constructor constants.
    """

    latent_shape: tuple[int, ...]
    data_shape: tuple[int, ...]

    def forward(self, z: Tensor) -> Tensor:  # pragma: no cover - abstract
        raise NotImplementedError
