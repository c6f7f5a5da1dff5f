"""Anomaly scores: how unlike the training data an example is, by the model's own energy.

    joint(Y) = -log p(Y, Z*) = ||Y - f(Z*)||^2 / (2 sigma^2) - log p(Z*)   (+ a constant)

with Z* the latent inferred for Y on the fixed generator (MAP from the prior's mode, as
held-out error is measured): the energy of the joint after posterior inference, which is how
the latent-EBM paper (Pang et al. 2020) scores anomalies. Any prior works, N(0, I) and the
learned Gaussian included; an energy-based prior adds E(Z*) (its normalising constant is the
same for every example, so it does not change a ranking). Its parts are scores too
(``SCORES``): ``reconstruction`` (the first term), ``prior`` (-log p(Z*)) and ``norm``
(||Z*||^2 / 2, the N(0, I) part of it). Which one ranks best depends on the data: on MNIST
with one digit held out, the reconstruction term ranks by ink (a held-out 1 has the least, so
the joint score ranks it as the most normal digit), while how far Z* lies from the origin
tells the held-out digit apart (docs/protocols.md). ``DEFAULT_SCORE`` is what `score` writes
in its ``score`` column and what `evaluate` measures detection with.

``detection`` measures how well a score tells data of another category (anomalies, label 1)
from held-out data of the training category (label 0): the area under the ROC curve and the
average precision (area under the precision-recall curve, AUPRC). The baseline beside it is
the residual of PCA at the generator's number of latent numbers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from latentgen.data.examples import Examples
from latentgen.data.masks import Masks
from latentgen.errors import UserError
from latentgen.measures.baselines import PCA, IndirectPCA
from latentgen.measures.defaults import DEFAULT_SCORE

if TYPE_CHECKING:
    from latentgen.assembly.model import Model

#: the anomaly scores by name, as `evaluate` and `score` print them (higher: more anomalous);
#: every one is computed at the latent Z* inferred for Y on the fixed generator
SCORES = {
    "joint": "-log p(Y, Z*) = ||Y - f(Z*)||^2 / (2 sigma^2) - log p(Z*)",
    "prior": "-log p(Z*): how unlikely the latent that explains Y is under the prior",
    "reconstruction": "||Y - f(Z*)||^2 / (2 sigma^2)",
    "norm": "||Z*||^2 / 2: how far from the origin the latent that explains Y lies (the "
            "N(0, I) term of -log p(Z*), without a learned prior's correction)",
}


def score_rule(name: str = DEFAULT_SCORE) -> str:
    """What the score ``name`` is, in one line; a ``UserError`` for an unknown name."""
    if name not in SCORES:
        raise UserError(f"`score` must be one of {', '.join(SCORES)}, got '{name}'")
    return f"{name}: {SCORES[name]}, Z* inferred for Y; higher: more anomalous"


@torch.no_grad()
def anomaly_scores(model: Model, device: torch.device, data: Examples, z: Tensor,
                   batch_size: int = 256, masks: Masks | None = None,
                   score: str = DEFAULT_SCORE) -> dict[str, Tensor]:
    """Per example of ``data`` at its latent in ``z``: ``score`` (the one named, see
    ``SCORES``), ``joint`` (-log p(Y, Z), the constant left out), its ``reconstruction`` and
    ``prior`` parts, ``norm`` (||Z||^2 / 2), and ``mse`` (per element, on the modality's
    metric scale; over observed entries with ``masks``), all (n,) on the CPU."""
    score_rule(score)
    parts: dict[str, list[Tensor]] = {"reconstruction": [], "prior": [], "norm": [], "mse": []}
    model.generator.eval()
    for index in torch.arange(len(data)).split(batch_size):
        y = data.get(index, device)
        zi = z[index.to(z.device)].to(device)
        x = model.generator(zi).float()
        mask = masks.for_indices(index, device) if masks is not None else None
        observed = model.observation.measure(y)
        parts["reconstruction"].append(model.observation.energy(observed, x, mask).double().cpu())
        parts["prior"].append((-model.prior.log_prob(zi)).double().cpu())
        parts["norm"].append(0.5 * zi.flatten(1).double().pow(2).sum(1).cpu())
        sq = (y - x).pow(2)
        if mask is None:
            mse = sq.flatten(1).mean(1)
        else:
            m = mask.expand_as(sq)
            mse = (sq * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1)
        parts["mse"].append(mse.double().cpu() * model.metric_scale)
    out = {k: torch.cat(v) for k, v in parts.items()}
    out["joint"] = out["reconstruction"] + out["prior"]
    out["score"] = out[score]
    return {k: out[k] for k in ("score", "joint", "reconstruction", "prior", "norm", "mse")}


@torch.no_grad()
def pca_residuals(pca: PCA | IndirectPCA, data: Examples, device: torch.device,
                  masks: Masks | None = None, batch_size: int = 512) -> Tensor:
    """The baseline score of each example: PCA's mean squared residual on what the model sees
    of it, the observed entries (``masks``) or its observations y = A x (``IndirectPCA``,
    PCA fitted on y), (n,) on the CPU in model units."""
    out = []
    for index in torch.arange(len(data)).split(batch_size):
        x = data.get(index, device).float()
        if isinstance(pca, IndirectPCA):
            y = pca.operator(x)
            out.append((y - pca.pca.reconstruct(y)).pow(2).flatten(1).mean(1).double().cpu())
            continue
        sq = (x - pca.reconstruct(x)).pow(2)
        if masks is None:
            out.append(sq.flatten(1).mean(1).double().cpu())
            continue
        m = masks.for_indices(index, device).expand_as(sq)
        out.append(((sq * m).flatten(1).sum(1) / m.flatten(1).sum(1).clamp_min(1))
                   .double().cpu())
    return torch.cat(out)


def _check(scores: Tensor | np.ndarray, labels: Tensor | np.ndarray
           ) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).astype(bool).ravel()
    if len(s) != len(y):
        raise ValueError(f"{len(s)} scores for {len(y)} labels")
    if y.all() or not y.any():
        raise ValueError("detection needs examples of both labels")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite")
    return s, y


def auroc(scores: Tensor | np.ndarray, labels: Tensor | np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random anomaly (label 1) scores above a
    random normal example, ties counting one half (the Mann-Whitney statistic)."""
    s, y = _check(scores, labels)
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    # the average rank (1-based) of each distinct value, given to all its ties
    mid_rank = np.cumsum(counts) - (counts - 1) / 2.0
    ranks = mid_rank[inverse]
    n_pos, n_neg = int(y.sum()), int((~y).sum())
    return float((ranks[y].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def average_precision(scores: Tensor | np.ndarray, labels: Tensor | np.ndarray) -> float:
    """Area under the precision-recall curve as average precision: sum over thresholds (each
    distinct score, highest first) of the recall gained times the precision there."""
    s, y = _check(scores, labels)
    order = np.argsort(-s, kind="stable")
    s, y = s[order], y[order]
    tp = np.cumsum(y)
    fp = np.cumsum(~y)
    last = np.r_[np.flatnonzero(np.diff(s) != 0), len(s) - 1]  # end of each run of ties
    tp, fp = tp[last], fp[last]
    precision = tp / (tp + fp)
    recall = tp / tp[-1]
    return float(np.sum(np.diff(np.r_[0.0, recall]) * precision))


def detection(normal: Tensor | np.ndarray, anomalous: Tensor | np.ndarray) -> dict[str, float]:
    """``{"auroc", "auprc"}`` of a score on ``normal`` (label 0) and ``anomalous`` (1)."""
    s = np.r_[np.asarray(normal, dtype=np.float64), np.asarray(anomalous, dtype=np.float64)]
    y = np.r_[np.zeros(len(normal), bool), np.ones(len(anomalous), bool)]
    return {"auroc": auroc(s, y), "auprc": average_precision(s, y)}


def detection_summary(model_normal: Tensor, model_anomalous: Tensor, pca_normal: Tensor,
                      pca_anomalous: Tensor, score: str = DEFAULT_SCORE) -> dict[str, Any]:
    """What `evaluate` reports: the model's score and PCA's residual, side by side, with the
    AUPRC of a score that knows nothing (the share of anomalies)."""
    try:
        model = detection(model_normal, model_anomalous)
        pca = detection(pca_normal, pca_anomalous)
    except ValueError as exc:  # e.g. inference that diverged on some example
        raise UserError(f"anomaly detection of `negative_data` against `test_data`: {exc}; "
                        "check both sets (and `infer_steps`)") from None
    n, m = len(model_normal), len(model_anomalous)
    return {"auroc": model["auroc"], "auprc": model["auprc"], "pca_auroc": pca["auroc"],
            "pca_auprc": pca["auprc"], "chance_auprc": m / (n + m), "n_normal": n,
            "n_anomalous": m, "score": score_rule(score)}
