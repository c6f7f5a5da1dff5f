"""Priors p(Z) on the latent factors."""

from __future__ import annotations

import copy
import inspect
import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn


@dataclass
class LatentMoments:
    """First and second moments of a set of latents, per latent channel (the first axis of
    ``latent_shape``), pooled over a latent field's positions: ``count`` vectors, their
    ``total`` (d,) and the sum of their outer products ``outer`` (d, d), in float64."""

    count: float
    total: Tensor
    outer: Tensor

    @classmethod
    def of(cls, z: Tensor, positions: Tensor | None = None) -> LatentMoments:
        """Moments of ``z`` (n, d, *field); ``positions``: a boolean mask over the field's
        positions (flattened) to pool only those."""
        if positions is not None:
            z = z.reshape(z.shape[0], z.shape[1], -1)[:, :, positions.to(z.device)]
        v = channel_vectors(z).double()
        return cls(float(len(v)), v.sum(0), v.T @ v)

    def __add__(self, other: LatentMoments) -> LatentMoments:
        return LatentMoments(self.count + other.count, self.total + other.total,
                             self.outer + other.outer)

    def mean_cov(self) -> tuple[Tensor, Tensor]:
        mean = self.total / self.count
        return mean, self.outer / self.count - torch.outer(mean, mean)


def channel_vectors(z: Tensor) -> Tensor:
    """``(n, d, *field)`` latents as ``(n * positions, d)`` channel vectors."""
    positions = math.prod(z.shape[2:])
    return z.reshape(z.shape[0], z.shape[1], positions).transpose(1, 2).reshape(-1, z.shape[1])


@dataclass(frozen=True)
class PriorSettings:
    """What a learned prior reads of the run's settings (the ``prior_*`` training settings):
    the Langevin chains that draw from it, and the size of its network. A prior factory that
    takes a ``settings`` keyword is given them (``make_prior``)."""

    #: Langevin steps of a draw (short-run chains from N(0, I))
    steps: int = 60
    #: their step size s: Z <- Z + s^2 / 2 * d log p(Z) / dZ + s * N(0, I)
    step_size: float = 0.4
    #: hidden units per layer of the prior's network
    width: int = 200
    #: hidden layers of the prior's network
    depth: int = 2


def make_prior(factory: Callable[..., Any], latent_shape: tuple[int, ...],
               settings: PriorSettings) -> Prior:
    """The prior a registered factory makes for ``latent_shape``: ``factory(latent_shape)``,
    or ``factory(latent_shape, settings=settings)`` when it takes a ``settings`` keyword."""
    try:
        takes = "settings" in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # a callable without a signature
        takes = False
    prior = factory(latent_shape, settings=settings) if takes else factory(latent_shape)
    if not isinstance(prior, Prior):
        raise TypeError(f"the prior factory made a {type(prior).__name__}, not a "
                        "latentgen.Prior")
    return prior


