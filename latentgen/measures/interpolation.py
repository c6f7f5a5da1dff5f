"""Seed section 4.2: the generator along latent paths between inferred examples, straight or on
the great circle."""

from __future__ import annotations

import torch

from latentgen.assembly.trained import Source, Trained
from latentgen.errors import UserError
from latentgen.measures.defaults import DEFAULT_SAMPLER, DEFAULT_STEPS
from latentgen.measures.inference import infer_latents
from latentgen.model.nets import generate

INTERPOLATION_MODES = ("linear", "spherical")


def interpolation_table(trained: Trained, source: Source = None, steps: int = 8, pairs: int = 4,
                        infer_steps: int = DEFAULT_STEPS, sampler: str = DEFAULT_SAMPLER,
                        mode: str = "linear") -> torch.Tensor:
    """Seed §4.2: f((1 - t) Z_a + t Z_b) for t = 0, 1/n, ..., 1 between consecutive examples
    of ``source``, originals at both ends: a (pairs, steps + 3, *data_shape) table.

    ``mode="spherical"`` follows the great circle between the latents instead (slerp), which
    keeps the path at the norm typical of N(0, I) samples rather than cutting through the
    low-norm middle.
    """
    if steps < 1 or pairs < 1 or infer_steps < 0:
        raise UserError("`steps` and `pairs` must be at least 1, `infer_steps` 0 or more")
    if mode not in INTERPOLATION_MODES:
        raise UserError(f"`mode` must be linear or spherical, got '{mode}'")
    data, banked = trained.open_source(source, "`data`")
    if len(data) < 2:
        raise UserError(f"interpolation needs at least 2 examples; {data.source} has "
                        f"{len(data)}")
    pairs = min(pairs, len(data) // 2)
    take = torch.arange(2 * pairs)
    data = data.subset(take)
    model = trained.model
    z = banked[take.to(banked.device)].to(trained.device) if banked is not None else \
        infer_latents(model, trained.device, data, infer_steps, sampler)
    x = path_outputs(trained, z[0::2], z[1::2], steps, mode)
    y = data.get(torch.arange(len(data))).cpu()
    return torch.cat([y[0::2].unsqueeze(1), x, y[1::2].unsqueeze(1)], dim=1)


def path_outputs(trained: Trained, za: torch.Tensor, zb: torch.Tensor, steps: int,
                 mode: str = "linear") -> torch.Tensor:
    """f along the latent path from each ``za`` to its ``zb``: (pairs, steps + 1, *data)."""
    path = latent_path(za, zb, steps, mode)  # (pairs, steps+1, *latent)
    model = trained.model
    return generate(model.generator, path.flatten(0, 1)).cpu().reshape(
        len(za), steps + 1, *model.generator.data_shape)


def latent_path(za: torch.Tensor, zb: torch.Tensor, steps: int, mode: str = "linear"
                ) -> torch.Tensor:
    """(pairs, steps + 1, *latent): from ``za`` (t = 0) to ``zb`` (t = 1), linear or slerp."""
    t = torch.linspace(0, 1, steps + 1, device=za.device, dtype=za.dtype)
    t = t.view(1, -1, *([1] * (za.dim() - 1)))
    a, b = za.unsqueeze(1), zb.unsqueeze(1)
    if mode == "linear":
        return (1 - t) * a + t * b
    fa, fb = za.flatten(1), zb.flatten(1)
    cos = (fa * fb).sum(1) / (fa.norm(dim=1) * fb.norm(dim=1)).clamp_min(1e-12)
    omega = cos.clamp(-1, 1).acos().view(-1, 1, *([1] * (za.dim() - 1)))
    sin = omega.sin()
    # nearly parallel latents: the great circle is the straight line
    straight = sin.abs() < 1e-6
    wa = torch.where(straight, 1 - t, ((1 - t) * omega).sin() / sin.where(~straight, 1.0))
    wb = torch.where(straight, t, (t * omega).sin() / sin.where(~straight, 1.0))
    return wa * a + wb * b
