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

    def latent_roles(self, latent_shape: tuple[int, ...]) -> Tensor | None:
        """Which positions of a latent field of ``latent_shape`` play which part: a long
        tensor with a role index (0, 1, ...) per position of the flattened field, or None
        when every position plays the same part (the default). A prior that learns from the
        latent bank (``gaussian``) then learns one law per role; a longer field (``--scale``)
        asks again for its own shape."""
        return None