class Prior(ABC):
    """A distribution over latents of shape ``latent_shape`` (per example)."""

    #: False for a prior known up to its normalising constant only (an energy-based one):
    #: ``log_prob`` is then exact up to a constant, which inference and scores do not need
    #: but a marginal likelihood does
    normalized: bool = True
    #: the network of a prior learned by gradient (e.g. an energy on Z), or None. The trainer
    #: gives it an Adam optimizer of its own (``--prior-lr``), moves it to the training
    #: device, reduces its gradients over processes like the generator's and saves its
    #: optimizer state; ``state_dict`` must hold its weights, ``contrast`` give its loss
    net: nn.Module | None = None

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

    def mode(self, n: int, device: torch.device | str = "cpu") -> Tensor:
        """Where inference of new examples starts: ``n`` copies of the prior's mode (zero
        unless a prior says otherwise)."""
        return torch.zeros((n, *self.latent_shape), device=device)

    #: True for a prior whose parameters follow the training latents: the trainer then calls
    #: ``learn`` with the moments of the whole latent bank after every epoch (one per role,
    #: see ``roles``)
    learns_from_bank: bool = False
    #: which positions of a latent field follow one law: ``Generator.latent_roles``, a
    #: function of the latent shape giving each position's role (None: all alike). A prior
    #: that learns from the bank then learns one law per role (``assign_roles``)
    roles: Callable[[tuple[int, ...]], Tensor | None] | None = None

    def assign_roles(self, roles: Callable[[tuple[int, ...]], Tensor | None]) -> None:
        """Take the generator's roles of latent positions (before training or loading)."""
        self.roles = roles

    def role_index(self) -> Tensor | None:
        """Each position's role (a long tensor over the flattened field), or None."""
        return self.roles(self.latent_shape) if self.roles is not None else None

    def learn(self, moments: LatentMoments | list[LatentMoments]) -> None:
        """Update the parameters from the banked latents' moments (priors that learn): one
        ``LatentMoments``, or one per role when the prior has ``roles``."""

    def contrast(self, z_posterior: Tensor, z_prior: Tensor,
                 net: nn.Module | None = None) -> Tensor:
        """For a prior with a ``net``: per-example terms (n,) whose mean over a batch is the
        loss of its learning step, from the batch's posterior latents and as many draws of
        the prior (maximum likelihood: for p(Z) ~ exp(-E(Z)) N(0, I) the terms are
        E(Z_posterior) - E(Z_prior)). ``net`` replaces ``self.net`` (the trainer passes a
        float64 copy with ``--fp64-gradients``)."""
        raise NotImplementedError(f"{type(self).__name__} has a net but no contrast()")

    def resized(self, latent_shape: tuple[int, ...]) -> Prior:
        """This prior over latents of another field size (the same channels): for priors
        whose law is the same at every position of a field (all of latentgen's), a copy that
        shares the learned parameters. A prior whose law depends on the position overrides
        this (or raises ValueError)."""
        if tuple(latent_shape[:1]) != self.latent_shape[:1]:
            raise ValueError(f"a prior over {self.latent_shape[0]} channels cannot draw "
                             f"latents of shape {tuple(latent_shape)}")
        other = copy.copy(self)
        other.latent_shape = tuple(latent_shape)
        return other

    def to(self, device: torch.device | str) -> Prior:
        """Move the prior's network (if any) to ``device``."""
        if self.net is not None:
            self.net.to(device)
        return self

    def state_dict(self) -> dict[str, Tensor]:
        """Learned parameters, saved in every checkpoint (none for a fixed prior)."""
        return {}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        """Restore what ``state_dict`` returned."""

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
        d = math.prod(z.shape[1:])
        return -0.5 * z.flatten(1).pow(2).sum(1) - 0.5 * d * math.log(2 * math.pi)

    def grad_log_prob(self, z: Tensor) -> Tensor:
        return -z


