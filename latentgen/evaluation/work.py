"""What a trained run computes: synthesis, reconstruction, interpolation and evaluation.

Everything here returns tensors and dicts; ``latentgen.evaluation.outputs`` writes them to
files. Data may be a path (what ``--data`` takes), a tensor of model-space examples, a
``torch.utils.data.Dataset`` of them, or None: the run's training data with its banked latents.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch.utils.data import Dataset

from latentgen.data.examples import Examples
from latentgen.data.masks import Masks, parse_masks
from latentgen.errors import UserError
from latentgen.evaluation.anomaly import (
    DEFAULT_SCORE,
    anomaly_scores,
    detection_summary,
    pca_residuals,
    score_rule,
)
from latentgen.evaluation.baselines import (
    REGIME_RULE,
    baseline_pca,
    mean_fill_mse,
    pca_extras,
    regime,
)
from latentgen.evaluation.defaults import TRAIN_SAMPLE
from latentgen.evaluation.inference import (
    DEFAULT_SAMPLER,
    DEFAULT_STEPS,
    infer_latents,
    per_example_extras,
    per_example_mse,
    spread_subset,
    training_latents,
)
from latentgen.model.nets import generate
from latentgen.model.priors import Prior
from latentgen.runtime.seeding import derived_generator

if TYPE_CHECKING:
    from latentgen.evaluation.run import Run

#: what the verbs take as data
Source = str | Path | torch.Tensor | Dataset | Examples | None
INTERPOLATION_MODES = ("linear", "spherical")


def _model_space(batch: torch.Tensor) -> torch.Tensor:
    """The decode of examples given as tensors: they are model-space floats already."""
    return batch.float()


def open_source(trained: Run, source: Source, what: str
                ) -> tuple[Examples, torch.Tensor | None]:
    """Examples from ``source``, with the banked latents when it is None (the training data)."""
    if source is None:
        return trained.training_examples(), trained.latents
    if isinstance(source, Examples):  # opened already (``Run.examples``)
        return source, None
    if isinstance(source, (str, Path)):
        return trained.model.open_data(str(source), what), None
    if isinstance(source, torch.Tensor):
        x = source.detach().cpu()
    elif isinstance(source, Dataset):
        items = [source[i] for i in range(len(source))]  # type: ignore[arg-type]
        if not items:
            raise UserError(f"{what}: the dataset holds no examples")
        x = torch.stack([torch.as_tensor(it[0] if isinstance(it, (tuple, list)) else it)
                         for it in items])
    else:
        raise UserError(f"{what}: give a path, a tensor or a torch Dataset, not "
                        f"{type(source).__name__}")
    shape = tuple(trained.model.generator.data_shape)
    if tuple(x.shape) == shape:
        x = x.unsqueeze(0)  # one example
    if tuple(x.shape[1:]) != shape or len(x) == 0:
        raise UserError(f"{what}: examples of shape {tuple(x.shape[1:])}, the generator makes "
                        f"{shape}; give model-space tensors of that shape")
    return Examples(x.float(), _model_space, f"<{type(source).__name__}>"), None


def _masks(trained: Run, spec: str, n_examples: int, what: str) -> Masks:
    if trained.model.observation.operator is not None:
        raise UserError(f"--mask {spec}: the run learned from indirect observations "
                        f"(--observe {trained.model.config.observe}); leave --mask out")
    # the run's seed: a training example gets the same holes it had in `train --mask`
    masks = parse_masks(spec, trained.model.modality, trained.model.options,
                        tuple(trained.model.generator.data_shape),
                        seed=trained.model.config.seed)
    masks.check(n_examples, what)
    return masks


def at_scale(trained: Run, scale: int) -> tuple[Any, Prior]:
    """The modality options of data ``scale`` times larger and the prior over the latent
    field that renders it (``Modality.scaled``); the run's own at scale 1."""
    model = trained.model
    if scale < 1:
        raise UserError(f"--scale must be at least 1, got {scale}")
    if scale == 1:
        return model.options, model.prior
    options, shape = model.modality.scaled(model.options, tuple(model.prior.latent_shape),
                                           scale)
    return options, model.prior.resized(shape)


def synthesis_batches(trained: Run, n: int, seed: int = 0, batch_size: int = 256,
                      scale: int = 1) -> Iterator[torch.Tensor]:
    """Z ~ prior, f(Z), in batches of ``batch_size`` (on the CPU): memory stays flat for any n.
    ``scale`` > 1 draws latent fields that much larger (a fully convolutional generator then
    renders data that much larger)."""
    if n < 1 or batch_size < 1:
        raise UserError(f"--n and --batch-size must be at least 1, got {n} and {batch_size}")
    model = trained.model
    prior = at_scale(trained, scale)[1]
    rng = derived_generator(seed, "synthesize")
    for start in range(0, n, batch_size):
        z = prior.sample(min(batch_size, n - start), generator=rng).to(trained.device)
        yield generate(model.generator, z).cpu()


