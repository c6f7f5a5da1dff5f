"""Tables the commands print: the evaluation, the plugins, the bench figures."""

from __future__ import annotations

import json
from typing import Any

from rich.console import Console
from rich.table import Table


def evaluation_table(console: Console, trained: Any, result: dict[str, Any], sets: list[str],
                     steps: int, sampler: str, mask: str | None) -> None:
    from latentgen.evaluation.defaults import REFINE_STEPS

    table = Table(title=f"reconstruction error — {trained.model.metric_units}")
    extras = sorted({k for name in sets if name in result for k in result[name]}
                    - {"n", "of", "subset", "mse", "recovery_mse", "mean_fill_mse"})
    if mask:  # observed-entry errors do not compare with PCA's error over whole examples
        columns = ["set", "examples", "MSE observed", "MSE missing", "mean fill missing",
                   "PCA MSE (whole)"]
    else:
        columns = ["set", "examples", "MSE", "PCA MSE", "MSE / PCA", *extras]
    for col in columns:
        table.add_column(col, justify="left" if col == "set" else "right")
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
        table.add_row(*cells)
    left_out = [s for s in sets if s not in result]
    if left_out:
        console.print(f"left out (the --mask file holds no masks for them): "
                      f"{', '.join(left_out)}")
    console.print(table)
    subset = result.get("train", {}).get("subset") == "evenly spread"
    which = " of an evenly spread subset (--train-examples all: every one)" if subset else ""
    console.print(f"all sets: {steps} {sampler} steps from the prior's mode" if mask else
                  f"train: MAP latents refined from the banked ones ({REFINE_STEPS} steps, "
                  f"epoch {trained.epoch}){which}; others: {steps} {sampler} steps from the "
                  "prior's mode")
    if "regime" in result:
        console.print(f"regime: [bold]{result['regime']['verdict']}[/]")
        console.print(f"rule: {result['regime']['rule']}", style="dim")


def synthesis_table(console: Console, result: dict[str, Any]) -> None:
    """The synthesis measures: the model's distance beside PCA's and the floor, per level."""
    from rich.markup import escape

    table = Table(title=f"synthesis — sliced Wasserstein distance (x 1e3) of {result['n']} "
                        f"examples from {escape(str(result['reference']))}")
    levels = len(result["swd_levels"])
    for col in ["samples", "SWD", *[f"level {i + 1}" for i in range(levels)]]:
        table.add_column(col, justify="left" if col == "samples" else "right")
    for name, key in (("model (prior samples)", "swd"), ("PCA (probabilistic, same d)",
                                                          "swd_pca"),
                      ("floor (training examples)", "swd_floor")):
        table.add_row(name, f"{result[key]:.2f}", *[f"{v:.2f}" for v in result[key + "_levels"]])
    console.print(table)
    if "fid" in result:
        features = Table(title=f"in the features of {escape(str(result['extractor']))}")
        for col in ("samples", "FID", "KID", "± se"):
            features.add_column(col, justify="left" if col == "samples" else "right")
        for label, suffix in (("model", ""), ("PCA", "_pca"), ("floor", "_floor")):
            features.add_row(label, f"{result['fid' + suffix]:.2f}",
                             f"{result['kid' + suffix]:.4f}", f"{result['kid_se' + suffix]:.4f}")
        console.print(features)
    rel = result["rel"]
    console.print(f"rel = (model - floor) / (PCA - floor) = {rel:.3f}" if rel == rel else
                  "rel: undefined (PCA's samples are no farther than the floor)")
    console.print("rel 0: as close as real data; 1: no closer than PCA; levels run from the "
                  "finest to the coarsest", style="dim")


def latents_line(console: Console, gap: dict[str, Any]) -> None:
    """The banked latents against the prior: why prior samples may be poor."""
    verdict = ("follow the prior" if gap["matches"] else
               "differ from the prior (prior samples fall where the generator saw no latent)")
    console.print(f"banked latents {verdict}: mean {gap['mean_distance']:.2f} prior standard "
                  f"deviations off, covariance eigenvalues {gap['cov_eig_min']:.2f} to "
                  f"{gap['cov_eig_max']:.2f} of the prior's, KL {gap['kl']:.2f} nats, "
                  f"MMD^2 {gap['mmd']:.4f} (noise level {gap['mmd_threshold']:.4f})")


def anomaly_table(console: Console, result: dict[str, Any]) -> None:
    """Telling --negative-data (anomalies) from --test-data: the model's score beside PCA's."""
    table = Table(title=f"anomaly detection — {result['n_anomalous']} negative among "
                        f"{result['n_normal'] + result['n_anomalous']} held-out examples")
    for col in ("score", "AUROC", "AUPRC"):
        table.add_column(col, justify="left" if col == "score" else "right")
    table.add_row("model: -log p(Y, Z*)", f"{result['auroc']:.3f}", f"{result['auprc']:.3f}")
    table.add_row("PCA residual (same d)", f"{result['pca_auroc']:.3f}",
                  f"{result['pca_auprc']:.3f}")
    table.add_row("chance", "0.500", f"{result['chance_auprc']:.3f}")
    console.print(table)


