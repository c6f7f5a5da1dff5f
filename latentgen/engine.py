"""Alternating back-propagation (ABP): the training loop of the seed, batched.

For each mini-batch of example indices:
  1. inferential back-propagation: the batch's latents, read from the bank, move L Langevin
     steps along the posterior with the generator held fixed; they are written back to the bank;
  2. learning back-propagation: one optimizer step on W with the gradient of
     sum_i ||Y_i - f(Z_i; W)||^2 / (2 sigma^2) at the inferred Z_i (averaged over the batch).

Every random draw depends only on (seed, epoch, batch number): the order of examples, the
Langevin noise and re-initialised chains. Resuming from a checkpoint therefore replays exactly
what an uninterrupted run would have done.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from .bank import LatentBank
from .data import Examples
from .masks import Masks
from .observation import GaussianObservation
from .performance import autocast, compiled, prepare_generator
from .priors import Prior
from .samplers import Sampler
from .seeding import derived_generator


@dataclass
class BatchStats:
    batch: int
    batches: int
    examples: int
    #: mean energy ||Y - f(Z)||^2 / (2 sigma^2) per example, after inference, before the W step
    loss: float
    #: model-space mean squared error per element
    mse: float


@dataclass
class EpochStats:
    epoch: int
    examples: int
    loss: float
    mse: float
    seconds: float

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else float("nan")


class ABPEngine:
    def __init__(self, generator: nn.Module, prior: Prior, sampler: Sampler,
                 observation: GaussianObservation, bank: LatentBank, *, langevin_steps: int,
                 batch_size: int, lr: float, beta1: float = 0.5, seed: int = 0,
                 reinit_chains: bool = False, device: torch.device | str = "cpu",
                 masks: Masks | None = None, precision: str = "fp32",
                 compile: bool = False) -> None:
        #: the module whose weights are learned and saved (state-dict keys never change)
        self.generator = prepare_generator(generator)
        self.prior = prior
        self.sampler = sampler
        self.observation = observation
        self.bank = bank
        self.langevin_steps = langevin_steps
        self.batch_size = batch_size
        self.seed = seed
        self.reinit_chains = reinit_chains
        self.device = torch.device(device)
        #: observed-entry masks of the training examples (learning from incomplete data)
        self.masks = masks
        self.precision = precision
        #: what runs the forward passes: the generator, or its compiled form
        self.net = compiled(self.generator, self.device) if compile else self.generator
        # foreach: the multi-tensor update (fewer, larger operations than one per tensor)
        self.optimizer = torch.optim.Adam(generator.parameters(), lr=lr, betas=(beta1, 0.999),
                                          foreach=True)
        self.step = 0

    def batches(self, n: int, epoch: int) -> list[Tensor]:
        """The epoch's shuffled index batches; a function of (seed, epoch) only."""
        order = torch.randperm(n, generator=derived_generator(self.seed, "order", epoch))
        return list(order.split(self.batch_size))

    def train_batch(self, y: Tensor, index: Tensor, epoch: int, batch: int,
                    mask: Tensor | None = None) -> tuple[float, float]:
        """One ABP iteration on examples ``index`` with data ``y``; returns (loss, mse)."""
        rng = derived_generator(self.seed, "langevin", epoch, batch)
        if self.reinit_chains:
            z0 = self.prior.sample(len(index), generator=rng, device=self.device)
        else:
            z0 = self.bank.read(index).to(self.device)
        self.generator.train()
        with autocast(self.device, self.precision):
            z = self.sampler.infer(z0, y, self.net, self.observation, self.prior,
                                   self.langevin_steps, mask=mask, rng=rng)
        self.bank.write(index, z)

        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.precision):
            x = self.net(z)
        energy = self.observation.energy(y, x.float(), mask)
        loss = energy.mean()
        loss.backward()
        self.optimizer.step()
        self.step += 1
        with torch.no_grad():
            sq = (y - x.float()).pow(2)
            mse = (sq * mask).sum() / mask.expand_as(sq).sum() if mask is not None else sq.mean()
        return loss.item(), mse.item()

    def run_epoch(self, data: Examples, epoch: int,
                  on_batch: Callable[[BatchStats], None] | None = None) -> EpochStats:
        start = time.perf_counter()
        batches = self.batches(len(data), epoch)
        tot_loss = tot_mse = 0.0
        seen = 0
        for b, index in enumerate(batches):
            y = data.get(index, self.device)
            mask = self.masks.for_indices(index, self.device) if self.masks else None
            loss, mse = self.train_batch(y, index, epoch, b, mask)
            n = len(index)
            tot_loss += loss * n
            tot_mse += mse * n
            seen += n
            if on_batch is not None:
                on_batch(BatchStats(b + 1, len(batches), n, loss, mse))
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return EpochStats(epoch, seen, tot_loss / seen, tot_mse / seen,
                          time.perf_counter() - start)

    def state_dict(self) -> dict:
        return {"generator": self.generator.state_dict(), "optimizer": self.optimizer.state_dict(),
                "latents": self.bank.state(), "step": self.step}

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.bank.load(state["latents"].to(self.bank.latents.device))
        self.step = int(state["step"])
