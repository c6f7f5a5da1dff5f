"""`latentgen bench`: what one ABP iteration costs on this machine, and how close it runs to the
machine's limit.

One run measures, on the modality's default generator and random data of its shape:

- ``examples_per_s``: whole ABP iterations (L Langevin steps + one learning step) through the
  engine, with the engine's optimisations (channels-last, frozen weights during inference,
  fused optimizer; bf16 / compile when asked);
- ``langevin_steps_per_s`` and the achieved FLOP/s of the Langevin phase and of the learning
  step, FLOPs counted by ``torch.utils.flop_counter`` on one step of each;
- ``peak_flops``: a large matrix multiply on the same device, in the precision the generator
  runs in (``peak_precision``), in the same run, and ``langevin_fraction_of_peak`` = Langevin
  FLOP/s / peak;
- ``precision`` (fp32 or bf16), ``precision_asked`` and ``precision_reason`` (what ``auto``
  measured and chose), and ``cpu``: the CPU's model and its vector and matrix features (AVX2,
  AVX-512, AVX512-BF16, VNNI, AMX);
- ``forms``: the form each convolution runs in, measured here (``latentgen.model.tuning``),
  with each candidate's milliseconds (none when the choice came from the cache), and
  ``forms_seconds``, what choosing them (and the precision, for ``auto``) took;

Every figure is the median of ``repeats`` rounds in which the engine, its Langevin phase, the
reference loop and the matrix multiply take turns, each round lasting at least 0.3 s, so a
slow spell of a shared machine touches all of them alike.
- ``reference_ratio``: the engine's time per iteration over that of a plain loop written the
  usual way (``autograd.grad`` with the weights still requiring grad, an unfused update, the
  default memory format, the library's kernel for every layer rather than the tuned forms)
  on the same generator, data and settings. Below 1 = the engine wins.
"""

from __future__ import annotations

import copy
import statistics
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from latentgen.errors import UserError
from latentgen.model.forms import plain_forms
from latentgen.model.observation import GaussianObservation
from latentgen.model.priors import StandardNormal
from latentgen.model.samplers import UnadjustedLangevin
from latentgen.plugins.registry import get_registry
from latentgen.runtime.devices import resolve_device
from latentgen.runtime.seeding import derived_generator
from latentgen.runtime.speed import (
    autocast,
    compile_errors,
    cpu_features,
    seconds_per_call,
    synchronize,
)
from latentgen.training.bank import LatentBank
from latentgen.training.engine import ABPEngine

MIN_SECONDS = 0.3  # each timed round runs for at least this long


def _timed(fn: Callable[[], Any], device: torch.device, repeats: int) -> float:
    """Seconds per call of ``fn``, over ``repeats`` calls (at least MIN_SECONDS in all)."""
    return seconds_per_call(fn, device, repeats, MIN_SECONDS)


