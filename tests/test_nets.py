"""The shared generator stack: output headroom against saturation on black backgrounds."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from latentgen.model.nets import UpsamplingGenerator


def _fit_black(headroom: float, steps: int = 1000) -> tuple[float, float]:
    """Adam-fit a small 3D generator to all-black clips (-1 everywhere); return the largest
    pre-tanh magnitude and the output's sensitivity to Z afterwards."""
    torch.manual_seed(0)
    gen = UpsamplingGenerator(dims=3, latent_dim=4, out_channels=1, base=(2, 4, 4),
                              strides=[(2, 2, 2)], widths=[8], headroom=headroom)
    opt = torch.optim.Adam(gen.parameters(), lr=0.01)
    z = torch.randn(16, 4)
    for _ in range(steps):
        opt.zero_grad()
        (gen(z) + 1).pow(2).sum().backward()
        opt.step()
    with torch.no_grad():
        pre = gen.net[:-1](z.reshape(16, 4, 1, 1, 1))
        moved = (gen(z + 0.5 * torch.randn_like(z)) - gen(z)).abs().mean()
    return float(pre.abs().max()), float(moved)


def test_headroom_keeps_black_outputs_at_a_finite_preactivation():
    # Without headroom Adam drives the pre-activation of a black output towards -infinity
    # (tanh reaches -1 only there), where tanh's gradient vanishes and Z stops mattering.
    pre_plain, moved_plain = _fit_black(1.0)
    pre_room, moved_room = _fit_black(1.1)
    assert pre_plain > 10  # deep in saturation: tanh' < 1e-8
    assert pre_room < 4  # settles near atanh(1 / 1.1) = 1.52
    assert moved_room > 5 * moved_plain


def test_headroom_scales_the_output_range():
    gen = UpsamplingGenerator(dims=2, latent_dim=4, out_channels=1, base=4, strides=[2],
                              widths=[8], headroom=1.1)
    with torch.no_grad():
        for conv in gen.net:
            if hasattr(conv, "bias") and conv.bias is not None:
                conv.bias.fill_(50.0)  # saturate everything
        assert gen(torch.randn(2, 4)).max().item() == pytest.approx(1.1)


@pytest.mark.parametrize("dims,cin,cout,stride,size", [(1, 5, 1, 10, (7,)), (2, 6, 3, 2, (5, 9)),
                                                       (2, 4, 2, 4, (3, 4)), (1, 3, 4, 2, (6,))])
def test_the_phase_form_is_the_transposed_convolution(dims, cin, cout, stride, size):
    from latentgen.model.phase import phase_forward, phases_apply

    torch.manual_seed(0)
    layer = (nn.ConvTranspose1d if dims == 1 else nn.ConvTranspose2d)(cin, cout, 2 * stride,
                                                                      stride, stride // 2)
    assert phases_apply(layer)
    x = torch.randn(3, cin, *size, requires_grad=True)
    y = phase_forward(x, layer.weight, layer.bias, (stride,) * dims, (stride // 2,) * dims)
    plain = layer(x)
    assert y.shape == plain.shape == (3, cout, *(v * stride for v in size))
    torch.testing.assert_close(y, plain, rtol=1e-5, atol=1e-5)
    odd = nn.ConvTranspose2d(cin, cout, 3, 1, 1)
    assert not phases_apply(odd)


@pytest.mark.parametrize("design", ["convt", "upconv", "resnet"])
@pytest.mark.parametrize("dims,base,strides,field", [
    (1, 4, [4, 2], None), (2, 4, [2, 2], None), (2, 4, [2, 2], 4),
    (3, (2, 4, 4), [(1, 2, 2)], None),
])
def test_every_design_makes_the_data_shape_at_unit_scale(design, dims, base, strides, field):
    torch.manual_seed(0)
    gen = UpsamplingGenerator(dims=dims, latent_dim=8, out_channels=3, base=base,
                              strides=strides, widths=[32] * len(strides), latent_field=field,
                              design=design)
    z = torch.randn(16, *gen.latent_shape)
    with torch.no_grad():
        x = gen(z)
        # hidden activations keep a unit scale at initialisation (He with the true fan-in), so
        # the output depends on Z from the start; the output layer starts small (gain 0.1)
        hidden = gen.net[:-2](z.reshape(16, 8, *([1] * dims)) if field is None else z)
    assert tuple(x.shape[1:]) == tuple(gen.data_shape)
    assert 0.3 < float(hidden.std()) < 3.0
    assert 0.005 < float(x.std()) < 0.5


def test_a_larger_latent_field_gives_a_larger_output_for_every_design():
    for design in ("convt", "upconv", "resnet"):
        gen = UpsamplingGenerator(dims=2, latent_dim=4, out_channels=1, base=4, strides=[2, 2],
                                  widths=[8, 8], latent_field=4, design=design)
        assert gen(torch.randn(2, 4, 8, 8)).shape == (2, 1, 32, 32)


def test_an_unknown_design_is_refused():
    with pytest.raises(ValueError, match="unknown generator design 'gan'"):
        UpsamplingGenerator(dims=2, latent_dim=4, out_channels=1, base=4, strides=[2],
                            widths=[8], design="gan")
