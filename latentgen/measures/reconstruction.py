"""Reconstruction error, the seed's measure: the per-element error of the training data (from
its banked latents), held-out data and data of another category, beside PCA's at the same number
of latent numbers; with both held-out sets also how well the model tells them apart (anomaly
detection) and the regime the three errors show. ``reconstruct`` is the per-example form the
`reconstruct` command writes.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

import torch

from latentgen.assembly.trained import Source, Trained
from latentgen.data.masks import Masks, parse_masks
from latentgen.errors import UserError
from latentgen.measures.anomaly import anomaly_scores, detection_summary, pca_residuals
from latentgen.measures.baselines import (
    REGIME_RULE,
    baseline_pca,
    mean_fill_mse,
    pca_extras,
    regime,
)
from latentgen.measures.defaults import (
    DEFAULT_POSTERIOR_SAMPLES,
    DEFAULT_SAMPLER,
    DEFAULT_STEPS,
    REFINE_STEPS,
    TRAIN_SAMPLE,
)
from latentgen.measures.inference import (
    infer_latents,
    masks_for,
    per_example_extras,
    per_example_mse,
    spread_subset,
    training_latents,
)
from latentgen.measures.recovery import masked_mse, recover
from latentgen.measures.registry import Block, Line, Request, Table, register_measure
from latentgen.model.nets import generate


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


def reconstruct(trained: Trained, source: Source = None, n: int | None = None,
                steps: int = DEFAULT_STEPS, sampler: str = DEFAULT_SAMPLER,
                mask: str | None = None,
                posterior_samples: int = DEFAULT_POSTERIOR_SAMPLES) -> Reconstruction:
    """f(Z) for inferred Z of the first ``n`` examples (all when None); for training data Z is
    the MAP latent refined from the banked one.

    With ``mask``, Z is inferred from the observed entries only (always from scratch: banked
    latents saw the whole example), and the reconstruction is the mean of
    ``posterior_samples`` posterior draws (``latentgen.measures.recovery``; 0: f(Z) at the
    MAP latent).
    """
    if (n is not None and n < 1) or steps < 0:
        raise UserError("`n` must be at least 1 and `infer_steps` 0 or more")
    if posterior_samples < 0:
        raise UserError(f"`posterior_samples` must be 0 or more, got {posterior_samples}")
    data, banked = trained.open_source(source, "`data`")
    masks = masks_for(trained.model, mask, len(data), "`data`") if mask else None
    take = torch.arange(len(data) if n is None else min(n, len(data)))
    data = data.subset(take)
    model, dev = trained.model, trained.device
    y = data.get(torch.arange(len(data))).cpu()
    if masks is None:
        if banked is not None:
            z = training_latents(model, dev, data, banked[take.to(banked.device)])
        else:
            z = infer_latents(model, dev, data, steps, sampler)
        x = generate(model.generator, z).cpu()
        return Reconstruction(y, z.cpu(), x, per_example_mse(model, dev, data, z).cpu())
    got = recover(model, dev, data, masks, steps, sampler, posterior_samples,
                  seed=model.config.seed)
    x = got.outputs
    m = masks.for_indices(torch.arange(len(data))).expand_as(y)
    fill = sum(model.modality.data_range) / 2
    return Reconstruction(
        y, got.latents, x, masked_mse(model, data, x, masks, "observed"),
        occluded=y * m + fill * (1 - m), recovered=y * m + x * (1 - m),
        recovery_mse=masked_mse(model, data, x, masks, "missing"))


def reconstruction_errors(trained: Trained, sets: dict[str, Source], steps: int = DEFAULT_STEPS,
             sampler: str = DEFAULT_SAMPLER, mask: str | None = None,
             train_examples: int | None = TRAIN_SAMPLE,
             posterior_samples: int = DEFAULT_POSTERIOR_SAMPLES) -> dict[str, Any]:
    """Per-element reconstruction MSE of each named set, beside PCA's at the same d.

    ``sets`` maps a name to a source; the source None means the training data, measured at the
    MAP latents refined from its banked ones (what training learned). Other sets get latents
    inferred from scratch.
    The training error is measured on ``train_examples`` of them, evenly spread (the same
    every time; None: all), and its row says so (``n``, ``of``, ``subset``).
    PCA keeps as many components as the generator has latent numbers and is fit on the
    training data. With ``mask``, every set is inferred from its observed entries, and the
    error on the missing ones (of the mean of ``posterior_samples`` posterior draws, as
    ``reconstruct``'s) is reported next to that of filling them with the training mean.
    """
    if steps < 0:
        raise UserError(f"`infer_steps` must be 0 or more, got {steps}")
    if posterior_samples < 0:
        raise UserError(f"`posterior_samples` must be 0 or more, got {posterior_samples}")
    if train_examples is not None and train_examples < 1:
        raise UserError(f"`train_examples` must be at least 1 or all, got {train_examples}")
    model, dev = trained.model, trained.device
    scale = model.metric_scale
    opened = {name: trained.open_source(source, f"`{name}_data`")
              for name, source in sets.items()}
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
        raise UserError(f"`mask` {mask}: the run learned from indirect observations "
                        f"(`observe` {model.config.observe}); leave `mask` out")
    if mask:
        # A file of one mask per example fits one set only: the other sets are left out.
        parsed = parse_masks(mask, model.modality, model.options,
                             tuple(model.generator.data_shape), seed=model.config.seed)
        masks = {name: parsed for name, (data, _) in opened.items() if parsed.fits(len(data))}
        if not masks:
            name, (data, _) = next(iter(opened.items()))
            parsed.check(len(data), "the training data" if name == "train"
                         else f"`{name}_data`")
        opened = {name: v for name, v in opened.items() if name in masks}
    # clipped to the data range, as the generator's reconstructions are
    pca = baseline_pca(model, train, dev)
    result: dict[str, Any] = {}
    latents: dict[str, torch.Tensor] = {}
    for name, (data, banked) in opened.items():
        m = masks.get(name)
        if m is not None:
            got = recover(model, dev, data, m, steps, sampler, posterior_samples,
                          seed=model.config.seed)
            z = got.latents
        elif banked is not None:
            z = training_latents(model, dev, data, banked)
        else:
            z = infer_latents(model, dev, data, steps, sampler)
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
            row["mse"] = float(masked_mse(model, data, got.outputs, m, "observed").nanmean())
            row["recovery_mse"] = float(masked_mse(model, data, got.outputs, m,
                                                   "missing").nanmean())
            row["posterior_samples"] = posterior_samples
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


def _sets(request: Request) -> dict[str, Source]:
    sets: dict[str, Source] = {"train": None} if request.train else {}
    if request.test_data is not None:
        sets["test"] = request.test_data
    if request.negative_data is not None:
        sets["negative"] = request.negative_data
    if not sets:
        raise UserError("nothing to evaluate: keep `train` or give `test_data` or "
                        "`negative_data`")
    return sets


def _present(result: dict[str, Any], trained: Trained, request: Request) -> list[Block]:
    sets = [s for s in _sets(request)]
    mask = request.mask
    extras = sorted({k for name in sets if name in result for k in result[name]}
                    - {"n", "of", "subset", "mse", "recovery_mse", "mean_fill_mse",
                       "posterior_samples"})
    if mask:  # observed-entry errors do not compare with PCA's error over whole examples
        header = ("set", "examples", "MSE observed", "MSE missing", "mean fill missing",
                  "PCA MSE (whole)")
    else:
        header = ("set", "examples", "MSE", "PCA MSE", "MSE / PCA", *extras)
    rows = []
    for name in [s for s in sets if s in result]:
        r, pca = result[name], result["pca"][name]
        count = (f"{r['n']} of {r['of']}" if r.get("subset") == "evenly spread"
                 else str(r["n"]))
        if mask:
            cells = [name, count, f"{r['mse']:.5f}", f"{r['recovery_mse']:.5f}",
                     f"{r['mean_fill_mse']:.5f}", f"{pca:.5f}"]
        else:
            cells = [name, count, f"{r['mse']:.5f}", f"{pca:.5f}",
                     f"{r['mse'] / pca:.2f}" if pca > 0 else "-"]
            cells += [f"{r[k]:.4g}" for k in extras]
        rows.append(tuple(cells))
    blocks: list[Block] = []
    left_out = [s for s in sets if s not in result]
    if left_out:
        blocks.append(Line(f"left out (the `mask` file holds no masks for them): "
                           f"{', '.join(left_out)}"))
    blocks.append(Table(f"reconstruction error — {trained.model.metric_units}", header,
                        tuple(rows)))
    subset = result.get("train", {}).get("subset") == "evenly spread"
    which = " of an evenly spread subset (`train_examples` all: every one)" if subset else ""
    steps, sampler = request.infer_steps, request.sampler
    k = request.posterior_samples
    filled = (f"; missing entries: the mean of {k} posterior draws (randomize-then-optimize)"
              if k else "; missing entries: f at the MAP latent")
    blocks.append(Line(f"all sets: {steps} {sampler} steps from the prior's mode{filled}"
                       if mask else
                       f"train: MAP latents refined from the banked ones ({REFINE_STEPS} "
                       f"steps, epoch {trained.epoch}){which}; others: {steps} {sampler} "
                       "steps from the prior's mode"))
    if "regime" in result:
        blocks.append(Line(f"regime: {result['regime']['verdict']}"))
        blocks.append(Line(f"rule: {result['regime']['rule']}", dim=True))
    if "anomaly" in result:
        a = result["anomaly"]
        blocks.append(Table(
            f"anomaly detection — {a['n_anomalous']} negative among "
            f"{a['n_normal'] + a['n_anomalous']} held-out examples", ("score", "AUROC", "AUPRC"),
            (("model: -log p(Y, Z*)", f"{a['auroc']:.3f}", f"{a['auprc']:.3f}"),
             ("PCA residual (same d)", f"{a['pca_auroc']:.3f}", f"{a['pca_auprc']:.3f}"),
             ("chance", "0.500", f"{a['chance_auprc']:.3f}"))))
    return blocks


def _html(result: dict[str, Any], trained: Trained, request: Request) -> str:
    from latentgen.runtime.html import html_table

    rows = []
    for name in [s for s in _sets(request) if s in result]:
        r = result[name]
        pca = result["pca"][name]
        rows.append([name, r["n"], r["mse"], pca, r["mse"] / pca if pca > 0 else "-"])
    text = html_table(["set", "examples", "model MSE", "PCA MSE", "model / PCA"], rows)
    text += (f'<p class="note">{html.escape(trained.model.metric_units)}. train: MAP latents '
             f"refined from the banked ones after {trained.epoch} epochs; others: "
             f"{request.infer_steps} MAP steps from the prior's mode. "
             "PCA keeps as many components as the generator has latent numbers.</p>")
    if "regime" in result:
        text += (f"<p><b>Regime: {html.escape(result['regime']['verdict'])}</b> "
                 f'<span class="note">({html.escape(result["regime"]["rule"])})</span></p>')
    if "anomaly" in result:
        a = result["anomaly"]
        text += (f"<p>Telling the negative set from the held-out one by the score "
                 f"-log p(Y, Z*): AUROC {a['auroc']:.3f}, AUPRC {a['auprc']:.3f}; by the PCA "
                 f"residual: AUROC {a['pca_auroc']:.3f}, AUPRC {a['pca_auprc']:.3f} "
                 f"(chance AUPRC {a['chance_auprc']:.3f}).</p>")
    return "<h2>Reconstruction error</h2>" + text


@register_measure("reconstruction", title="Reconstruction error", present=_present,
                  html=_html, default=True, keys=("pca",))
def reconstruction(trained: Trained, request: Request) -> dict[str, Any]:
    """``train``, ``test``, ``negative`` (those asked), ``pca``, ``pca_metrics`` (when the
    modality has extra metrics), ``anomaly`` (with both held-out sets) and ``regime`` (with all
    three): ``reconstruction_errors`` of the request's sets."""
    return reconstruction_errors(trained, _sets(request), steps=request.infer_steps,
                                 sampler=request.sampler, mask=request.mask,
                                 train_examples=request.train_examples,
                                 posterior_samples=request.posterior_samples)
