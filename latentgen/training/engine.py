"""Alternating back-propagation (ABP): the training loop of the seed, batched.

For each mini-batch of example indices:
  1. inferential back-propagation: the batch's latents, read from the bank, move L Langevin
     steps along the posterior with the generator held fixed; they are written back to the bank;
  2. learning back-propagation: one optimizer step on W with the gradient of
     sum_i ||Y_i - f(Z_i; W)||^2 / (2 sigma^2) at the inferred Z_i (averaged over the batch).

Every random draw depends only on (seed, epoch, batch number) and the example's place in the
batch: the order of examples, the Langevin noise and re-initialised chains. Resuming from a
checkpoint (even mid-epoch) therefore replays exactly what an uninterrupted run would have
done, and N processes (``latentgen.distributed``) train the model one process trains.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import Tensor, nn

from latentgen.data.examples import Examples
from latentgen.data.loader import EpochPlan, stored_batches, to_device
from latentgen.data.masks import Masks
from latentgen.data.order import EpochOrder
from latentgen.model.forms import plain_forms
from latentgen.model.observation import GaussianObservation
from latentgen.model.priors import Prior
from latentgen.model.samplers import NoiseSource, RowNoise, Sampler
from latentgen.model.tuning import decide
from latentgen.runtime.distributed import Shard, all_reduce_sum, data_parallel, sync_batchnorm
from latentgen.runtime.seeding import derived_generator
from latentgen.runtime.speed import autocast, compiled, prepare_generator
from latentgen.training.bank import LatentBank
from latentgen.training.schedule import lr_at


@dataclass
class BatchStats:
    batch: int
    batches: int
    #: examples in the global batch (all processes)
    examples: int
    #: mean energy ||Y - f(Z)||^2 / (2 sigma^2) per example, after inference, before the W step
    loss: float
    #: model-space mean squared error per element
    mse: float


class PriorDiverged(RuntimeError):
    """A learned prior's energies or draws stopped being finite numbers of sane size."""


#: draws of a learned prior beyond this size (N(0, I) draws are a few units) mean its
#: chains have blown up: the energy grew too steep for the step size
DRAW_LIMIT = 1e3
#: a learned prior's loss (mean E(posterior) - mean E(prior draws), per latent vector of a
#: field) beyond this: the energy has run away (healthy runs stay within a few units)
ENERGY_LIMIT = 1e3


@dataclass
class EpochProgress:
    """How far an epoch got: the next batch to run and the sums so far (global, over all
    processes). Stored in checkpoints written mid-epoch (``--max-steps``)."""

    epoch: int
    batch: int = 0
    loss_sum: float = 0.0
    mse_sum: float = 0.0
    examples: int = 0
    seconds: float = 0.0
    #: sum of the learned prior's loss (mean E(posterior) - mean E(prior draws)) per example
    prior_sum: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> EpochProgress:
        return cls(**values)


@dataclass
class EpochStats:
    epoch: int
    examples: int
    loss: float
    mse: float
    seconds: float
    #: the learned prior's loss, mean E(Z_posterior) - mean E(Z_prior); None without one
    prior_loss: float | None = None

    @property
    def examples_per_s(self) -> float:
        return self.examples / self.seconds if self.seconds > 0 else float("nan")


