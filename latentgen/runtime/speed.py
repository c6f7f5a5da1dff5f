"""How the engine runs close to the machine's limit: memory format, precision, compilation,
data placement.

Langevin inference is most of ABP's cost (L forward and backward passes per learning step),
so everything here targets the generator's forward and backward passes:

- channels-last memory (``channels_last`` / ``channels_last_3d``) for 2D and 3D generators:
  the convolution kernels of oneDNN (CPU) and cuDNN (GPU) are fastest in it. Measured on 2 CPU
  cores, one Langevin step of the 64x64x3 image generator at batch 64 takes 0.051 s instead of
  0.059 s; the video generator's 0.021 s instead of 0.023 s. Only the rounding of sums
  changes (a test compares training against the plain loop).
- ``precision="bf16"``: autocast to bfloat16 for the generator's passes (losses, latents and
  weights stay float32). Off by default: it changes numerics. ``precision="auto"`` picks
  bf16 only where a Langevin step of the generator is measured faster in it
  (``latentgen.model.tuning.auto_precision`` says why).
- each convolution in the form measured fastest on this machine (``latentgen.model.forms``,
  ``latentgen.model.tuning``).
- ``compile=True``: ``torch.compile`` of the generator (on CUDA with static shapes,
  ``mode="reduce-overhead"`` captures CUDA graphs). The state dict is the original module's,
  so checkpoint keys do not change. Off by default.
- training data on the device when it fits (batches are then gathered there).
"""

from __future__ import annotations

import contextlib
import platform
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Literal, cast, get_args

import torch
from torch import nn

#: the precisions the generator's passes run in; auto: ``resolve_precision``
Precision = Literal["fp32", "bf16", "auto"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
#: share of free device memory the training data may take to live on the device
DATA_ON_DEVICE_SHARE = 0.25


def memory_format_of(generator: nn.Module) -> torch.memory_format | None:
    """channels-last for 2D and 3D generators (declared by ``dims``), None otherwise."""
    formats: dict[Any, torch.memory_format] = {2: torch.channels_last,
                                               3: torch.channels_last_3d}
    return formats.get(getattr(generator, "dims", None))


def prepare_generator(generator: nn.Module) -> nn.Module:
    """Convert the generator's weights to its fastest memory format, in place."""
    fmt = memory_format_of(generator)
    if fmt is not None:
        generator.to(memory_format=fmt)
    return generator


def cpu_features() -> dict[str, Any]:
    """The CPU's model and the vector and matrix features that decide its kernels' speed."""
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"model": model, "capability": torch.backends.cpu.get_cpu_capability(),
            "avx2": cpu_has("avx2"), "avx512": cpu_has("avx512"),
            "avx512_bf16": cpu_has("avx512_bf16"), "avx512_vnni": cpu_has("vnni"),
            "amx_tile": cpu_has("amx_tile"), "amx_fp16": cpu_has("amx_fp16")}


def cpu_has(feature: str) -> bool:
    """PyTorch's own test of a CPU feature (private helpers of ``torch.cpu``; False where a
    PyTorch build lacks one)."""
    test = getattr(torch.cpu, f"_is_{feature}_supported", None)
    return bool(test()) if test is not None else False


def resolve_precision(precision: str, device: torch.device,
                      measure: Callable[[], tuple[str, str]] | None = None) -> tuple[str, str]:
    """(fp32 or bf16, why) for ``precision`` on ``device``: an explicit one as asked; ``auto``
    as ``measure()`` finds it (``latentgen.model.tuning.auto_precision`` on the generator), or
    fp32 where nothing can be measured."""
    if precision != "auto":
        return precision, "asked for"
    if measure is not None:
        return measure()
    return "fp32", "auto: no generator to measure"


def autocast(device: torch.device, precision: str) -> AbstractContextManager[Any]:
    """The context the generator's passes run in for ``precision``."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def compiled(generator: nn.Module, device: torch.device, static: bool = True) -> nn.Module:
    """``torch.compile(generator)``; with ``static`` shapes (one process: every batch but the
    last has the same size) CUDA graphs on CUDA, else compiled for dynamic batch sizes."""
    if not static:
        return cast(nn.Module, torch.compile(generator, dynamic=True))
    mode = "reduce-overhead" if device.type == "cuda" else None
    return cast(nn.Module, torch.compile(generator, mode=mode, dynamic=False))


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued work (CUDA runs asynchronously; a CPU does not)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def seconds_per_call(fn: Callable[[], Any], device: torch.device, calls: int,
                     min_seconds: float) -> float:
    """Seconds per call of ``fn``, timed over at least ``calls`` calls and ``min_seconds``."""
    done, start = 0, time.perf_counter()
    while True:
        fn()
        done += 1
        synchronize(device)
        elapsed = time.perf_counter() - start
        if done >= calls and elapsed >= min_seconds:
            return elapsed / done


def place_storage(storage: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Training data for ``device``: moved there when it fits in a quarter of the free device
    memory, so batches are gathered on the device with no copy per batch; otherwise left in
    host memory and copied batch by batch."""
    if device.type != "cuda" or not isinstance(storage, torch.Tensor):
        return storage  # a file read batch by batch (prepared data) stays a file
    free, _ = torch.cuda.mem_get_info(device)
    nbytes = storage.numel() * storage.element_size()
    return storage.to(device) if nbytes <= DATA_ON_DEVICE_SHARE * free else storage


@contextlib.contextmanager
def compile_errors() -> Any:
    """Turn a failure of ``torch.compile`` (no C++ compiler, an unsupported backend, ...) on
    the first compiled calls into one line that says what to do."""
    from latentgen.errors import UserError

    try:
        yield
    except UserError:
        raise
    except Exception as exc:  # torch raises many types (BackendCompilerFailed, ...)
        if "dynamo" not in type(exc).__module__ and "inductor" not in type(exc).__module__:
            raise
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"`compile` failed ({type(exc).__name__}: {first[:200]}); run without "
                        "`compile`") from None
