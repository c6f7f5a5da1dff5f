"""Choosing each layer's form (``forms.py``) and the precision by measuring them where the
generator runs, and remembering the choices.

``tune(generator, z, device, precision)`` runs the generator once on a batch of latents to see
every convolution's input, then times each layer's candidate forms on that input, forward and
backward to the input (a Langevin step: the weights are frozen), and keeps the fastest in the
layer. A candidate replaces the default form only when it is faster by more than ``MARGIN``
(timing noise must not flip a choice) and when its output matches the library's (a kernel that
is wrong somewhere is never chosen). The choice is stored in a JSON file keyed by the machine
(CPU model and PyTorch's kernel level, or the CUDA device), the PyTorch version, the threads,
the precision, the layer and its input shape, so a later process on the same machine measures
nothing: ``$LATENTGEN_FORMS_CACHE`` (a file, or ``off``), else
``$XDG_CACHE_HOME/latentgen/forms.json`` (``~/.cache/latentgen/forms.json``;
``forms_cache.py``).

``$LATENTGEN_FORMS`` sets what happens: ``tune`` (the default), ``default`` (no measuring: the
phase form for thin transposed layers on CPUs, the library's kernel elsewhere) or ``library``
(the library's kernel everywhere, as ``plain_forms``).

``auto_precision`` decides ``--precision auto`` the same way: bf16 only where a Langevin step
of this generator, each precision in its own tuned forms, is measured faster than in fp32.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from latentgen.model.forms import (
    Signature,
    TunedLayer,
    candidate_forms,
    compute,
    default_form,
    make_tunable,
    signature,
    split_form,
)
from latentgen.model.forms_cache import CACHE_VARIABLE, cache_path, forget, load, machine, store
from latentgen.runtime.distributed import Shard, from_first
from latentgen.runtime.speed import cpu_has, resolve_precision, seconds_per_call

FORMS_VARIABLE = "LATENTGEN_FORMS"
MODES = ("tune", "default", "library")
#: a candidate replaces the default form only when it takes at most this share of its time
MARGIN = 0.93
#: bf16 is chosen by ``auto_precision`` only when a step takes at most this share of fp32's
PRECISION_MARGIN = 0.9
#: each timing round runs a form for at least this long (after a warm-up call)
MIN_SECONDS = 0.004
ROUNDS = 2
#: layers are timed on batches of at most this many examples (the choice holds for any batch;
#: larger ones only make tuning longer)
TUNE_BATCH = 32
#: the largest relative deviation from the library's output a form may show, per precision
TOLERANCE = {"fp32": 1e-3, "bf16": 6e-2}


@dataclass
class Choice:
    """What ``tune`` chose for one layer: its name in the generator, the input it was timed
    on, the form, and the milliseconds each candidate took (empty when read from the cache)."""

    layer: str
    shape: tuple[int, ...]
    mode: str
    form: str
    times_ms: dict[str, float] = field(default_factory=dict)
    cached: bool = False
    #: the layer inputs it holds for (``forms.signature``)
    signature: Signature | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"layer": self.layer, "input": list(self.shape), "precision": self.mode,
                "form": self.form, "cached": self.cached,
                "times_ms": {k: round(v, 4) for k, v in self.times_ms.items()}}


def mode() -> str:
    value = os.environ.get(FORMS_VARIABLE, "tune").strip().lower() or "tune"
    if value not in MODES:
        from latentgen.errors import UserError

        raise UserError(f"${FORMS_VARIABLE}={value!r}: give one of {', '.join(MODES)}")
    return value


def _layer_key(layer: nn.Module) -> str:
    conv: Any = layer
    return (f"{type(layer).__name__}(in={conv.in_channels},out={conv.out_channels},"
            f"k={tuple(conv.kernel_size)},s={tuple(conv.stride)},p={conv.padding},"
            f"bias={conv.bias is not None})")


@contextlib.contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    flags = [p.requires_grad for p in module.parameters()]
    module.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in zip(module.parameters(), flags):
            p.requires_grad_(flag)


def _autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager[Any]:
    if precision == "bf16":
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def _seconds(fn: Callable[[], Any], device: torch.device, beat: float = float("inf")
             ) -> float:
    """The least time per call of ``fn`` over ``ROUNDS`` rounds of at least MIN_SECONDS, or
    the first call's time alone when that is already more than twice ``beat`` (a form that
    cannot win is not timed further: tuning stays short)."""
    first = seconds_per_call(fn, device, 1, 0.0)  # warm-up: kernels chosen, weights made
    if first > 2 * beat:
        return first
    best = float("inf")
    for _ in range(ROUNDS):
        best = min(best, seconds_per_call(fn, device, 1, MIN_SECONDS))
        if best > 1.5 * beat:
            break
    return best


def _inputs(generator: nn.Module, layers: Sequence[tuple[str, nn.Module]], z: Tensor,
            device: torch.device, precision: str) -> dict[str, Tensor]:
    """Each tuned layer's input in one forward pass of ``z``."""
    seen: dict[str, Tensor] = {}
    hooks = [layer.register_forward_pre_hook(
        lambda _m, args, name=name: seen.setdefault(name, args[0].detach()))
        for name, layer in layers]
    try:
        with torch.no_grad(), _autocast(device, precision):
            generator(z)
    finally:
        for h in hooks:
            h.remove()
    return seen