class ABPEngine:
    def __init__(self, generator: nn.Module, prior: Prior, sampler: Sampler,
                 observation: GaussianObservation, bank: LatentBank, *, langevin_steps: int,
                 batch_size: int, lr: float, beta1: float = 0.5, seed: int = 0,
                 reinit_chains: bool = False, device: torch.device | str = "cpu",
                 masks: Masks | None = None, precision: str = "fp32",
                 compile: bool = False, shard: Shard = Shard(),
                 fp64_gradients: bool = False, lr_end: float = 1.0,
                 total_steps: int = 0, prior_lr: float = 1e-3, ema: float = 0.0) -> None:
        self.device = torch.device(device)
        self.shard = shard
        #: the module whose weights are learned and saved (state-dict keys never change)
        self.generator = prepare_generator(sync_batchnorm(generator, shard, self.device))
        self.prior = prior
        self.sampler = sampler
        self.observation = observation
        #: the sampler's step at the observation's initial sigma (it follows a learned sigma)
        self.base_step = sampler.step_size / observation.scale
        self.bank = bank
        self.langevin_steps = langevin_steps
        self.batch_size = batch_size
        self.seed = seed
        self.reinit_chains = reinit_chains
        #: observed-entry masks of the training examples (learning from incomplete data)
        self.masks = masks
        #: fp32 or bf16 (``--precision auto`` measured), why, and each convolution's form
        self.tuned = decide(self.generator, precision, prior.latent_shape,
                            batch_size // shard.world or 1, self.device, shard)
        self.precision, self.precision_reason = self.tuned.precision, self.tuned.reason
        #: what runs the forward passes: the generator, or its compiled form. Inference uses it
        #: directly (the weights are fixed there, so nothing is synchronised)
        # with several processes each one's share of a batch varies in size: compile for
        # dynamic shapes then (static shapes would recompile, and re-record CUDA graphs, per size)
        self.net = (compiled(self.generator, self.device, static=shard.world == 1) if compile
                    else self.generator)
        #: a float64 copy of the generator that computes the learning step's gradients, or
        #: None. float32 sums of a batch's gradient depend on how the batch is split (across
        #: processes and threads); Adam divides each gradient entry by its own scale, so
        #: entries that nearly cancel turn those rounding differences into visible weight
        #: differences, and Langevin inference at the usual step sizes amplifies them further.
        #: Computed and summed in float64, then rounded once, the gradient is the same however
        #: the batch is split.
        self.shadow = copy.deepcopy(self.generator).double() if fp64_gradients else None
        #: what runs the learning step: ``net`` (or the float64 copy), under DDP when there are
        #: several processes
        self.learner = data_parallel(self.shadow if self.shadow is not None else self.net,
                                     shard, self.device)
        # foreach: the multi-tensor update (fewer, larger operations than one per tensor)
        self.optimizer = torch.optim.Adam(self.generator.parameters(), lr=lr,
                                          betas=(beta1, 0.999), foreach=True)
        self.lr = lr
        #: the moving average of the generator's weights (``--ema``), or None
        self.ema_decay = float(ema)
        self.ema = (copy.deepcopy(self.generator).eval().requires_grad_(False) if ema > 0
                    else None)
        #: a prior learned by gradient (``Prior.net``): its network, on the device, with an
        #: Adam optimizer of its own and, with fp64 gradients, a float64 copy (as above)
        self.prior_net = prior.to(self.device).net
        self.prior_lr = prior_lr
        self.prior_optimizer = (
            torch.optim.Adam(self.prior_net.parameters(), lr=prior_lr, betas=(beta1, 0.999),
                             foreach=True) if self.prior_net is not None else None)
        self.prior_shadow = (copy.deepcopy(self.prior_net).double()
                             if self.prior_net is not None and fp64_gradients else None)
        #: the schedule: the rate falls to ``lr * lr_end`` at step ``total_steps`` (the run's
        #: iterations over all its epochs; ``latentgen.training.schedule``)
        self.lr_end = lr_end
        self.total_steps = total_steps
        self.step = 0
        #: the learned prior's loss on the last batch (0 without one)
        self.last_prior_loss = 0.0

    def batches(self, n: int, epoch: int) -> EpochOrder:
        """The epoch's global index batches; a function of (seed, epoch) only."""
        return EpochOrder(n, self.batch_size, self.seed, epoch)

    def train_batch(self, y: Tensor, index: Tensor, epoch: int, batch: int,
                    mask: Tensor | None = None, rows: Tensor | None = None,
                    batch_size: int | None = None) -> tuple[float, float]:
        """One ABP iteration on examples ``index`` with data ``y``; returns (loss, mse) of the
        global batch. With several processes, ``index`` holds this process's examples of a
        global batch of ``batch_size``, at positions ``rows`` of it."""
        if self.shadow is not None:  # --fp64-gradients
            # the library's transposed convolutions give each example the same numbers in a
            # batch of any size (the phase form's input gradients do not): the model then does
            # not depend on how a batch is split over processes
            with plain_forms():
                return self._train_batch(y, index, epoch, batch, mask, rows, batch_size)
        return self._train_batch(y, index, epoch, batch, mask, rows, batch_size)

    def _train_batch(self, y: Tensor, index: Tensor, epoch: int, batch: int,
                     mask: Tensor | None, rows: Tensor | None,
                     batch_size: int | None) -> tuple[float, float]:
        size = len(index) if batch_size is None else batch_size
        rng = derived_generator(self.seed, "langevin", epoch, batch)
        noise: NoiseSource = rng
        if rows is not None and (len(rows) != size):
            noise = RowNoise(rng, size, rows)
        if self.reinit_chains:
            z0 = self.prior.sample(size, generator=rng, device=self.device)
            z0 = z0[rows.to(self.device)] if noise is not rng else z0  # type: ignore[union-attr]
        else:
            z0 = self.bank.read(index).to(self.device)
        self.generator.train()
        with autocast(self.device, self.precision):
            z = self.sampler.infer(z0, y, self.net, self.observation, self.prior,
                                   self.langevin_steps, mask=mask, rng=noise)
        self.bank.write(index, z)

        self.optimizer.zero_grad(set_to_none=True)
        if self.shadow is not None:
            self.shadow.load_state_dict(self.generator.state_dict())
            x = self.learner(z.double())
            energy = self.observation.energy(y.double(), x, mask)
        else:
            with autocast(self.device, self.precision):
                x = self.learner(z)
            energy = self.observation.energy(y, x.float(), mask)
        # the mean over the global batch; DDP averages gradients over the processes, so each
        # contributes its sum times world / global batch size
        # The step follows the energy at the initial sigma: the gradient's direction does not
        # depend on sigma, but its scale grows as 1 / sigma^2 while a learned sigma falls, and
        # Adam's second moments (beta2 0.999: a thousand steps of memory) would lag the new
        # scale and enlarge its steps. (Not what made the training error jump: that was the
        # sampler, see ``Langevin``; docs/benchmarks.md.)
        (energy.sum() * (self.observation.scale ** 2 * self.shard.world / size)).backward()
        if self.shadow is not None:
            self._take_shadow_gradients()
        rate = lr_at(self.step, self.total_steps, self.lr, self.lr_end)
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        self.optimizer.step()
        if self.ema is not None:
            self._update_ema()
        prior_loss = (self._learn_prior(z, epoch, batch, size, rows)
                      if self.prior_optimizer is not None else 0.0)
        self.step += 1
        with torch.no_grad():
            # summed in float64: a learned sigma is set from these sums, and N processes must
            # arrive at the sigma one process does (float32 sums depend on the split)
            sq = self.observation.residual(y, x.to(y.dtype)).double().pow(2)
            sums = torch.stack([energy.detach().sum(),
                                (sq * mask).sum() if mask is not None else sq.sum(),
                                (mask.expand_as(sq).sum() if mask is not None
                                 else torch.tensor(float(sq.numel()), device=sq.device))])
            totals = all_reduce_sum(sums.double(), self.shard).tolist()
        self.last_prior_loss = prior_loss
        return totals[0] / size, totals[1] / totals[2]

    def _learn_prior(self, z: Tensor, epoch: int, batch: int, size: int,
                     rows: Tensor | None) -> float:
        """One Adam step on the prior's network with the mean over the global batch of
        ``prior.contrast(Z_posterior, Z_prior)``, Z_prior fresh draws of the prior; returns
        that mean. Every process draws the whole batch's Z_prior from the same generator and
        keeps its rows, so N processes learn what one does; gradients are summed over them
        (in float64 with fp64 gradients, then rounded once)."""
        assert self.prior_net is not None and self.prior_optimizer is not None
        rng = derived_generator(self.seed, "prior-draws", epoch, batch)
        z_prior = self.prior.sample(size, generator=rng, device=self.device)
        # checked whole, before this process's rows are kept: every process holds the same
        # draws, so all stop together (and a process without rows has something to check)
        if not bool(torch.isfinite(z_prior).all()) or float(z_prior.abs().max()) > DRAW_LIMIT:
            raise PriorDiverged(f"its draws grew beyond {DRAW_LIMIT:g}")
        if rows is not None and len(rows) != size:
            z_prior = z_prior[rows.to(self.device)]
        net = self.prior_net
        if self.prior_shadow is not None:
            self.prior_shadow.load_state_dict(net.state_dict())
            net = self.prior_shadow
            z, z_prior = z.double(), z_prior.double()
        self.prior_optimizer.zero_grad(set_to_none=True)
        terms = self.prior.contrast(z.detach(), z_prior, net)
        (terms.sum() / size).backward()
        with torch.no_grad():
            params = [p for p in net.parameters() if p.grad is not None]
            flat = torch.cat([p.grad.flatten() for p in params] +  # type: ignore[union-attr]
                             [terms.detach().sum().reshape(1).to(params[0].dtype)])
            flat = all_reduce_sum(flat, self.shard)
            loss = float(flat[-1]) / size
            if not (math.isfinite(loss) and bool(torch.isfinite(flat).all())):
                raise PriorDiverged("its energies are not finite")
            per_vector = abs(loss) / max(1, math.prod(self.prior.latent_shape[1:]))
            if per_vector > ENERGY_LIMIT:
                raise PriorDiverged(f"mean E(posterior) - mean E(prior draws) reached "
                                    f"{loss:.3g}")
            offset = 0
            for p, target in zip(net.parameters(), self.prior_net.parameters()):
                if p.grad is None:
                    continue
                p.grad = None  # (the float64 copy's; the same tensor without one)
                target.grad = flat[offset:offset + p.numel()].view_as(p).to(target.dtype)
                offset += p.numel()
        scale = self.prior_lr / self.lr  # the prior's rate follows the generator's schedule
        for group in self.prior_optimizer.param_groups:
            group["lr"] = scale * lr_at(self.step, self.total_steps, self.lr, self.lr_end)
        self.prior_optimizer.step()
        return loss

    @torch.no_grad()
    def _update_ema(self) -> None:
        """ema <- ema + (1 - decay_t) (w - ema). The decay ramps up as (1 + t) / (10 + t) to
        ``--ema``: early in a run the average would otherwise hold mostly the random initial
        weights (the warm-up of TensorFlow's ExponentialMovingAverage)."""
        assert self.ema is not None
        decay = min(self.ema_decay, (1 + self.step) / (10 + self.step))
        torch._foreach_lerp_(list(self.ema.parameters()), list(self.generator.parameters()),
                             1.0 - decay)
        for b, live in zip(self.ema.buffers(), self.generator.buffers()):
            b.copy_(live)

    @torch.no_grad()
    def _take_shadow_gradients(self) -> None:
        assert self.shadow is not None
        for p, p64 in zip(self.generator.parameters(), self.shadow.parameters()):
            p.grad = None if p64.grad is None else p64.grad.to(p.dtype)
            p64.grad = None
        for b, b64 in zip(self.generator.buffers(), self.shadow.buffers()):
            b.copy_(b64)  # e.g. BatchNorm running statistics updated by the learning pass

    def run_epoch(self, data: Examples, epoch: int,
                  on_batch: Callable[[BatchStats], None] | None = None,
                  progress: EpochProgress | None = None, max_batches: int | None = None,
                  workers: int = 0) -> tuple[EpochStats | None, EpochProgress]:
        """Run epoch ``epoch`` from ``progress`` (a mid-epoch checkpoint) or its start, for at
        most ``max_batches`` batches. Returns the epoch's stats (None if it stopped early) and
        how far it got."""
        progress = progress or EpochProgress(epoch)
        plan = EpochPlan(self.batches(len(data), epoch), self.shard)
        start = time.perf_counter()
        end = len(plan) if max_batches is None else min(len(plan), progress.batch + max_batches)
        stored = stored_batches(data, plan, progress.batch, workers,
                                pin_memory=self.device.type == "cuda")
        for b in range(progress.batch, end):
            index, rows, size = plan.batch(b)
            # the observations y = A x (``--observe``); x itself otherwise
            y = self.observation.measure(data.decode(to_device(next(stored), self.device)))
            mask = self.masks.for_indices(index, self.device) if self.masks else None
            loss, mse = self.train_batch(y, index, epoch, b, mask, rows=rows, batch_size=size)
            progress.prior_sum += self.last_prior_loss * size
            progress.batch = b + 1
            progress.loss_sum += loss * size
            progress.mse_sum += mse * size
            progress.examples += size
            if on_batch is not None:
                on_batch(BatchStats(b + 1, len(plan), size, loss, mse))
        if hasattr(stored, "close"):
            stored.close()  # stop loader workers early
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        progress.seconds += time.perf_counter() - start
        if progress.batch < len(plan):
            return None, progress
        n = progress.examples
        prior_loss = progress.prior_sum / n if self.prior_optimizer is not None else None
        return EpochStats(epoch, n, progress.loss_sum / n, progress.mse_sum / n,
                          progress.seconds, prior_loss), progress

    def end_epoch(self, mse: float | None = None) -> None:
        """After a whole epoch: a prior that learns from the bank is refit to it, and a
        learned sigma to the epoch's mean squared residual ``mse`` (model space); all ranks
        get the same moments and the same global mean, so the same prior and sigma."""
        if self.prior.learns_from_bank:
            roles = self.prior.role_index()
            if roles is None:
                self.prior.learn(self.bank.moments())
            else:  # one law per role of the latent's positions
                self.prior.learn([self.bank.moments(roles == r)
                                  for r in range(int(roles.max()) + 1)])
        if mse is not None:
            self.observation.learn(mse)
            self.sampler.step_size = self.base_step * self.observation.scale

    def state_dict(self) -> dict:
        """Generator, prior, observation (sigma), optimizer and step; the latent bank is saved
        by the caller (``LatentBank.gather``), as it may be sharded or on disk."""
        state = {"generator": self.generator.state_dict(), "prior": self.prior.state_dict(),
                 "observation": self.observation.state_dict(),
                 "optimizer": self.optimizer.state_dict(), "step": self.step}
        if self.prior_optimizer is not None:
            state["prior_optimizer"] = self.prior_optimizer.state_dict()
        if self.ema is not None:
            state["generator_ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.generator.load_state_dict(state["generator"])
        self.prior.load_state_dict(state.get("prior") or {})
        self.observation.load_state_dict(state.get("observation") or {})
        self.sampler.step_size = self.base_step * self.observation.scale
        self.optimizer.load_state_dict(state["optimizer"])
        if self.ema is not None:
            self.ema.load_state_dict(state["generator_ema"])
        if self.prior_optimizer is not None:
            self.prior_optimizer.load_state_dict(state["prior_optimizer"])
        self.bank.load_full(state["latents"])
        self.step = int(state["step"])
