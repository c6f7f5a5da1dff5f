"""What a trained run does: synthesis, reconstruction, interpolation and evaluation.

Each function starts from a run directory alone (config, plugin name and checkpoint are
enough to rebuild the model), computes everything first and writes files last, so bad input
leaves nothing half-written in the output folder.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import torch

from .data import Examples
from .errors import UserError
from .evaluation import REGIME_RULE, fit_pca, mean_fill_mse, pca_extras, regime
from .inference import (DEFAULT_SAMPLER, DEFAULT_STEPS, infer_latents,
                        per_example_extras, per_example_mse, training_latents)
from .masks import Masks, parse_masks
from .model import TrainedRun
from .nets import generate
from .seeding import derived_generator


def _open(trained: TrainedRun, source: str | None, what: str) -> tuple[Examples, torch.Tensor | None]:
    """Examples from ``source``, or the training data with its banked latents when None."""
    if source is None:
        return trained.training_examples(), trained.latents
    return trained.model.open_data(source, what), None


def _masks(trained: TrainedRun, spec: str, n_examples: int, what: str) -> Masks:
    # the run's seed: a training example gets the same holes it had in `train --mask`
    masks = parse_masks(spec, trained.model.modality, trained.model.options,
                        tuple(trained.model.generator.data_shape),
                        seed=trained.model.config.seed)
    masks.check(n_examples, what)
    return masks


def _prepare_out(out: Path) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    return out


def synthesize(trained: TrainedRun, n: int, out: Path, seed: int = 0,
               batch_size: int = 256,
               on_progress: Callable[[int, int], None] | None = None,
               fmt: str | None = None) -> list[Path]:
    """Z ~ prior, output f(Z): ``n`` files plus a grid of the first ones.

    A batch job: each batch is written before the next is made, so memory stays flat for any
    ``n``; ``on_progress(done, n)`` is called after each batch. ``fmt`` picks the file format
    for modalities that write several (e.g. mp4 or gif for video).
    """
    if n < 1 or batch_size < 1:
        raise UserError(f"--n and --batch-size must be at least 1, got {n} and {batch_size}")
    out = _prepare_out(out)
    model = trained.model
    model.modality.check_format(fmt)
    rng = derived_generator(seed, "synthesize")
    written: list[Path] = []
    grid: torch.Tensor | None = None
    for start in range(0, n, batch_size):
        z = model.prior.sample(min(batch_size, n - start), generator=rng).to(trained.device)
        x = generate(model.generator, z).cpu()
        if grid is None:
            grid = x[:64]
        written += model.modality.save_examples(x, out, "sample", model.options, start=start,
                                                fmt=fmt)
        if on_progress is not None:
            on_progress(start + len(x), n)
    assert grid is not None
    side = _grid_cols(len(grid))
    rows = len(grid) // side
    written += model.modality.save_grid(grid[:rows * side].reshape(rows, side, *grid.shape[1:]),
                                        out / "grid", model.options, fmt=fmt)
    return written


def reconstruct(trained: TrainedRun, source: str | None, out: Path, n: int = 32,
                steps: int = DEFAULT_STEPS, sampler: str = DEFAULT_SAMPLER,
                mask: str | None = None, fmt: str | None = None) -> dict[str, Any]:
    """Originals beside f(Z) for inferred Z (for training data: the MAP latent refined from the
    banked one).

    With ``mask``, Z is inferred from the observed entries only (always from scratch: banked
    latents saw the whole example), and the files show original / occluded / recovered, the
    recovered example keeping its observed entries and taking f(Z) in the holes.
    """
    if n < 1 or steps < 0:
        raise UserError("--n must be at least 1 and --steps 0 or more")
    out = _prepare_out(out)
    modality, opts = trained.model.modality, trained.model.options
    modality.check_format(fmt)
    data, banked = _open(trained, source, "--data")
    masks = _masks(trained, mask, len(data), "--data") if mask else None
    take = torch.arange(min(n, len(data)))
    data = data.subset(take)
    model, dev = trained.model, trained.device
    if banked is not None and masks is None:
        z = training_latents(model, dev, data, banked[take.to(banked.device)])
    else:
        z = infer_latents(model, dev, data, steps, sampler, masks=masks)
    y = data.get(torch.arange(len(data))).cpu()
    x = generate(model.generator, z).cpu()
    if masks is None:
        mse = per_example_mse(model, dev, data, z)
        files = modality.save_examples(y, out, "original", opts, fmt=fmt)
        files += modality.save_examples(x, out, "reconstruction", opts, fmt=fmt)
        files += modality.save_grid(_tuples_table([y, x]), out / "grid", opts, fmt=fmt)
        return {"n": len(data), "mse": float(mse.mean()), "files": files}
    m = masks.for_indices(torch.arange(len(data))).expand_as(y)
    fill = sum(model.modality.data_range) / 2
    occluded = y * m + fill * (1 - m)
    recovered = y * m + x * (1 - m)
    missing = per_example_mse(model, dev, data, z, masks=masks, where="missing")
    observed = per_example_mse(model, dev, data, z, masks=masks, where="observed")
    files = modality.save_examples(y, out, "original", opts, fmt=fmt)
    files += modality.save_examples(occluded, out, "occluded", opts, fmt=fmt)
    files += modality.save_examples(recovered, out, "recovered", opts, fmt=fmt)
    files += modality.save_grid(_tuples_table([y, occluded, recovered], cols=9), out / "grid",
                                opts, fmt=fmt)
    return {"n": len(data), "mse": float(observed.nanmean()),
            "recovery_mse": float(missing.nanmean()), "files": files}


def interpolate(trained: TrainedRun, source: str | None, out: Path, steps: int = 8,
                pairs: int = 4, infer_steps: int = DEFAULT_STEPS,
                sampler: str = DEFAULT_SAMPLER, mode: str = "linear",
                fmt: str | None = None) -> dict[str, Any]:
    """Seed §4.2: f((1 - t) Z_a + t Z_b) for t = 0, 1/n, ..., 1, originals at both ends.

    ``mode="spherical"`` follows the great circle between the latents instead (slerp), which
    keeps the path at the norm typical of N(0, I) samples rather than cutting through the
    low-norm middle.
    """
    if steps < 1 or pairs < 1 or infer_steps < 0:
        raise UserError("--steps and --pairs must be at least 1, --infer-steps 0 or more")
    if mode not in ("linear", "spherical"):
        raise UserError(f"--mode must be linear or spherical, got '{mode}'")
    out = _prepare_out(out)
    trained.model.modality.check_format(fmt)
    data, banked = _open(trained, source, "--data")
    if len(data) < 2:
        raise UserError(f"interpolation needs at least 2 examples; {source} has {len(data)}")
    pairs = min(pairs, len(data) // 2)
    take = torch.arange(2 * pairs)
    data = data.subset(take)
    model = trained.model
    z = banked[take.to(banked.device)] if banked is not None else infer_latents(
        model, trained.device, data, infer_steps, sampler)
    path = latent_path(z[0::2], z[1::2], steps, mode)  # (pairs, steps+1, *latent)
    x = generate(model.generator, path.flatten(0, 1)).cpu().reshape(
        pairs, steps + 1, *model.generator.data_shape)
    y = data.get(torch.arange(len(data))).cpu()
    table = torch.cat([y[0::2].unsqueeze(1), x, y[1::2].unsqueeze(1)], dim=1)
    files: list[Path] = []
    for p in range(pairs):
        files += model.modality.save_examples(table[p], out, f"pair{p:02d}_step",
                                              model.options, fmt=fmt)
    files += model.modality.save_grid(table, out / "grid", model.options, fmt=fmt)
    return {"pairs": pairs, "steps": steps, "mode": mode, "files": files}


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


def evaluate(trained: TrainedRun, sets: dict[str, str | None], steps: int = DEFAULT_STEPS,
             sampler: str = DEFAULT_SAMPLER, mask: str | None = None) -> dict[str, Any]:
    """Per-element reconstruction MSE of each named set, beside PCA's at the same d.

    ``sets`` maps a name to a source; the source None means the training data, measured at the
    MAP latents refined from its banked ones (what training learned). Other sets get latents
    inferred from scratch.
    PCA keeps as many components as the generator has latent numbers and is fit on the
    training data. With ``mask``, every set is inferred from its observed entries, and the
    error on the missing ones is reported next to that of filling them with the training mean.
    """
    if steps < 0:
        raise UserError(f"--steps must be 0 or more, got {steps}")
    model, dev = trained.model, trained.device
    scale = model.modality.metric_scale
    opened = {name: _open(trained, source, f"--{name}") for name, source in sets.items()}
    train = opened["train"][0] if sets.get("train", "") is None else trained.training_examples()
    masks: dict[str, Masks] = {}
    if mask:
        # A file of one mask per example fits one set only: the other sets are left out.
        parsed = parse_masks(mask, model.modality, model.options,
                             tuple(model.generator.data_shape), seed=model.config.seed)
        masks = {name: parsed for name, (data, _) in opened.items() if parsed.fits(len(data))}
        if not masks:
            name, (data, _) = next(iter(opened.items()))
            parsed.check(len(data), "the training data" if name == "train" else f"--{name}")
        opened = {name: v for name, v in opened.items() if name in masks}
    # clipped to the data range, as the generator's reconstructions are
    pca = fit_pca(train, math.prod(model.generator.latent_shape), dev,
                  clip=model.modality.data_range)
    result: dict[str, Any] = {}
    for name, (data, banked) in opened.items():
        m = masks.get(name)
        if banked is not None and m is None:
            z = training_latents(model, dev, data, banked)
        else:
            z = infer_latents(model, dev, data, steps, sampler, masks=m)
        row: dict[str, Any] = {"n": len(data)}
        if m is None:
            row["mse"] = float(per_example_mse(model, dev, data, z).mean())
            row.update({k: float(v.mean()) for k, v in
                        per_example_extras(model, dev, data, z).items()})
        else:
            row["mse"] = float(per_example_mse(model, dev, data, z, masks=m,
                                               where="observed").nanmean())
            row["recovery_mse"] = float(per_example_mse(model, dev, data, z, masks=m,
                                                        where="missing").nanmean())
            row["mean_fill_mse"] = float(mean_fill_mse(train, data, m, dev, scale).nanmean())
        result[name] = row
    result["pca"] = {name: float(pca.per_example_mse(data, dev, scale).mean())
                     for name, (data, _) in opened.items()}
    extras = {name: {k: float(v.mean()) for k, v in pca_extras(pca, model, data, dev).items()}
              for name, (data, _) in opened.items()}
    if any(extras.values()):  # e.g. the spectral distance of sound, for PCA's reconstructions
        result["pca_metrics"] = extras
    if all(k in result for k in ("train", "test", "negative")):
        errs = [result[k]["mse"] for k in ("train", "test", "negative")]
        result["regime"] = {"verdict": regime(*errs), "rule": REGIME_RULE}
    return result


def _grid_cols(n: int) -> int:
    side = int(n ** 0.5)
    return max(1, side)


def _tuples_table(parts: list[torch.Tensor], cols: int = 8) -> torch.Tensor:
    """Matching examples of ``parts`` side by side (original | reconstruction | ...), as many
    tuples per row as fit in ``cols`` columns."""
    k, y = len(parts), parts[0]
    per_row = max(1, cols // k)
    n = (len(y) // per_row) * per_row or len(y)
    per_row = min(per_row, n)
    inter = torch.stack([p[:n] for p in parts], dim=1)
    return inter.reshape(n // per_row, k * per_row, *y.shape[1:])
