"""Each convolution of a generator computed in the form that is fastest where it runs.

A convolution, transposed or not, can be computed in several ways that give the same numbers up
to rounding (the *kernels* below): the library's own (oneDNN on CPUs, cuDNN on CUDA) in the
generator's memory format or in the plain one; a transposed convolution as ordinary
convolutions of its stride's phases (``phase.py``) or as one matrix multiply followed by
``fold`` (col2im); a 1x1 convolution as a matrix multiply over channels; a thin layer (a few
output channels, as every output layer) with zero output channels added to reach the width the
library's kernels are built for, the extra channels dropped after. Which one is fastest depends
on the CPU (vector and matrix units, caches), the library's version, the layer's shape and the
precision: on the AMD EPYC of docs/benchmarks.md the phase form made a thin output layer 2x
faster, while on an Intel Xeon with AMX the same layer ran at 0.12 of the fp32 peak through the
library and 0.33 as phases, and in bf16 below 0.2 in every form. So no form is chosen by a
rule about CPUs: ``tuning.py`` times the candidates where the generator runs and stores the
choice in each layer (``TunedLayer.forms``).

Under bf16 autocast each kernel runs in one of three *precisions*, the form's name after a
slash:

- ``autocast`` (the name alone): as ``torch.autocast`` does, which casts the fp32 weights to
  bf16 on every call (autocast caches casts only of weights that require grad, and Langevin
  inference freezes them);
- ``bf16``: bf16 weights kept beside the fp32 master weights, cast once per weight update (the
  weights do not change during inference), and the input cast once;
- ``fp32``: the layer computed in fp32 with autocast off, for layers whose bf16 kernels are
  slower than their fp32 ones (thin output layers on some CPUs).

Weights, their names and layouts stay those of ``nn.ConvNd`` / ``nn.ConvTransposeNd``:
checkpoints do not change, whatever form runs.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentgen.model.phase import phase_kernel, phase_output, phases_apply

#: a layer computed by ``TunedLayer``'s forms
Layer = nn.modules.conv._ConvNd
#: (device type, precision mode, input shape without the batch): what a layer's choice is for
Signature = tuple[str, str, tuple[int, ...]]

_plain: contextvars.ContextVar[bool] = contextvars.ContextVar("latentgen_plain_forms",
                                                              default=False)
#: output channels a thin layer is padded to (``padded``): the vector width of fp32 kernels
PADDED_CHANNELS = 16
#: layers with at most this many output channels take the padded kernel as a candidate
MAX_PADDED = 8
PRECISIONS = ("autocast", "bf16", "fp32")
#: untuned, transposed layers with at most this many output channels take the phase form
MAX_DEFAULT_PHASED = 4


@contextlib.contextmanager
def plain_forms() -> Iterator[None]:
    """Within it, every layer runs the library's kernel as autocast runs it (what the
    benchmark's FLOP count and its plain reference loop use, and float64 gradients, whose
    per-example numbers must not depend on the batch)."""
    token = _plain.set(True)
    try:
        yield
    finally:
        _plain.reset(token)


def transposed(layer: nn.Module) -> bool:
    return isinstance(layer, nn.modules.conv._ConvTransposeNd)


def dims_of(layer: Layer) -> int:
    return len(layer.kernel_size)


def _simple(layer: Layer) -> bool:
    """groups 1, dilation 1, zero padding mode and no output padding: the shape every
    kernel but the library's assumes."""
    return (layer.groups == 1 and all(d == 1 for d in layer.dilation)
            and layer.padding_mode == "zeros" and not isinstance(layer.padding, str)
            and all(p == 0 for p in getattr(layer, "output_padding", (0,))))


# -- kernels -----------------------------------------------------------------------------------
Prepared = tuple[Tensor, Tensor | None]


@dataclass(frozen=True)
class Kernel:
    """One way to compute a layer. ``prepare`` turns (weight, bias) into what ``run`` takes
    (cached between weight updates); ``run(layer, x, weight, bias)`` computes the output."""

    name: str
    help: str
    applies: Callable[[Layer], bool]
    run: Callable[[Layer, Tensor, Tensor, Tensor | None], Tensor]
    prepare: Callable[[Layer, Tensor, Tensor | None], Prepared] | None = None


