"""What a trained run does: synthesis, reconstruction, interpolation and evaluation.

Each function starts from a run directory alone (config, plugin name and checkpoint are
enough to rebuild the model), computes everything first and writes files last, so bad input
leaves nothing half-written in the output folder.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from .data import Examples
from .errors import UserError
from .inference import DEFAULT_SAMPLER, DEFAULT_STEPS, infer_latents, per_example_mse
from .model import TrainedRun
from .nets import generate
from .seeding import derived_generator


def _open(trained: TrainedRun, source: str | None, what: str) -> tuple[Examples, torch.Tensor | None]:
    """Examples from ``source``, or the training data with its banked latents when None."""
    if source is None:
        return trained.training_examples(), trained.latents
    data = trained.model.modality.open_dataset(source, trained.model.options)
    shape = tuple(trained.model.generator.data_shape)
    if tuple(data.example_shape) != shape:
        raise UserError(f"{what} {source} has examples of shape {tuple(data.example_shape)}, "
                        f"the run makes {shape}")
    return data, None


def _prepare_out(out: Path) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file; give a folder")
    return out


def synthesize(trained: TrainedRun, n: int, out: Path, seed: int = 0,
               batch_size: int = 256) -> list[Path]:
    """Z ~ prior, output f(Z): ``n`` files plus a grid of the first ones."""
    if n < 1 or batch_size < 1:
        raise UserError(f"--n and --batch-size must be at least 1, got {n} and {batch_size}")
    out = _prepare_out(out)
    model = trained.model
    rng = derived_generator(seed, "synthesize")
    written: list[Path] = []
    grid: torch.Tensor | None = None
    for start in range(0, n, batch_size):
        z = model.prior.sample(min(batch_size, n - start), generator=rng).to(trained.device)
        x = generate(model.generator, z).cpu()
        if grid is None:
            grid = x[:64]
        written += model.modality.write_examples(x, out, "sample", model.options, start=start)
    assert grid is not None
    side = _grid_cols(len(grid))
    rows = len(grid) // side
    written += model.modality.write_grid(grid[:rows * side].reshape(rows, side, *grid.shape[1:]),
                                         out / "grid", model.options)
    return written


def reconstruct(trained: TrainedRun, source: str | None, out: Path, n: int = 32,
                steps: int = DEFAULT_STEPS, sampler: str = DEFAULT_SAMPLER) -> dict[str, Any]:
    """Originals beside f(Z) for inferred Z (banked Z when ``source`` is the training data)."""
    if n < 1 or steps < 0:
        raise UserError("--n must be at least 1 and --steps 0 or more")
    out = _prepare_out(out)
    data, banked = _open(trained, source, "--data")
    take = torch.arange(min(n, len(data)))
    data = data.subset(take)
    z = banked[take.to(banked.device)] if banked is not None else infer_latents(
        trained, data, steps, sampler)
    model = trained.model
    y = data.get(torch.arange(len(data))).cpu()
    x = generate(model.generator, z).cpu()
    mse = per_example_mse(trained, data, z)
    files = model.modality.write_examples(y, out, "original", model.options)
    files += model.modality.write_examples(x, out, "reconstruction", model.options)
    files += model.modality.write_grid(_pairs_table(y, x), out / "grid", model.options)
    return {"n": len(data), "mse": float(mse.mean()), "files": files}


def interpolate(trained: TrainedRun, source: str | None, out: Path, steps: int = 8,
                pairs: int = 4, infer_steps: int = DEFAULT_STEPS,
                sampler: str = DEFAULT_SAMPLER) -> dict[str, Any]:
    """Seed §4.2: f((1 - t) Z_a + t Z_b) for t = 0, 1/n, ..., 1, originals at both ends."""
    if steps < 1 or pairs < 1 or infer_steps < 0:
        raise UserError("--steps and --pairs must be at least 1, --infer-steps 0 or more")
    out = _prepare_out(out)
    data, banked = _open(trained, source, "--data")
    if len(data) < 2:
        raise UserError(f"interpolation needs at least 2 examples; {source} has {len(data)}")
    pairs = min(pairs, len(data) // 2)
    take = torch.arange(2 * pairs)
    data = data.subset(take)
    z = banked[take.to(banked.device)] if banked is not None else infer_latents(
        trained, data, infer_steps, sampler)
    za, zb = z[0::2], z[1::2]
    t = torch.linspace(0, 1, steps + 1, device=z.device).view(1, -1, *([1] * (z.dim() - 1)))
    path = (1 - t) * za.unsqueeze(1) + t * zb.unsqueeze(1)  # (pairs, steps+1, *latent)
    model = trained.model
    x = generate(model.generator, path.flatten(0, 1)).cpu().reshape(
        pairs, steps + 1, *model.generator.data_shape)
    y = data.get(torch.arange(len(data))).cpu()
    table = torch.cat([y[0::2].unsqueeze(1), x, y[1::2].unsqueeze(1)], dim=1)
    files: list[Path] = []
    for p in range(pairs):
        files += model.modality.write_examples(table[p], out, f"pair{p:02d}_step",
                                               model.options)
    files += model.modality.write_grid(table, out / "grid", model.options)
    return {"pairs": pairs, "steps": steps, "files": files}


def evaluate(trained: TrainedRun, sets: dict[str, str | None], steps: int = DEFAULT_STEPS,
             sampler: str = DEFAULT_SAMPLER) -> dict[str, dict[str, float | int]]:
    """Per-element reconstruction MSE of each named set.

    ``sets`` maps a name to a source; the source None means the training data, measured with
    its banked latents (what training learned). Other sets get latents inferred from scratch.
    """
    if steps < 0:
        raise UserError(f"--steps must be 0 or more, got {steps}")
    result: dict[str, dict[str, float | int]] = {}
    for name, source in sets.items():
        data, banked = _open(trained, source, f"--{name}")
        z = banked if banked is not None else infer_latents(trained, data, steps, sampler)
        mse = per_example_mse(trained, data, z)
        result[name] = {"mse": float(mse.mean()), "n": len(data)}
    return result


def _grid_cols(n: int) -> int:
    side = int(n ** 0.5)
    return max(1, side)


def _pairs_table(y: torch.Tensor, x: torch.Tensor, cols: int = 8) -> torch.Tensor:
    """Original/reconstruction pairs side by side, ``cols // 2`` pairs per row."""
    per_row = max(1, cols // 2)
    n = (len(y) // per_row) * per_row or len(y)
    per_row = min(per_row, n)
    inter = torch.stack([y[:n], x[:n]], dim=1).reshape(n // per_row, 2 * per_row, *y.shape[1:])
    return inter