class LearnedGaussian(Prior):
    """N(mu, Sigma) over each latent channel vector (a field's positions independent and
    alike), with mu and Sigma the moments of the banked latents, refit after every epoch.

    This is the maximum-likelihood step for the prior's parameters (empirical Bayes), taken
    beside ABP's step for the generator's. With N(0, I) fixed, the aggregate posterior (the
    banked latents) drifts away from the prior while the generator adapts to the drift (on 70
    faces: variance 6 per entry instead of 1), so prior samples land where the generator saw
    no latent and come out as grey, faint averages. Sigma is shrunk towards a multiple of the
    identity by d / (vectors + d), which keeps it well conditioned on small data.
    It starts as N(0, I): draws of a new run are those of ``normal``.

    A generator whose field positions play different parts (``Generator.latent_roles``: the
    dynamic video generator's content, initial state and innovations) gets one N(mu_r,
    Sigma_r) per role r, each fit to the positions of that role.
    """

    learns_from_bank = True

    def __init__(self, latent_shape: tuple[int, ...]) -> None:
        super().__init__(latent_shape)
        self._reset(1)

    def _reset(self, groups: int) -> None:
        d = self.latent_shape[0]
        self.means = torch.zeros(groups, d, dtype=torch.float64)  # one row per role
        self.scales = torch.eye(d, dtype=torch.float64).repeat(groups, 1, 1)  # Cholesky factors
        self._cache: dict[tuple[Any, ...], tuple[Tensor, ...]] = {}

    @property
    def mean(self) -> Tensor:
        """mu: (d,), or (roles, d) with roles."""
        return self.means[0] if len(self.means) == 1 else self.means

    @property
    def scale(self) -> Tensor:
        """The Cholesky factor of Sigma: (d, d), or (roles, d, d) with roles."""
        return self.scales[0] if len(self.scales) == 1 else self.scales

    def assign_roles(self, roles: Callable[[tuple[int, ...]], Tensor | None]) -> None:
        super().assign_roles(roles)
        index = self.role_index()
        self._reset(1 if index is None else int(index.max()) + 1)

    def learn(self, moments: LatentMoments | list[LatentMoments]) -> None:
        means, scales = [], []
        for m in moments if isinstance(moments, list) else [moments]:
            mean, cov = m.mean_cov()
            d = len(mean)
            shrink = d / (m.count + d)
            target = cov.diagonal().mean().clamp_min(1e-8) * torch.eye(d, dtype=cov.dtype)
            cov = (1 - shrink) * cov + shrink * target
            means.append(mean)
            scales.append(torch.linalg.cholesky(cov))
        self.load_state_dict({"mean": torch.stack(means), "scale": torch.stack(scales)})

    def state_dict(self) -> dict[str, Tensor]:
        return {"mean": self.mean.clone(), "scale": self.scale.clone()}

    def load_state_dict(self, state: dict[str, Tensor]) -> None:
        if not state:  # a checkpoint of a fixed prior: keep N(0, I)
            return
        d = self.latent_shape[0]
        mean = state["mean"].detach().double().cpu()
        scale = state["scale"].detach().double().cpu()
        if mean.dim() == 1 and scale.dim() == 2:
            mean, scale = mean[None], scale[None]
        groups = len(self.means)
        if mean.shape != (groups, d) or scale.shape != (groups, d, d):
            raise ValueError(f"prior parameters of shape {tuple(mean.shape)}, "
                             f"{tuple(scale.shape)} for latents of {d} channels"
                             + (f" in {groups} roles" if groups > 1 else ""))
        self.means, self.scales = mean, scale
        self._cache = {}

    def mode(self, n: int, device: torch.device | str = "cpu") -> Tensor:
        mean = self._params(torch.empty(0, device=device))[0]  # (d, positions)
        return mean.reshape(self.latent_shape).unsqueeze(0).repeat(
            n, *([1] * len(self.latent_shape)))

    def _params(self, like: Tensor) -> tuple[Tensor, ...]:
        """Per position (positions last): mean (d, P), and with one role the shared scale,
        inverse, precision (d, d) and log-determinant; with roles the same per position
        (P, d, d) and (P,)."""
        positions = math.prod(self.latent_shape[1:])
        key = (like.device, like.dtype, positions)
        if key not in self._cache:
            inv = torch.linalg.inv(self.scales)
            parts = [self.means, self.scales, inv, inv.transpose(1, 2) @ inv,
                     self.scales.diagonal(dim1=1, dim2=2).log().sum(1)]
            index = self.role_index() if len(self.means) > 1 else None
            if index is None:
                mean = self.means[0][:, None].expand(-1, positions)
                parts = [mean] + [t[0] for t in parts[1:]]
            else:
                parts = [self.means[index].T] + [t[index] for t in parts[1:]]
            self._cache[key] = tuple(t.to(like.device, like.dtype) for t in parts)
        return self._cache[key]

    def _field(self, z: Tensor) -> Tensor:
        positions = math.prod(self.latent_shape[1:])  # explicit: a shard may have no rows
        return z.reshape(z.shape[0], self.latent_shape[0], positions)

    @staticmethod
    def _apply(matrix: Tensor, v: Tensor) -> Tensor:
        """matrix (d, d) or per position (P, d, d) times v (n, d, P)."""
        if matrix.dim() == 2:
            return matrix @ v
        return torch.einsum("pij,njp->nip", matrix, v)

    def sample(self, n: int, generator: torch.Generator | None = None,
               device: torch.device | str = "cpu") -> Tensor:
        gen_device = generator.device if generator is not None else device
        e = torch.randn((n, *self.latent_shape), generator=generator,
                        device=gen_device).to(device)
        mean, scale = self._params(e)[:2]
        return (self._apply(scale, self._field(e)) + mean).reshape(e.shape)

    def log_prob(self, z: Tensor) -> Tensor:
        mean, _, inv, _, log_det = self._params(z)
        w = self._apply(inv, self._field(z) - mean)
        total_log_det = log_det * w.shape[2] if log_det.dim() == 0 else log_det.sum()
        return (-0.5 * w.pow(2).sum((1, 2)) - total_log_det
                - 0.5 * math.prod(z.shape[1:]) * math.log(2 * math.pi))

    def grad_log_prob(self, z: Tensor) -> Tensor:
        mean, _, _, precision, _ = self._params(z)
        return -self._apply(precision, self._field(z) - mean).reshape(z.shape)