def _measure(layer: nn.Module, x: Tensor, forms: list[str], device: torch.device,
             precision: str) -> dict[str, float]:
    """Seconds per forward and backward-to-input pass of each form that gives the library's
    output within the precision's rounding."""
    xi = x.detach().requires_grad_(True)
    with _autocast(device, precision), torch.no_grad():
        reference = compute(layer, xi, "library").float()  # type: ignore[arg-type]
    scale = reference.abs().max().item() or 1.0
    grad = torch.randn(reference.shape, device=device,
                       generator=torch.Generator(device=device).manual_seed(0))
    times: dict[str, float] = {}
    for form in forms:
        def step(form: str = form) -> None:
            with _autocast(device, precision):
                y = compute(layer, xi, form)  # type: ignore[arg-type]
            y.backward(grad.to(y.dtype))
            xi.grad = None

        try:
            with _autocast(device, precision), torch.no_grad():
                got = compute(layer, xi, form).float()  # type: ignore[arg-type]
            if got.shape != reference.shape or not (
                    (got - reference).abs().max().item() <= TOLERANCE[precision] * scale):
                continue
            times[form] = _seconds(step, device, min(times.values(), default=float("inf")))
        except RuntimeError:  # a kernel this build or device lacks for this shape or dtype
            continue
    return times


def tune(generator: nn.Module, z: Tensor, device: torch.device, precision: str = "fp32"
         ) -> list[Choice]:
    """Choose the form of every convolution of ``generator`` for latents like ``z`` (a batch)
    in ``precision`` (fp32 or bf16), by measurement or from the cache; the choices are kept in
    the layers and returned."""
    chosen = mode()
    layers = make_tunable(generator)
    if chosen == "default" or not layers:
        return []
    was_training = generator.training
    generator.eval()
    try:
        with _frozen(generator):
            inputs = _inputs(generator, layers, z[:TUNE_BATCH].to(device), device, precision)
            if chosen == "library":
                return _fixed(layers, inputs, device, precision, "library")
            return _choose(layers, inputs, device, precision)
    finally:
        generator.train(was_training)


def _fixed(layers: Sequence[tuple[str, nn.Module]], inputs: dict[str, Tensor],
           device: torch.device, precision: str, form: str) -> list[Choice]:
    out = []
    for name, layer in layers:
        if name in inputs:
            with _autocast(device, precision):
                sig = signature(inputs[name])
            layer.__dict__.setdefault("forms", {})[sig] = form
            out.append(Choice(name, tuple(inputs[name].shape), precision, form, signature=sig))
    return out


def apply_choices(generator: nn.Module, choices: list[Choice]) -> None:
    """Put ``choices`` (``tune``'s, made on another process or for a copy) into the layers of
    ``generator`` of the same names."""
    layers = dict(make_tunable(generator))
    for c in choices:
        layer = layers.get(c.layer)
        if layer is not None and c.signature is not None:
            layer.__dict__.setdefault("forms", {})[c.signature] = c.form


def _choose(layers: Sequence[tuple[str, nn.Module]], inputs: dict[str, Tensor],
            device: torch.device, precision: str) -> list[Choice]:
    cache, here, new = load(), machine(device), {}
    out = []
    for name, layer in layers:
        x = inputs.get(name)
        if x is None:  # not on the path of this input (a branch not taken)
            continue
        with _autocast(device, precision):
            sig = signature(x)
        key = f"{here}|{precision}|{_layer_key(layer)}|{tuple(x.shape)}"
        entry = cache.get(key)
        if isinstance(entry, str) and split_form(entry)[0] in _kernel_names(layer, precision):
            form, times, cached = entry, {}, True
        else:
            fallback = default_form(layer, x)  # type: ignore[arg-type]
            candidates = candidate_forms(layer, precision)  # type: ignore[arg-type]
            secs = _measure(layer, x, candidates, device, precision)
            times = {k: v * 1e3 for k, v in secs.items()}
            form, cached = fallback, False
            if secs:
                best = min(secs, key=secs.__getitem__)
                base = secs.get(fallback, float("inf"))
                if secs[best] <= MARGIN * base:
                    form = best
            new[key] = form
        layer.__dict__.setdefault("forms", {})[sig] = form
        out.append(Choice(name, tuple(x.shape), precision, form, times, cached, sig))
    if new:
        store(new)
    return out


