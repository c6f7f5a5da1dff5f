"""Charts and summaries of a run's metrics table (``metrics.csv``, as written or read back):
the train / test / negative error curves, the synthesis distance over epochs, what the
evaluations cost and the regime the last errors show."""

from __future__ import annotations

from typing import Any

from latentgen.measures.baselines import regime
from latentgen.outputs.plot import line_chart

CURVE_COLUMNS = {"train": "eval_train_mse", "test": "test_mse", "negative": "negative_mse"}
#: PCA's test error at the generator's d, beside the curves (the verdict uses it)
PCA_TEST_COLUMN = "pca_test_mse"


def curves_png(rows: list[dict[str, Any]], pca: dict[str, float] | None = None,
               units: str = "per-element MSE") -> bytes:
    """The error curves of a metrics table (as written or as read back from CSV)."""
    series = curve_series(rows)
    hlines = {f"PCA {k}": v for k, v in (pca or {}).items() if k in series}
    return line_chart(series, title="reconstruction error over training", xlabel="epoch",
                      ylabel=units, hlines=hlines)


def curve_series(rows: list[dict[str, Any]]) -> dict[str, list[tuple[float, float]]]:
    """(epoch, error) points of each curve of a metrics table: train, test and negative where
    evaluated, and the running training error of every epoch."""
    series: dict[str, list[tuple[float, float]]] = {}
    for name, column in CURVE_COLUMNS.items():
        pts = [(float(r["epoch"]), float(r[column])) for r in rows if r.get(column) not in
               (None, "")]
        if pts:
            series[name] = pts
    # every epoch's running training error (at the Langevin samples of the epoch, while the
    # generator moved), beside the evaluated train error at MAP latents when there is one
    running = [(float(r["epoch"]), float(r["train_mse"])) for r in rows
               if r.get("train_mse") not in (None, "")]
    if running:
        series["train (running)" if "train" in series else "train"] = running
    return series


def synthesis_png(rows: list[dict[str, Any]]) -> bytes:
    """The model's SWD over epochs, with the last PCA and floor values as dashed lines."""
    done = [r for r in rows if r.get("swd") not in (None, "")]
    series = {"model": [(float(r["epoch"]), float(r["swd"])) for r in done]}
    last = done[-1] if done else {}
    hlines = {name: float(last[key]) for name, key in (("PCA", "swd_pca"),
                                                       ("floor", "swd_floor")) if key in last}
    return line_chart(series, title="synthesis: sliced Wasserstein distance of prior samples",
                      xlabel="epoch", ylabel="SWD (x 1e3)", hlines=hlines)


def evaluation_share(rows: list[dict[str, Any]]) -> tuple[float, float] | None:
    """(seconds the evaluations took, that over the epochs' training seconds) of a metrics
    table, or None when nothing was evaluated."""
    spent = [float(r["eval_seconds"]) for r in rows if r.get("eval_seconds") not in (None, "")]
    trained = sum(float(r["seconds"]) for r in rows if r.get("seconds") not in (None, ""))
    if not spent or trained <= 0:
        return None
    return sum(spent), sum(spent) / trained


def final_regime(rows: list[dict[str, Any]]) -> tuple[str, dict[str, float]] | None:
    """The regime the last row holding all three errors shows, with those errors."""
    for r in reversed(rows):
        vals = {k: r.get(c) for k, c in CURVE_COLUMNS.items()}
        if all(v not in (None, "") for v in vals.values()):
            errs = {k: float(v) for k, v in vals.items() if v is not None}
            pca = r.get(PCA_TEST_COLUMN)
            return regime(errs["train"], errs["test"], errs["negative"],
                          pca_test=float(pca) if pca not in (None, "") else None), errs
    return None