@dataclass
class Reconstruction:
    """Examples, their latents and f(Z); with a mask also the occluded and recovered examples
    (observed entries kept, f(Z) in the holes). Tensors on the CPU, MSEs per example on the
    modality's metric scale (``mse`` over observed entries when masked)."""

    originals: torch.Tensor
    latents: torch.Tensor
    reconstructions: torch.Tensor
    mse: torch.Tensor
    occluded: torch.Tensor | None = None
    recovered: torch.Tensor | None = None
    recovery_mse: torch.Tensor | None = None

    def summary(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": len(self.originals), "mse": float(self.mse.nanmean())}
        if self.recovery_mse is not None:
            out["recovery_mse"] = float(self.recovery_mse.nanmean())
        return out


def reconstruct(trained: Run, source: Source = None, n: int | None = None,
                steps: int = DEFAULT_STEPS, sampler: str = DEFAULT_SAMPLER,
                mask: str | None = None) -> Reconstruction:
    """f(Z) for inferred Z of the first ``n`` examples (all when None); for training data Z is
    the MAP latent refined from the banked one.

    With ``mask``, Z is inferred from the observed entries only (always from scratch: banked
    latents saw the whole example).
    """
    if (n is not None and n < 1) or steps < 0:
        raise UserError("--n must be at least 1 and --infer-steps 0 or more")
    data, banked = open_source(trained, source, "--data")
    masks = _masks(trained, mask, len(data), "--data") if mask else None
    take = torch.arange(len(data) if n is None else min(n, len(data)))
    data = data.subset(take)
    model, dev = trained.model, trained.device
    if banked is not None and masks is None:
        z = training_latents(model, dev, data, banked[take.to(banked.device)])
    else:
        z = infer_latents(model, dev, data, steps, sampler, masks=masks)
    y = data.get(torch.arange(len(data))).cpu()
    x = generate(model.generator, z).cpu()
    if masks is None:
        return Reconstruction(y, z.cpu(), x, per_example_mse(model, dev, data, z).cpu())
    m = masks.for_indices(torch.arange(len(data))).expand_as(y)
    fill = sum(model.modality.data_range) / 2
    return Reconstruction(
        y, z.cpu(), x,
        per_example_mse(model, dev, data, z, masks=masks, where="observed").cpu(),
        occluded=y * m + fill * (1 - m), recovered=y * m + x * (1 - m),
        recovery_mse=per_example_mse(model, dev, data, z, masks=masks, where="missing").cpu())


def score(trained: Run, source: Source = None, steps: int = DEFAULT_STEPS,
          sampler: str = DEFAULT_SAMPLER, mask: str | None = None,
          score: str = DEFAULT_SCORE) -> dict[str, torch.Tensor]:
    """Anomaly scores of every example of ``source`` (``latentgen.evaluation.anomaly``):
    ``score`` (the one named ``score``), ``joint``, ``reconstruction``, ``prior``, ``mse`` and
    ``pca_residual`` (the per-element error of PCA at the same d, the baseline score), each
    (n,). Latents are inferred as for
    held-out error (training data: refined from the banked ones); with ``mask``, from the
    observed entries, which alone are scored."""
    if steps < 0:
        raise UserError(f"--infer-steps must be 0 or more, got {steps}")
    score_rule(score)  # an unknown name is refused before any work
    data, banked = open_source(trained, source, "--data")
    masks = _masks(trained, mask, len(data), "--data") if mask else None
    model, dev = trained.model, trained.device
    if banked is not None and masks is None:
        z = training_latents(model, dev, data, banked)
    else:
        z = infer_latents(model, dev, data, steps, sampler, masks=masks)
    out = anomaly_scores(model, dev, data, z, masks=masks, score=score)
    pca = baseline_pca(model, trained.training_examples(), dev)
    out["pca_residual"] = pca_residuals(pca, data, dev, masks) * model.metric_scale
    return out


def interpolation_table(trained: Run, source: Source = None, steps: int = 8, pairs: int = 4,
                        infer_steps: int = DEFAULT_STEPS, sampler: str = DEFAULT_SAMPLER,
                        mode: str = "linear") -> torch.Tensor:
    """Seed §4.2: f((1 - t) Z_a + t Z_b) for t = 0, 1/n, ..., 1 between consecutive examples
    of ``source``, originals at both ends: a (pairs, steps + 3, *data_shape) table.

    ``mode="spherical"`` follows the great circle between the latents instead (slerp), which
    keeps the path at the norm typical of N(0, I) samples rather than cutting through the
    low-norm middle.
    """
    if steps < 1 or pairs < 1 or infer_steps < 0:
        raise UserError("--steps and --pairs must be at least 1, --infer-steps 0 or more")
    if mode not in INTERPOLATION_MODES:
        raise UserError(f"--mode must be linear or spherical, got '{mode}'")
    data, banked = open_source(trained, source, "--data")
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


def path_outputs(trained: Run, za: torch.Tensor, zb: torch.Tensor, steps: int,
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


def evaluate(trained: Run, sets: dict[str, Source], steps: int = DEFAULT_STEPS,
             sampler: str = DEFAULT_SAMPLER, mask: str | None = None,
             train_examples: int | None = TRAIN_SAMPLE) -> dict[str, Any]:
    """Per-element reconstruction MSE of each named set, beside PCA's at the same d.

    ``sets`` maps a name to a source; the source None means the training data, measured at the
    MAP latents refined from its banked ones (what training learned). Other sets get latents
    inferred from scratch.
    The training error is measured on ``train_examples`` of them, evenly spread (the same
    every time; None: all), and its row says so (``n``, ``of``, ``subset``).
    PCA keeps as many components as the generator has latent numbers and is fit on the
    training data. With ``mask``, every set is inferred from its observed entries, and the
    error on the missing ones is reported next to that of filling them with the training mean.
    """
    if steps < 0:
        raise UserError(f"--infer-steps must be 0 or more, got {steps}")
    if train_examples is not None and train_examples < 1:
        raise UserError(f"--train-examples must be at least 1 or all, got {train_examples}")
    model, dev = trained.model, trained.device
    scale = model.metric_scale
    opened = {name: open_source(trained, source, f"--{name}-data") for name, source in sets.items()}
    train = opened["train"][0] if sets.get("train", "") is None else trained.training_examples()
    if "train" in opened and not mask and train_examples is not None:
        # the training error of an evenly spread subset (inference costs as much as training)
        index = spread_subset(len(train), train_examples)
        if index is not None:
            banked = opened["train"][1]
            opened["train"] = (train.subset(index),
                               banked[index.to(banked.device)] if banked is not None else None)
    masks: dict[str, Masks] = {}
    if mask and model.observation.operator is not None:
        raise UserError(f"--mask {mask}: the run learned from indirect observations "
                        f"(--observe {model.config.observe}); leave --mask out")
    if mask:
        # A file of one mask per example fits one set only: the other sets are left out.
        parsed = parse_masks(mask, model.modality, model.options,
                             tuple(model.generator.data_shape), seed=model.config.seed)
        masks = {name: parsed for name, (data, _) in opened.items() if parsed.fits(len(data))}
        if not masks:
            name, (data, _) = next(iter(opened.items()))
            parsed.check(len(data), "the training data" if name == "train" else f"--{name}-data")
        opened = {name: v for name, v in opened.items() if name in masks}
    # clipped to the data range, as the generator's reconstructions are
    pca = baseline_pca(model, train, dev)
    result: dict[str, Any] = {}
    latents: dict[str, torch.Tensor] = {}
    for name, (data, banked) in opened.items():
        m = masks.get(name)
        if banked is not None and m is None:
            z = training_latents(model, dev, data, banked)
        else:
            z = infer_latents(model, dev, data, steps, sampler, masks=m)
        latents[name] = z
        row: dict[str, Any] = {"n": len(data)}
        if name == "train":
            row["of"] = len(train)
            row["subset"] = "all" if len(data) == len(train) else "evenly spread"
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
    if "test" in latents and "negative" in latents:
        held = {name: anomaly_scores(model, dev, opened[name][0], latents[name],
                                     masks=masks.get(name))["score"]
                for name in ("test", "negative")}
        residual = {name: pca_residuals(pca, opened[name][0], dev, masks.get(name))
                    for name in ("test", "negative")}
        result["anomaly"] = detection_summary(held["test"], held["negative"],
                                              residual["test"], residual["negative"])
    if all(k in result for k in ("train", "test", "negative")):
        train_e, test_e, negative_e = (result[k]["mse"] for k in ("train", "test", "negative"))
        result["regime"] = {"verdict": regime(train_e, test_e, negative_e,
                                              pca_test=result["pca"]["test"]),
                            "rule": REGIME_RULE}
    return result