def _kernel_names(layer: nn.Module, precision: str) -> set[str]:
    return {split_form(f)[0] for f in candidate_forms(layer, precision)}  # type: ignore[arg-type]


def tuned_layers(generator: nn.Module) -> list[tuple[str, TunedLayer]]:
    return [(n, m) for n, m in generator.named_modules() if isinstance(m, TunedLayer)]


def langevin_step_seconds(generator: nn.Module, z: Tensor, device: torch.device,
                          precision: str) -> float:
    """Seconds of one forward and backward-to-latent pass of ``generator`` (a Langevin step,
    weights frozen) in ``precision``, in the forms tuned for it."""
    zi = z.to(device).detach().requires_grad_(True)

    def step() -> None:
        with _autocast(device, precision):
            x = generator(zi)
        x.float().square().sum().backward(inputs=[zi])
        zi.grad = None

    with _frozen(generator):
        return _seconds(step, device)


@dataclass
class Decision:
    """What ``decide`` found for a generator: the precision, why, each layer's form, and the
    seconds deciding took (measuring, or reading the cache)."""

    precision: str
    reason: str
    choices: list[Choice]
    seconds: float


def decide(generator: nn.Module, precision: str, latent_shape: Sequence[int], batch: int,
           device: torch.device, shard: Shard = Shard()) -> Decision:
    """The precision (``auto`` measured by ``auto_precision``) and the forms of ``generator``
    for batches of ``batch`` latents of ``latent_shape``, put into its layers. With several
    processes the first measures and all take its decision (they must compute alike)."""
    def measure() -> Decision:
        started = time.perf_counter()
        # shapes are all that matter: a private generator leaves the caller's draws alone
        probe = torch.randn((batch, *latent_shape),
                            generator=torch.Generator().manual_seed(0)).to(device)
        chosen, why = resolve_precision(precision, device,
                                        lambda: auto_precision(generator, probe, device))
        choices = tune(generator, probe, device, chosen)
        return Decision(chosen, why, choices, time.perf_counter() - started)

    decision = from_first(measure, shard)
    apply_choices(generator, decision.choices)
    return decision


def bf16_supported(device: torch.device) -> bool:
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        return cpu_has("avx512_bf16") or cpu_has("amx_tile")
    return False


def auto_precision(generator: nn.Module, z: Tensor, device: torch.device) -> tuple[str, str]:
    """(fp32 or bf16, why) for ``--precision auto``: bf16 when the device computes in bf16 and
    a Langevin step of this generator, each precision in its own tuned forms, takes at most
    ``PRECISION_MARGIN`` of fp32's time. (bf16 training was measured to reach fp32's held-out
    error within 1 %: docs/benchmarks.md.)"""
    if not bf16_supported(device):
        return "fp32", "auto: this device has no bf16 arithmetic"
    if mode() != "tune":
        return "fp32", f"auto: not measured (${FORMS_VARIABLE}={mode()})"
    layers = make_tunable(generator)
    z = z[:TUNE_BATCH]
    key = (f"precision|{machine(device)}|{tuple(z.shape)}|"
           + ";".join(_layer_key(m) for _, m in layers))
    cache = load()
    entry = cache.get(key)
    if not (isinstance(entry, list) and len(entry) == 2):
        was_training = generator.training
        generator.eval()
        try:
            seconds = []
            for precision in ("fp32", "bf16"):
                tune(generator, z, device, precision)
                seconds.append(langevin_step_seconds(generator, z, device, precision))
        finally:
            generator.train(was_training)
        entry = [seconds[0] * 1e3, seconds[1] * 1e3]
        store({key: entry})
    fp32_ms, bf16_ms = float(entry[0]), float(entry[1])
    ratio = fp32_ms / bf16_ms if bf16_ms > 0 else 0.0
    measured = (f"a Langevin step of this generator took {bf16_ms:.1f} ms in bf16 against "
                f"{fp32_ms:.1f} ms in fp32")
    if bf16_ms <= PRECISION_MARGIN * fp32_ms:
        return "bf16", f"auto: bf16 measured {ratio:.2f}x as fast as fp32 ({measured})"
    return "fp32", f"auto: fp32, bf16 measured only {ratio:.2f}x as fast ({measured})"


__all__ = ["CACHE_VARIABLE", "Choice", "Decision", "FORMS_VARIABLE", "apply_choices",
           "auto_precision", "cache_path", "decide",
           "forget", "langevin_step_seconds", "machine", "tune", "tuned_layers"]