def _library(layer: Layer, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    if transposed(layer):
        fn = (F.conv_transpose1d, F.conv_transpose2d, F.conv_transpose3d)[dims_of(layer) - 1]
        return fn(x, w, b, layer.stride, layer.padding,  # type: ignore[arg-type]
                  layer.output_padding, layer.groups, layer.dilation)
    return layer._conv_forward(x, w, b)


def _format_of(x: Tensor) -> torch.memory_format:
    # under torch.func (vmap: the likelihood's Jacobians) a tensor cannot be asked for a
    # channels-last layout, and its layout changes no value: plain
    if torch._C._functorch.is_functorch_wrapped_tensor(x):
        return torch.contiguous_format
    if x.dim() == 4 and x.is_contiguous(memory_format=torch.channels_last):
        return torch.channels_last
    if x.dim() == 5 and x.is_contiguous(memory_format=torch.channels_last_3d):
        return torch.channels_last_3d
    return torch.contiguous_format


def _channels_first(layer: Layer, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """The library's kernel in the plain (channels-first) memory format, the output returned
    in the input's format."""
    fmt = _format_of(x)
    return _library(layer, x.contiguous(), w, b).contiguous(memory_format=fmt)


def _contiguous(layer: Layer, w: Tensor, b: Tensor | None) -> Prepared:
    return w.contiguous(), b


def _phases(layer: Layer, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    stride = tuple(layer.stride)
    y = (F.conv1d if dims_of(layer) == 1 else F.conv2d)(x, w, b, padding=1)
    return phase_output(y, layer.out_channels, stride, tuple(layer.padding),  # type: ignore[arg-type]
                        tuple(x.shape[2:]))


def _phase_weights(layer: Layer, w: Tensor, b: Tensor | None) -> Prepared:
    stride = tuple(layer.stride)
    # output channel (o, r) carries bias o (inside the convolution, as autocast expects)
    return (phase_kernel(w, stride),
            b.repeat_interleave(math.prod(stride)) if b is not None else None)


def _gemm_transposed(layer: Layer, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """A transposed convolution as cols = x^T W (one matrix multiply of every input position
    with every output tap) and ``fold``, which adds the overlapping taps into place (col2im)."""
    dims = dims_of(layer)
    n, size = x.shape[0], tuple(x.shape[2:])
    k: tuple[int, ...] = tuple(layer.kernel_size)
    s: tuple[int, ...] = tuple(layer.stride)
    p: tuple[int, ...] = tuple(layer.padding)  # type: ignore[arg-type]
    if dims == 1:  # as a picture one row high
        size, k, s, p = (1, *size), (1, *k), (1, *s), (0, *p)
    out = tuple((i - 1) * st - 2 * pd + kk for i, st, pd, kk in zip(size, s, p, k))
    cols = torch.matmul(x.flatten(2).transpose(1, 2), w)  # (N, positions, Cout * taps)
    y = F.fold(cols.transpose(1, 2), out, kernel_size=k, stride=s, padding=p)
    if dims == 1:
        y = y.squeeze(2)
    if b is not None:
        y = y + b.view(1, -1, *([1] * dims)).to(y.dtype)
    return y.contiguous(memory_format=_format_of(x)) if n else y


def _gemm_weights(layer: Layer, w: Tensor, b: Tensor | None) -> Prepared:
    return w.reshape(w.shape[0], -1), b  # (Cin, Cout * taps)


def _linear(layer: Layer, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """A 1x1 convolution as a matrix multiply over the channels (in channels-last memory the
    channels are the innermost dimension already)."""
    y = F.linear(x.movedim(1, -1), w, b).movedim(-1, 1)
    return y.contiguous(memory_format=_format_of(x))


def _linear_weights(layer: Layer, w: Tensor, b: Tensor | None) -> Prepared:
    return w.reshape(w.shape[0], -1), b


def _padded(layer: Layer, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    """The library's kernel with the output channels padded with zeros (weights prepared so),
    the extra channels dropped."""
    return _library(layer, x, w, b)[:, :layer.out_channels]


def _padded_weights(layer: Layer, w: Tensor, b: Tensor | None) -> Prepared:
    extra = PADDED_CHANNELS - layer.out_channels
    axis = 1 if transposed(layer) else 0
    shape = list(w.shape)
    shape[axis] = extra
    w = torch.cat([w, w.new_zeros(shape)], dim=axis)
    return w, (torch.cat([b, b.new_zeros(extra)]) if b is not None else None)


def _one_by_one(layer: Layer) -> bool:
    return (not transposed(layer) and _simple(layer) and all(k == 1 for k in layer.kernel_size)
            and all(s == 1 for s in layer.stride) and all(p == 0 for p in layer.padding))


def _gemm_fits(layer: Layer) -> bool:
    return transposed(layer) and dims_of(layer) <= 2 and _simple(layer)


def _padded_fits(layer: Layer) -> bool:
    return layer.out_channels <= MAX_PADDED and layer.groups == 1


def _multi_dim(layer: Layer) -> bool:
    return dims_of(layer) >= 2


KERNELS: dict[str, Kernel] = {k.name: k for k in (
    Kernel("library", "the library's kernel (oneDNN, cuDNN) in the generator's memory format",
           lambda layer: True, _library),
    Kernel("channels_first", "the library's kernel in the plain memory format",
           _multi_dim, _channels_first, _contiguous),
    Kernel("phases", "a transposed convolution as ordinary convolutions of its stride's "
           "phases and a pixel shuffle", lambda layer: transposed(layer) and phases_apply(layer),
           _phases, _phase_weights),
    Kernel("gemm", "a transposed convolution as one matrix multiply and fold (col2im)",
           _gemm_fits, _gemm_transposed, _gemm_weights),
    Kernel("linear", "a 1x1 convolution as a matrix multiply over channels", _one_by_one,
           _linear, _linear_weights),
    Kernel("padded", f"the library's kernel with the output channels padded to "
           f"{PADDED_CHANNELS} with zeros", _padded_fits, _padded, _padded_weights),
)}


# -- forms: a kernel in a precision ----------------------------------------------------------
def split_form(form: str) -> tuple[str, str]:
    kernel, _, precision = form.partition("/")
    return kernel, precision or "autocast"


def candidate_forms(layer: Layer, mode: str) -> list[str]:
    """The forms to time for ``layer`` in precision ``mode`` (fp32 or bf16): under bf16 each
    kernel as autocast runs it and with kept bf16 weights, and thin layers also in fp32."""
    kernels = [name for name, k in KERNELS.items() if k.applies(layer)]
    if mode != "bf16":
        return kernels
    forms = [f for k in kernels for f in (k, f"{k}/bf16")]
    if layer.out_channels <= MAX_PADDED:
        forms += [f"{k}/fp32" for k in kernels]
    return forms


def default_form(layer: Layer, x: Tensor) -> str:
    """The form of a layer not tuned for this input: the phase form for thin transposed
    layers on CPUs (measured faster on every CPU tried), the library's kernel otherwise."""
    if (x.device.type == "cpu" and transposed(layer) and phases_apply(layer)
            and layer.out_channels <= MAX_DEFAULT_PHASED):
        return "phases"
    return "library"


def _weights(layer: Layer, kernel: Kernel, dtype: torch.dtype | None) -> Prepared:
    """The layer's (weight, bias) as ``kernel`` takes them, in ``dtype``; kept between calls
    while the weights stay the same and need no gradient (Langevin inference freezes them),
    so a derived or cast copy is made once per weight update instead of once per call."""
    w, b = layer.weight, layer.bias
    if kernel.prepare is None and dtype is None:
        return w, b

    def make() -> Prepared:
        pw, pb = kernel.prepare(layer, w, b) if kernel.prepare is not None else (w, b)
        if dtype is not None:
            pw, pb = pw.to(dtype), (pb.to(dtype) if pb is not None else None)
        return pw, pb

    if torch.is_grad_enabled() and (w.requires_grad or (b is not None and b.requires_grad)):
        return make()  # the learning step: through autograd, to the master weights
    stamp = (w._version, w.data_ptr(), w.device,
             (b._version, b.data_ptr()) if b is not None else None)
    cache: dict[tuple[str, torch.dtype | None], tuple[object, Prepared]] = \
        layer.__dict__.setdefault("_prepared", {})
    key = (kernel.name, dtype)
    hit = cache.get(key)
    if hit is not None and hit[0] == stamp:
        return hit[1]
    with torch.no_grad():
        made = make()
    cache[key] = (stamp, made)
    return made


def compute(layer: Layer, x: Tensor, form: str) -> Tensor:
    """``layer(x)`` in ``form``."""
    name, precision = split_form(form)
    kernel = KERNELS[name]
    device = x.device.type
    if precision == "autocast" or not torch.is_autocast_enabled(device):
        w, b = _weights(layer, kernel, None)
        return kernel.run(layer, x, w, b)
    if precision == "bf16":
        dtype = torch.get_autocast_dtype(device)
        w, b = _weights(layer, kernel, dtype)
        return kernel.run(layer, x.to(dtype), w, b)
    with torch.autocast(device, enabled=False):  # fp32
        w, b = _weights(layer, kernel, None)
        return kernel.run(layer, x.float(), w, b)


def signature(x: Tensor) -> Signature:
    device = x.device.type
    mode = "bf16" if torch.is_autocast_enabled(device) else "fp32"
    return device, mode, tuple(x.shape[1:])


class TunedLayer:
    """Mixin of the tuned convolution classes: ``forms`` maps a ``Signature`` to the form
    chosen for it (filled by ``tuning.tune``); other inputs take ``default_form``."""

    forms: dict[Signature, str]

    def form_for(self, x: Tensor) -> str:
        layer: Layer = self  # type: ignore[assignment]
        if _plain.get():
            return "library"
        chosen = self.__dict__.get("forms")
        form = chosen.get(signature(x)) if chosen else None
        return form if form is not None else default_form(layer, x)


def _tuned_class(base: type[Layer]) -> Any:
    forward: Callable[..., Tensor]
    if issubclass(base, nn.modules.conv._ConvTransposeNd):
        def forward(self: Any, x: Tensor, output_size: list[int] | None = None) -> Tensor:
            if output_size is not None:
                return base.forward(self, x, output_size)
            return compute(self, x, self.form_for(x))
    else:
        def forward(self: Any, x: Tensor) -> Tensor:
            return compute(self, x, self.form_for(x))
    return type(f"Tuned{base.__name__}", (TunedLayer, base), {
        "forward": forward, "__module__": __name__,
        "__doc__": f"``nn.{base.__name__}`` computed in the form chosen for each input "
                   "(``latentgen.model.forms``); same parameters and state-dict keys."})


TunedConv1d = _tuned_class(nn.Conv1d)
TunedConv2d = _tuned_class(nn.Conv2d)
TunedConv3d = _tuned_class(nn.Conv3d)
TunedConvTranspose1d = _tuned_class(nn.ConvTranspose1d)
TunedConvTranspose2d = _tuned_class(nn.ConvTranspose2d)
TunedConvTranspose3d = _tuned_class(nn.ConvTranspose3d)
TUNED: dict[type[nn.Module], type[nn.Module]] = {
    nn.Conv1d: TunedConv1d, nn.Conv2d: TunedConv2d, nn.Conv3d: TunedConv3d,
    nn.ConvTranspose1d: TunedConvTranspose1d, nn.ConvTranspose2d: TunedConvTranspose2d,
    nn.ConvTranspose3d: TunedConvTranspose3d}


def make_tunable(module: nn.Module) -> list[tuple[str, Layer]]:
    """Turn every plain convolution of ``module`` (a third party's generator too) into its
    tuned class, in place (same parameters: only the class changes); returns the tuned
    layers by name."""
    found = []
    for name, sub in module.named_modules():
        cls = TUNED.get(type(sub))
        if cls is not None:
            sub.__class__ = cls
        if isinstance(sub, TunedLayer):
            found.append((name, sub))
    return found  # type: ignore[return-value]


__all__ = ["KERNELS", "Kernel", "Signature", "TunedConv1d", "TunedConv2d", "TunedConv3d",
           "TunedConvTranspose1d", "TunedConvTranspose2d", "TunedConvTranspose3d",
           "TunedLayer", "candidate_forms", "compute", "default_form", "make_tunable",
           "plain_forms", "signature", "split_form"]
