"""Per-example anomaly scores of a data source (``latentgen.measures.anomaly`` defines them):
what `latentgen score` writes."""

from __future__ import annotations

import torch

from latentgen.assembly.trained import Source, Trained
from latentgen.errors import UserError
from latentgen.measures.anomaly import (
    DEFAULT_SCORE,
    anomaly_scores,
    pca_residuals,
    score_rule,
)
from latentgen.measures.baselines import baseline_pca
from latentgen.measures.defaults import DEFAULT_SAMPLER, DEFAULT_STEPS
from latentgen.measures.inference import infer_latents, masks_for, training_latents


def score(trained: Trained, source: Source = None, steps: int = DEFAULT_STEPS,
          sampler: str = DEFAULT_SAMPLER, mask: str | None = None,
          score: str = DEFAULT_SCORE) -> dict[str, torch.Tensor]:
    """Anomaly scores of every example of ``source`` (``latentgen.measures.anomaly``):
    ``score`` (the one named ``score``), ``joint``, ``reconstruction``, ``prior``, ``mse`` and
    ``pca_residual`` (the per-element error of PCA at the same d, the baseline score), each
    (n,). Latents are inferred as for
    held-out error (training data: refined from the banked ones); with ``mask``, from the
    observed entries, which alone are scored."""
    if steps < 0:
        raise UserError(f"`infer_steps` must be 0 or more, got {steps}")
    score_rule(score)  # an unknown name is refused before any work
    data, banked = trained.open_source(source, "`data`")
    masks = masks_for(trained.model, mask, len(data), "`data`") if mask else None
    model, dev = trained.model, trained.device
    if banked is not None and masks is None:
        z = training_latents(model, dev, data, banked)
    else:
        z = infer_latents(model, dev, data, steps, sampler, masks=masks)
    out = anomaly_scores(model, dev, data, z, masks=masks, score=score)
    pca = baseline_pca(model, trained.training_examples(), dev)
    out["pca_residual"] = pca_residuals(pca, data, dev, masks) * model.metric_scale
    return out
