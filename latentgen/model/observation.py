"""Observation model: Y = f(Z; W) + eps with Gaussian eps of standard deviation sigma."""

from __future__ import annotations

from torch import Tensor


class GaussianObservation:
    """-log p(Y | Z) up to a constant: ||Y - f(Z)||^2 / (2 sigma^2), per example.

    The squared error is SUMMED over every dimension of an example, never averaged, so that
    sigma means the same thing for every image size, clip length and mask. A mask (1 = observed,
    0 = missing, broadcastable to the data) removes missing entries from the sum entirely.
    """

    def __init__(self, sigma: float) -> None:
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        self.sigma = float(sigma)

    def energy(self, y: Tensor, x: Tensor, mask: Tensor | None = None) -> Tensor:
        diff = y - x
        sq = diff * diff
        if mask is not None:
            sq = sq * mask
        return sq.flatten(1).sum(1) / (2.0 * self.sigma**2)