def _rounds(fns: dict[str, Callable[[], Any]], device: torch.device, repeats: int
            ) -> dict[str, float]:
    """Median seconds per call of each function, timed in ``repeats`` interleaved rounds, so
    that a slow spell of a shared machine touches every measurement alike."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            times[name].append(_timed(fn, device, 1))
    return {name: statistics.median(t) for name, t in times.items()}


def matmul(device: torch.device, precision: str) -> tuple[Callable[[], Any], int]:
    """A large square matrix multiply (the usual yardstick of a device's peak) and its FLOPs.

    On CUDA in fp32 it runs with TF32 exactly when cuDNN's convolutions do
    (``torch.backends.cudnn.allow_tf32``), so the peak and the generator use the same math."""
    n = 8192 if device.type == "cuda" else 2048
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    tf32 = torch.backends.cudnn.allow_tf32

    def mm() -> torch.Tensor:
        saved = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = tf32
        try:
            return a @ b
        finally:
            torch.backends.cuda.matmul.allow_tf32 = saved

    return mm, 2 * n**3


def peak_flops(device: torch.device, precision: str, repeats: int = 5) -> float:
    fn, flops = matmul(device, precision)
    fn()
    return flops / _rounds({"mm": fn}, device, repeats)["mm"]


def count_flops(fn: Callable[[], Any]) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def reference_iteration(generator: nn.Module, optimizer: torch.optim.Optimizer, z0: torch.Tensor,
                        y: torch.Tensor, sigma: float, step_size: float, steps: int,
                        rng: torch.Generator | None) -> tuple[torch.Tensor, float]:
    """One ABP iteration written the plain way: the weights keep requiring grad during
    inference, ``autograd.grad`` gives dE/dZ, the update allocates new tensors, and the
    generator runs in the default memory format. Same mathematics as the engine (N(0, I)
    prior, Langevin noise drawn from ``rng`` the same way); returns the inferred Z and the
    learning loss."""
    z = z0.detach().clone()
    for _ in range(steps):
        z.requires_grad_(True)
        energy = ((y - generator(z)) ** 2).sum() / (2 * sigma**2)
        (grad,) = torch.autograd.grad(energy, z)
        noise = torch.randn(z.shape, generator=rng,
                            device=rng.device if rng is not None else z.device).to(z.device)
        z = (z + 0.5 * step_size**2 * (-z - grad) + step_size * noise).detach()
    optimizer.zero_grad()
    x = generator(z)
    loss = (((y - x) ** 2).flatten(1).sum(1) / (2 * sigma**2)).mean()
    loss.backward()
    optimizer.step()
    return z, float(loss.detach())


#: the training settings the bench takes, with its own defaults (a short, fixed workload)
BENCH_DEFAULTS: dict[str, Any] = {"modality": "image", "latent_dim": 16, "batch_size": 64,
                                  "langevin_steps": 10, "device": "auto", "precision": "fp32",
                                  "compile": False}


def run_bench(modality: str = "image", options: dict[str, Any] | None = None,
              latent_dim: int = 16, batch_size: int = 64, langevin_steps: int = 10,
              device: str = "cpu", precision: str = "fp32", compile: bool = False,
              repeats: int = 5, seed: int = 0, step_size: float = 0.3,
              sigma: float = 0.5) -> dict[str, Any]:
    """Measure (see the module docstring) and return the figures as a JSON-ready dict."""
    from latentgen.assembly.config import SETTINGS

    for name, value in (("latent_dim", latent_dim), ("batch_size", batch_size),
                        ("precision", precision), ("compile", compile)):
        SETTINGS[name].check(value, "bench")
    if langevin_steps < 1 or repeats < 1:
        raise UserError("`langevin_steps` and `repeats` must be at least 1")
    dev = resolve_device(device)
    asked = precision
    mod = get_registry().modality(modality)
    opts = mod.make_options(options or {})
    if hasattr(opts, "image_size") and not opts.image_size:
        opts = mod.resolve_options(opts, None)
    torch.manual_seed(seed)
    base = mod.build_generator(latent_dim, opts)
    shape = tuple(base.data_shape)
    lo, hi = mod.data_range
    y = (torch.rand((batch_size, *shape), generator=torch.Generator().manual_seed(seed))
         * (hi - lo) + lo).to(dev)
    prior = StandardNormal(tuple(base.latent_shape))
    observation = GaussianObservation(sigma)
    # the seed's update, as the plain reference loop runs it: the comparison is of the same
    # arithmetic (training's default, the Metropolis-adjusted sampler, adds one forward and
    # backward pass per chain: (L + 1) / L of this Langevin phase)
    sampler = UnadjustedLangevin(step_size)

    # the engine, as training runs it
    bank = LatentBank.from_prior(prior, batch_size, seed, dev)
    engine = ABPEngine(copy.deepcopy(base).to(dev), prior, sampler, observation, bank,
                       langevin_steps=langevin_steps, batch_size=batch_size, lr=1e-3,
                       seed=seed, device=dev, precision=precision, compile=compile)
    # ``auto`` measured by the engine, which also chose each layer's form
    precision, reason = engine.precision, engine.precision_reason
    index = torch.arange(batch_size)
    counter = iter(range(10**9))
    iterate = lambda: engine.train_batch(y, index, 1, next(counter))  # noqa: E731
    z0 = bank.read(index)

    def langevin(steps: int = langevin_steps) -> torch.Tensor:
        # noise drawn as the engine draws it (a seeded CPU generator)
        with autocast(dev, precision):
            return sampler.infer(z0, y, engine.net, observation, prior, steps,
                                 rng=derived_generator(seed, "langevin", 0, 0))

    with compile_errors():
        for _ in range(2):  # warm-up (and compilation)
            iterate()
            langevin()
    synchronize(dev)

    # FLOPs on the uncompiled generator (the counter sees through eager ops only)
    def learning_step() -> None:
        gen = engine.generator
        with autocast(dev, precision):
            x = gen(z0)
        loss = observation.energy(y, x.float()).mean()
        loss.backward()
        gen.zero_grad(set_to_none=True)

    # the model's own FLOPs: its transposed convolutions as such, not their phase form
    with autocast(dev, precision), plain_forms():
        step_flops = count_flops(lambda: sampler.infer(z0, y, engine.generator, observation,
                                                       prior, 1))
    with plain_forms():
        learn_flops = count_flops(learning_step)
    langevin_flops = step_flops * langevin_steps

    # the plain reference loop on a fresh copy, default memory format, weights requiring grad
    ref_gen = copy.deepcopy(base).to(dev)
    ref_opt = torch.optim.Adam(ref_gen.parameters(), lr=1e-3, betas=(0.5, 0.999))
    ref_z = z0.clone()
    rng = torch.Generator(device="cpu").manual_seed(seed)

    def reference() -> None:
        with autocast(dev, precision), plain_forms():
            reference_iteration(ref_gen, ref_opt, ref_z, y, sigma, step_size, langevin_steps,
                                rng)

    for _ in range(2):
        reference()
    def learn() -> None:  # the engine's learning step alone
        engine.optimizer.zero_grad(set_to_none=True)
        with autocast(dev, precision):
            x = engine.net(z0)
        observation.energy(y, x.float()).mean().backward()
        engine.optimizer.step()

    mm, mm_flops = matmul(dev, precision)
    mm()
    learn()
    t = _rounds({"iteration": iterate, "langevin": langevin, "learning": learn,
                 "reference": reference, "matmul": mm}, dev, repeats)
    iteration_s, langevin_s, reference_s = t["iteration"], t["langevin"], t["reference"]
    learning_s = t["learning"]
    peak = mm_flops / t["matmul"]
    return {
        "modality": modality,
        "data_shape": list(shape),
        "latent_shape": list(base.latent_shape),
        "batch_size": batch_size,
        "langevin_steps": langevin_steps,
        "device": str(dev),
        "device_name": (torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "precision": precision,
        "precision_asked": asked,
        "precision_reason": reason,
        "cpu": cpu_features(),
        "compile": compile,
        "tf32": bool(dev.type == "cuda" and precision == "fp32"
                     and torch.backends.cudnn.allow_tf32),
        "examples_per_s": batch_size / iteration_s,
        "langevin_steps_per_s": langevin_steps / langevin_s,
        "iteration_s": iteration_s,
        "langevin_s": langevin_s,
        "langevin_flops": langevin_flops,
        "learning_flops": learn_flops,
        "langevin_flops_per_s": langevin_flops / langevin_s,
        "learning_flops_per_s": learn_flops / learning_s,
        "peak_flops": peak,
        "peak_precision": precision,
        "langevin_fraction_of_peak": langevin_flops / langevin_s / peak,
        "mfu": (langevin_flops + learn_flops) / iteration_s / peak,
        "reference_iteration_s": reference_s,
        "reference_ratio": iteration_s / reference_s,
        "forms": [c.as_dict() for c in engine.tuned.choices],
        "forms_seconds": engine.tuned.seconds,
    }


__all__ = ["count_flops", "peak_flops", "reference_iteration", "run_bench"]
