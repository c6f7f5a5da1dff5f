"""Observation model: Y = f(Z; W) + eps with Gaussian eps of standard deviation sigma."""

from __future__ import annotations

import math

from torch import Tensor

from latentgen.model.operators import Operator

#: the smallest sigma learning may reach (model units): a generator that fits its training
#: examples exactly would otherwise drive sigma, and with it every Langevin step, to zero
SIGMA_FLOOR = 0.01


class GaussianObservation:
    """-log p(Y | Z) up to a constant: ||Y - f(Z)||^2 / (2 sigma^2), per example.

    The squared error is SUMMED over every dimension of an example, never averaged, so that
    sigma means the same thing for every image size, clip length and mask. A mask (1 = observed,
    0 = missing, broadcastable to the data) removes missing entries from the sum entirely.
    """

    def __init__(self, sigma: float, learn: bool = False,
                 operator: Operator | None = None) -> None:
        if not sigma > 0:
            raise ValueError(f"sigma must be positive, got {sigma}")
        #: a known linear map A: the data are observed as y = A x (``--observe``), so the
        #: energy compares A f(Z) with y; None: y = x
        self.operator = operator
        self.sigma = float(sigma)
        #: the sigma the run started from (``--sigma``): the Langevin step is given at it
        self.initial = float(sigma)
        #: whether ``learn`` refits sigma to the training residuals
        self.learns = bool(learn)

    def learn(self, mse: float) -> None:
        """The maximum-likelihood step for sigma (an M-step beside the generator's): sigma^2 =
        the mean squared residual per entry of the training examples at their inferred
        latents. A no-op for a fixed sigma."""
        if self.learns and math.isfinite(mse) and mse > 0:
            self.sigma = max(math.sqrt(mse), SIGMA_FLOOR)

    @property
    def scale(self) -> float:
        """sigma / initial sigma: Langevin steps scale by it, so that delta / sigma, and with
        it the sampler's stability (step x curvature, the curvature ~ 1 / sigma^2) and its
        noise relative to the posterior's width (~ sigma), stay what they were at --sigma."""
        return self.sigma / self.initial

    def state_dict(self) -> dict[str, float]:
        return {"sigma": self.sigma}

    def load_state_dict(self, state: dict[str, float]) -> None:
        if "sigma" in state:
            self.sigma = float(state["sigma"])

    def measure(self, x: Tensor) -> Tensor:
        """What is observed of data ``x``: A x, or x itself."""
        return x if self.operator is None else self.operator(x)

    def residual(self, y: Tensor, x: Tensor) -> Tensor:
        """y - A x for observations ``y`` and data-space ``x`` (the generator's output)."""
        return y - self.measure(x)

    def energy(self, y: Tensor, x: Tensor, mask: Tensor | None = None) -> Tensor:
        """||y - A x||^2 / (2 sigma^2) per example, ``y`` observed, ``x`` in data space."""
        diff = self.residual(y, x)
        sq = diff * diff
        if mask is not None:
            sq = sq * mask
        return sq.flatten(1).sum(1) / (2.0 * self.sigma**2)
