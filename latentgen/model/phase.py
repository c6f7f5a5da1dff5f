"""Transposed convolutions computed as ordinary convolutions of the stride's phases.

A transposed convolution whose kernel is twice its stride s (the generators' upsampling
layers: kernel 2s, padding s / 2) gives every output sample from exactly two input samples per
dimension, and which two taps depends only on the output's phase (its index modulo s). So it is
an ordinary convolution with a kernel of 2 per dimension and out_channels x s^dims output
channels, one per phase, followed by interleaving the phases into the output (a pixel
shuffle): the same multiply-adds, no zeros inserted, nothing wasted but one extra sample per
dimension cropped at the border.

Why: on CPUs, oneDNN's transposed-convolution kernels run at a few GFLOP/s when the layer has
few output channels, which is every generator's output layer (1 to 3 data channels). Measured
on one core of the AMD EPYC machine of docs/benchmarks.md, the output layer of the log-mel
audio generator (16 -> 1 channels, 32 x 56 -> 64 x 112, batch 64): 11.6 ms forward through
``conv_transpose2d``, 5.1 ms as phases; the waveform generator's (16 -> 1, stride 10): 12.3 ms
against 6.4 ms, and forward plus backward 27.2 against 14.6 ms. Which layers take it on a
given machine is measured there (``forms.py``, ``tuning.py``); untuned, thin layers on CPUs do.

The weights, their names and their layout are those of ``nn.ConvTranspose1d`` /
``nn.ConvTranspose2d``: checkpoints do not change.
"""

from __future__ import annotations

import math

import torch.nn.functional as F
from torch import Tensor, nn


def phases_apply(module: nn.Module) -> bool:
    """Whether ``module`` is a transposed convolution of the phase form's shape (1D or 2D, kernel
    twice an even stride, padding half the stride)."""
    if not isinstance(module, (nn.ConvTranspose1d, nn.ConvTranspose2d)):
        return False
    return (module.groups == 1
            and all(d == 1 for d in module.dilation)
            and all(p == 0 for p in module.output_padding)
            and all(s > 1 and s % 2 == 0 and k == 2 * s and p == s // 2
                    for k, s, p in zip(module.kernel_size, module.stride,
                                       module.padding)))


def phase_kernel(weight: Tensor, stride: tuple[int, ...]) -> Tensor:
    """A transposed convolution's weight (Cin, Cout, 2s, ...) as the ordinary convolution's
    (Cout * prod(s), Cin, 2, ...): output channel (o, r...) is output channel o at phase r."""
    cin, cout = weight.shape[:2]
    dims = len(stride)
    split = weight.reshape(cin, cout, *[v for s in stride for v in (2, s)])
    # tap a of the transposed kernel meets input i - a: the convolution's taps run backwards
    split = split.flip([2 + 2 * d for d in range(dims)])
    taps = [2 + 2 * d for d in range(dims)]
    phases = [3 + 2 * d for d in range(dims)]
    return split.permute(1, *phases, 0, *taps).reshape(cout * math.prod(stride), cin,
                                                       *([2] * dims))


def phase_output(y: Tensor, cout: int, stride: tuple[int, ...], padding: tuple[int, ...],
                 size: tuple[int, ...]) -> Tensor:
    """The phases' convolution output (N, Cout * prod(s), L + 1, ...) interleaved into the
    transposed convolution's output (N, Cout, L * s, ...) for an input of spatial ``size``."""
    dims = len(stride)
    n = y.shape[0]
    grown = [v + 1 for v in size]
    y = y.reshape(n, cout, *stride, *grown)
    # (N, Cout, s..., L + 1...) -> (N, Cout, L + 1, s, ...): interleave the phases
    order = [0, 1] + [p for d in range(dims) for p in (2 + dims + d, 2 + d)]
    y = y.permute(order).reshape(n, cout, *[g * s for g, s in zip(grown, stride)])
    crop = tuple(slice(p, p + v * s) for p, v, s in zip(padding, size, stride))
    return y[(..., *crop)]  # type: ignore[index]


def phase_forward(x: Tensor, weight: Tensor, bias: Tensor | None, stride: tuple[int, ...],
                  padding: tuple[int, ...]) -> Tensor:
    """``conv_transpose{1,2}d(x, weight, bias, stride, padding)`` for kernels of 2 x stride."""
    conv = F.conv1d if len(stride) == 1 else F.conv2d
    # output channel (o, r) carries bias o (inside the convolution, as autocast expects)
    phase_bias = bias.repeat_interleave(math.prod(stride)) if bias is not None else None
    y = conv(x, phase_kernel(weight, stride), phase_bias, padding=1)  # (N, Cout*prod(s), L+1)
    return phase_output(y, weight.shape[1], stride, padding, tuple(x.shape[2:]))


__all__ = ["phase_forward", "phase_kernel", "phase_output", "phases_apply"]
