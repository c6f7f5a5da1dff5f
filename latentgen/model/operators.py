"""Known linear operators A for learning from indirect observations y = A x (``--observe``).

The ABP paper learns a generator from compressed observations: the model stays
Y = A f(Z; W) + eps, so inference and learning only ever compare A f(Z) with y, and the
generator learns x's distribution without seeing an x. The operators act on a batch of data of
shape (N, C, *spatial), for any modality (1, 2 or 3 spatial axes):

- ``random:F``: a fixed Gaussian random projection of the flattened example to
  round(F * D) numbers (entries N(0, 1 / K), drawn from the run's seed);
- ``blur:S``: a Gaussian blur of standard deviation S samples along every spatial axis
  (zero padding at the borders);
- ``downsample:K``: the mean of each K x K (x K) block.

``min_norm`` inverts any of them in the least-squares sense (conjugate gradients on the
normal equations, matrix-free through autograd): the x of least norm with A x closest to y.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import torch
import torch.nn.functional as F
from torch import Tensor

from latentgen.data.mask_specs import OBSERVE_HELP
from latentgen.errors import UserError


class Operator(ABC):
    """A linear map from data (N, *data_shape) to observations (N, *observed_shape)."""

    def __init__(self, data_shape: tuple[int, ...]) -> None:
        self.data_shape = tuple(data_shape)

    @abstractmethod
    def __call__(self, x: Tensor) -> Tensor:
        """A x for a batch ``x``; differentiable."""

    @property
    def observed_shape(self) -> tuple[int, ...]:
        return tuple(self(torch.zeros(1, *self.data_shape)).shape[1:])


class RandomProjection(Operator):
    def __init__(self, data_shape: tuple[int, ...], fraction: float, seed: int) -> None:
        super().__init__(data_shape)
        dim = math.prod(data_shape)
        self.k = max(1, round(fraction * dim))
        g = torch.Generator().manual_seed(seed)
        self.matrix = torch.randn(self.k, dim, generator=g) / math.sqrt(self.k)
        self._on: dict[tuple[torch.device, torch.dtype], Tensor] = {}

    def __call__(self, x: Tensor) -> Tensor:
        key = (x.device, x.dtype)
        if key not in self._on:
            self._on[key] = self.matrix.to(x.device, x.dtype)
        return x.flatten(1) @ self._on[key].T

    @property
    def observed_shape(self) -> tuple[int, ...]:
        return (self.k,)


class Blur(Operator):
    def __init__(self, data_shape: tuple[int, ...], sigma: float) -> None:
        super().__init__(data_shape)
        radius = max(1, math.ceil(3 * sigma))
        t = torch.arange(-radius, radius + 1, dtype=torch.float64)
        kernel = torch.exp(-0.5 * (t / sigma) ** 2)
        self.kernel = (kernel / kernel.sum()).float()
        self.radius = radius

    def __call__(self, x: Tensor) -> Tensor:
        spatial = x.dim() - 2
        conv = (F.conv1d, F.conv2d, F.conv3d)[spatial - 1]
        channels = x.shape[1]
        k = self.kernel.to(x.device, x.dtype)
        for axis in range(spatial):  # separable: one 1D kernel per axis
            shape = [1] * spatial
            shape[axis] = len(k)
            padding = [0] * spatial
            padding[axis] = self.radius
            weight = k.view(1, 1, *shape).expand(channels, 1, *shape)
            x = conv(x, weight, padding=tuple(padding), groups=channels)
        return x


class Downsample(Operator):
    def __init__(self, data_shape: tuple[int, ...], factor: int) -> None:
        super().__init__(data_shape)
        if any(n % factor for n in data_shape[1:]):
            raise UserError(f"`observe` downsample:{factor}: the data's size "
                            f"{tuple(data_shape[1:])} is not a multiple of {factor}; choose a "
                            "factor that divides it")
        self.factor = factor

    def __call__(self, x: Tensor) -> Tensor:
        pool = (F.avg_pool1d, F.avg_pool2d, F.avg_pool3d)[x.dim() - 3]
        return pool(x, self.factor)


def parse_operator(spec: str, data_shape: tuple[int, ...], seed: int) -> Operator:
    """The operator ``spec`` names (``OBSERVE_HELP``) for data of ``data_shape``."""
    kind, _, value = spec.partition(":")
    try:
        number = float(value)
    except ValueError:
        number = math.nan
    if kind == "random" and 0 < number <= 1:
        return RandomProjection(data_shape, number, seed)
    if kind == "blur" and 0 < number <= 1e3:
        return Blur(data_shape, number)
    if kind == "downsample" and number >= 2 and number == int(number):
        return Downsample(data_shape, int(number))
    raise UserError(f"`observe` {spec}: not {OBSERVE_HELP}; give one of those")


def min_norm(op: Operator, y: Tensor, iterations: int = 100) -> Tensor:
    """The x of least norm that minimises ||A x - y|| (per example): x = A^T w with
    (A A^T) w = y, solved by conjugate gradients (``iterations`` at most; stopping early
    regularises an ill-conditioned A such as a strong blur)."""
    x0 = torch.zeros((len(y), *op.data_shape), dtype=y.dtype, device=y.device)

    def a_t(v: Tensor) -> Tensor:  # A^T v, by the vector-Jacobian product of A
        with torch.enable_grad():
            x = x0.clone().requires_grad_(True)
            (g,) = torch.autograd.grad(op(x), x, grad_outputs=v)
        return g

    def dot(a: Tensor, b: Tensor) -> Tensor:
        return (a * b).flatten(1).sum(1).view(-1, *([1] * (a.dim() - 1)))

    w = torch.zeros_like(y)
    r = y.clone()
    p = r.clone()
    rs = dot(r, r)
    for _ in range(iterations):
        with torch.no_grad():
            ap = op(a_t(p))
            alpha = rs / dot(p, ap).clamp_min(1e-30)
            w = w + alpha * p
            r = r - alpha * ap
            new = dot(r, r)
            if float(new.max()) < 1e-20:
                break
            p = r + (new / rs.clamp_min(1e-30)) * p
            rs = new
    return a_t(w).detach()
