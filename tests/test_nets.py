"""The shared generator stack: output headroom against saturation on black backgrounds."""

from __future__ import annotations

import pytest
import torch

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
