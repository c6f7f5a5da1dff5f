"""Shared building blocks for top-down ConvNet generators, for 1D, 2D and 3D data alike.

The seed's generator f(Z; W) = f_1(W_1 f_2(W_2 ... f_n(W_n Z + b_n) ...) + b_1) is a stack of
transposed convolutions: the first layer lifts the latent to a small "base" field, each next one
multiplies the size by a stride, the last one maps to the data channels through tanh.
Modality plugins only choose the numbers.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from latentgen.model.forms import (
    TunedConv1d,
    TunedConv2d,
    TunedConv3d,
    TunedConvTranspose1d,
    TunedConvTranspose2d,
    TunedConvTranspose3d,
)
from latentgen.model.generator import Generator

# each layer runs in the form measured fastest where it runs (model/forms.py, model/tuning.py)
_CONV_T = {1: TunedConvTranspose1d, 2: TunedConvTranspose2d, 3: TunedConvTranspose3d}
_CONV = {1: TunedConv1d, 2: TunedConv2d, 3: TunedConv3d}

#: the upsampling layers a generator is built of (``UpsamplingGenerator(design=...)``)
GENERATOR_DESIGNS = {
    "convt": "transposed convolutions, kernel 2s (the seed's and DCGAN's stack)",
    "upconv": "nearest-neighbour upsampling then a 3-wide convolution (no checkerboard "
              "pattern from overlapping kernels)",
    "resnet": "residual blocks: upsample, two 3-wide convolutions, a 1x1 shortcut, then a "
              "3-wide output convolution (the later papers' generators)",
}


def _tuple(v: int | Sequence[int], dims: int) -> tuple[int, ...]:
    if isinstance(v, Sequence):
        return tuple(int(x) for x in v)
    return (int(v),) * dims  # an int, numpy's included


class UpsamplingGenerator(Generator):
    """latent (N, d) or (N, d, *field) -> data (N, out_channels, *size).

    Args:
        dims: 1, 2 or 3 spatial dimensions.
        latent_dim: d, the latent channels.
        out_channels: data channels.
        base: size of the field after the first layer (per dimension) for a vector latent.
        strides: one upsampling factor (int or per-dimension tuple) per later layer; a layer with
            stride s uses kernel 2s and padding s/2 (even s) so it multiplies the size by exactly s.
        widths: channels after the first layer and after each upsampling layer but the last
            (len(strides) entries).
        latent_field: spatial size of a field latent, or None for a vector latent. A field latent
            enters through a 1x1 convolution, so the network is fully convolutional and a larger
            field gives a larger output.
        crop: the data size (per dimension) when it is smaller than what the layers make: the
            excess is trimmed from the end of each dimension (a larger field latent still gives
            a proportionally larger output, less the same excess).
        headroom: the output is ``headroom * tanh(...)``. With 1.0, data at exactly -1 or 1
            (black or white pixels) is reached only as the pre-activation goes to infinity, and
            Adam, whose steps do not shrink with the gradient, drives it there: on mostly-black
            data the whole output saturates, its gradient vanishes and the generator stops
            depending on Z. A little headroom (1.1) puts the extremes at a finite
            pre-activation (atanh(1 / 1.1) = 1.5), where the error gradient is zero and stays
            balanced. Outputs then lie in [-headroom, headroom]; writers clip to the data range.
    """

    def __init__(self, dims: int, latent_dim: int, out_channels: int,
                 base: int | Sequence[int], strides: Sequence[int | Sequence[int]],
                 widths: Sequence[int], latent_field: int | Sequence[int] | None = None,
                 slope: float = 0.2, crop: int | Sequence[int] | None = None,
                 headroom: float = 1.0, design: str = "convt") -> None:
        super().__init__()
        if len(widths) != len(strides):
            raise ValueError("need one width per upsampling layer")
        if design not in GENERATOR_DESIGNS:
            raise ValueError(f"unknown generator design {design!r}; one of "
                             f"{', '.join(GENERATOR_DESIGNS)}")
        conv_t = _CONV_T[dims]
        base_t = _tuple(base, dims)
        layers: list[nn.Module] = []
        if latent_field is None:
            # (d, 1, ..., 1) -> (w0, *base): a dense layer written as a transposed convolution.
            layers.append(conv_t(latent_dim, widths[0], kernel_size=base_t, bias=True))
            size = base_t
            self.latent_shape = (latent_dim,)
        else:
            field = _tuple(latent_field, dims)
            layers.append(conv_t(latent_dim, widths[0], kernel_size=1, bias=True))
            size = field
            self.latent_shape = (latent_dim, *field)
        steps = [_tuple(stride, dims) for stride in strides]
        for s in steps:
            if any(v % 2 and v != 1 for v in s):
                raise ValueError(f"strides must be 1 or even, got {s}")
        if design == "convt":
            channels = list(widths[1:]) + [out_channels]
            in_ch = widths[0]
            for s, out_ch in zip(steps, channels):
                k = tuple(2 * v if v > 1 else 3 for v in s)
                p = tuple(v // 2 if v > 1 else 1 for v in s)
                layers.append(nn.LeakyReLU(slope, inplace=True))
                up = conv_t(in_ch, out_ch, k, s, p)
                layers.append(up)
                in_ch = out_ch
        elif design == "upconv":
            channels = list(widths[1:]) + [out_channels]
            for s, in_ch, out_ch in zip(steps, widths, channels):
                layers += [nn.LeakyReLU(slope, inplace=True), _upsample(s),
                           _CONV[dims](in_ch, out_ch, kernel_size=3, padding=1)]
        else:  # resnet: the last block keeps its width; a convolution maps it to the data
            channels = list(widths[1:]) + [widths[-1]]
            layers += [ResidualUpBlock(dims, in_ch, out_ch, s, slope)
                       for s, in_ch, out_ch in zip(steps, widths, channels)]
            layers += [nn.LeakyReLU(slope), _CONV[dims](widths[-1], out_channels,
                                                        kernel_size=3, padding=1)]
        for s in steps:
            size = tuple(a * b for a, b in zip(size, s))
        layers.append(nn.Tanh())
        self.net = nn.Sequential(*layers)
        self.dims = dims
        self.design = design
        self.headroom = float(headroom)
        self.vector_latent = latent_field is None
        self._init_weights(slope)
        target = _tuple(crop, dims) if crop is not None else size
        if any(t > s or t < 1 for t, s in zip(target, size)):
            raise ValueError(f"crop {target} must lie within the generated size {size}")
        #: samples trimmed from the end of each dimension
        self.excess = tuple(s - t for s, t in zip(size, target))
        self.data_shape = (out_channels, *target)

    @torch.no_grad()
    def _init_weights(self, slope: float) -> None:
        """He initialisation with the true fan-in of each layer.

        PyTorch's default takes the fan-in of a transposed convolution from its *output*
        channels, which shrinks activations layer by layer: the generator then starts as a
        near-constant map, and ABP's latents blow up far beyond the N(0, I) prior to compensate,
        so samples drawn from the prior come out as grey averages. Here each output sees
        in_channels * prod(kernel / stride) inputs, and Z ~ N(0, I) yields unit-scale activations.
        """
        convs = [m for m in self.net.modules()
                 if isinstance(m, (nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
                                   nn.Conv1d, nn.Conv2d, nn.Conv3d))]
        output = convs[-1]
        for i, conv in enumerate(convs):
            taps = 1.0
            transposed = isinstance(conv, (nn.ConvTranspose1d, nn.ConvTranspose2d,
                                           nn.ConvTranspose3d))
            if not (i == 0 and self.vector_latent):  # a 1x1 latent meets each kernel tap once
                for k, s in zip(conv.kernel_size, conv.stride):
                    taps *= k / s if transposed else k
            fan_in = conv.in_channels * taps
            # The output layer starts small: a generator that begins near-constant learns smooth
            # images first instead of having to unlearn random high-frequency texture.
            gain = (0.1 if conv is output
                    else getattr(conv, "gain", nn.init.calculate_gain("leaky_relu", slope)))
            nn.init.normal_(conv.weight, 0.0, gain / fan_in ** 0.5)
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)

    def forward(self, z: Tensor) -> Tensor:
        if self.vector_latent:
            z = z.reshape(*z.shape[:2], *([1] * self.dims))
        x = self.net(z)
        if self.headroom != 1.0:
            x = x * self.headroom
        if any(self.excess):
            x = x[(..., *(slice(0, n - e) for n, e in zip(x.shape[2:], self.excess)))]
        return x


def _upsample(stride: tuple[int, ...]) -> nn.Module:
    return nn.Upsample(scale_factor=stride, mode="nearest")


class ResidualUpBlock(nn.Module):
    """x -> up(x) projected by a 1x1 convolution, plus act, up, conv3, act, conv3 of x: the
    up-sampling residual block of the family's later generators (and of SNGAN / BigGAN),
    without normalisation (a batch-dependent layer would make an example's reconstruction
    depend on its batch-mates during inference)."""

    def __init__(self, dims: int, in_ch: int, out_ch: int, stride: tuple[int, ...],
                 slope: float) -> None:
        super().__init__()
        conv = _CONV[dims]
        self.up = _upsample(stride)
        self.act = nn.LeakyReLU(slope)
        self.conv1 = conv(in_ch, out_ch, kernel_size=3, padding=1)
        self.conv2 = conv(out_ch, out_ch, kernel_size=3, padding=1)
        self.skip = conv(in_ch, out_ch, kernel_size=1)
        # the branch and the shortcut each start at half the variance, so their sum keeps the
        # unit scale that He initialisation gives a plain stack
        for layer in (self.conv2, self.skip):
            layer.gain = nn.init.calculate_gain("leaky_relu", slope) / 2 ** 0.5

    def forward(self, x: Tensor) -> Tensor:
        up = self.up(x)
        h = self.conv2(self.act(self.conv1(self.act(up))))
        return h + self.skip(up)


def halving_widths(last: int, layers: int, cap: int = 1024) -> list[int]:
    """DCGAN-style channel widths: ``last`` channels before the output layer, doubling towards
    the latent (capped), one entry per upsampling layer."""
    return [min(last * 2 ** (layers - 1 - i), cap) for i in range(layers)]


@torch.no_grad()
def generate(generator: nn.Module, z: Tensor, batch_size: int = 256) -> Tensor:
    """f(z) in batches, without building a graph."""
    outs = [generator(z[i:i + batch_size]) for i in range(0, z.shape[0], batch_size)]
    return torch.cat(outs) if outs else z.new_zeros((0,))