def likelihood_table(console: Console, result: dict[str, Any]) -> None:
    """-log p(Y) per set, the generator's estimate beside probabilistic PCA's exact value."""
    table = Table(title="negative log-likelihood (model space), lower is better")
    for col in ("set", "examples", "model nats", "± se", "model bits/dim", "PCA nats",
                "PCA bits/dim"):
        table.add_column(col, justify="left" if col == "set" else "right")
    for name, r in result.items():
        table.add_row(name, str(r["n"]), f"{r['nll']:.1f}", f"{r['nll_se']:.1f}",
                      f"{r['bits_per_dim']:.3f}", f"{r['pca_nll']:.1f}",
                      f"{r['pca_bits_per_dim']:.3f}")
    console.print(table)
    some = next(iter(result.values()))
    console.print(f"importance sampling: {some['samples']} draws per example from the Laplace "
                  "approximation at the posterior mode; PCA: exact, same number of latent "
                  "numbers", style="dim")


def plugins_table(console: Console, as_json: bool) -> None:
    from dataclasses import asdict

    from rich.markup import escape

    from .options import registry

    # only what the registry recorded: a plugin's own attributes could raise or change
    reg = registry()
    if as_json:
        print(json.dumps([asdict(p) for p in reg.plugins.values()]))
        return
    table = Table(title="latentgen plugins")
    for col in ("plugin", "version", "modalities", "priors", "samplers", "observers",
                "extractors", "status"):
        table.add_column(col)
    for p in reg.plugins.values():
        status = "[red]failed[/]" if p.error else "[green]ok[/]"
        cells = [p.name, p.version, *(", ".join(getattr(p, kind)) for kind in
                                      ("modalities", "priors", "samplers", "observers",
                                       "extractors"))]
        table.add_row(*map(escape, cells), status)  # plugins' texts are not markup
    console.print(table)
    described = sorted(item for p in reg.plugins.values() for item in p.descriptions.items())
    for name, text in described:
        console.print(f"[bold]{escape(name)}[/]: {escape(text or '(no description)')}",
                      highlight=False, soft_wrap=True)
    for p in reg.plugins.values():
        if p.error:  # in full, below the table, where nothing truncates it
            console.print(f"[red]{escape(p.name)}[/]: {escape(p.error)} (skipped)",
                          highlight=False, soft_wrap=True)


def bench_table(console: Console, result: dict[str, Any]) -> None:
    precision = result["precision"]
    if result.get("precision_asked") == "auto":
        precision += f" ({result['precision_reason']})"
    cpu = result.get("cpu", {})
    device = result["device_name"]
    if device == "cpu" and cpu:
        matrix = [name for name, key in (("AVX-512", "avx512"), ("AVX512-BF16", "avx512_bf16"),
                                         ("AMX", "amx_tile")) if cpu.get(key)]
        device = f"{cpu['model']} ({', '.join(matrix) or cpu.get('capability', 'cpu')})"
    table = Table(title=f"latentgen bench — {result['modality']} "
                        f"{'x'.join(map(str, result['data_shape']))}, batch "
                        f"{result['batch_size']}, L = {result['langevin_steps']}, "
                        f"{device}, {precision}, "
                        f"{result['threads']} threads, torch {result['torch']}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [("examples/s (whole ABP iterations)", f"{result['examples_per_s']:.1f}"),
            ("Langevin steps/s", f"{result['langevin_steps_per_s']:.2f}"),
            ("Langevin phase", f"{result['langevin_flops_per_s'] / 1e9:.1f} GFLOP/s"),
            ("learning step", f"{result['learning_flops_per_s'] / 1e9:.1f} GFLOP/s"),
            (f"matmul peak ({result['precision']})",
             f"{result['peak_flops'] / 1e9:.1f} GFLOP/s"),
            ("Langevin fraction of peak", f"{result['langevin_fraction_of_peak']:.3f}"),
            ("MFU (whole iteration)", f"{result['mfu']:.3f}"),
            ("engine / plain loop time", f"{result['reference_ratio']:.3f}")]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)
    forms = result.get("forms") or []
    if forms:
        chosen = Table(title="each convolution's form, measured on this machine "
                             "(cached: chosen by an earlier run here)")
        for column in ("layer", "input", "form", "candidates (ms, forward + backward)"):
            chosen.add_column(column)
        for c in forms:
            times = ", ".join(f"{k} {v:.2f}" for k, v in
                              sorted(c["times_ms"].items(), key=lambda kv: kv[1]))
            chosen.add_row(c["layer"], "x".join(map(str, c["input"])), c["form"],
                           times or "cached")
        console.print(chosen)


def finite_or_null(value: Any) -> Any:
    """JSON has no NaN: a measure that is not a number (e.g. no missing entries) becomes null."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: finite_or_null(v) for k, v in value.items()}
    return value
