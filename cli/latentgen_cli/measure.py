"""The commands that measure a trained run: `evaluate`, `score` and `report` (registered on the
application in ``app``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from latentgen.data.mask_specs import MASK_HELP
from latentgen.errors import UserError
from latentgen.evaluation.defaults import TRAIN_SAMPLE

from .output import literal, make_console
from .verb_options import (
    DeviceOpt,
    InferStepsOpt,
    JsonOpt,
    NegativeOpt,
    NLLOpt,
    NLLSamplesOpt,
    ReconstructionOpt,
    ReferenceOpt,
    RunArg,
    SamplerOpt,
    ScaleOpt,
    SynthesisNOpt,
    SynthesisOpt,
    SynthesisSeedOpt,
    TestOpt,
)

if TYPE_CHECKING:
    from rich.console import Console

ExtractorOpt = typer.Option(None, "--extractor", metavar="NAME", help="With --synthesis, also "
                            "FID and KID in the features of this extractor: fid_inception (the "
                            "original FID network, as pytorch-fid has it: comparable with "
                            "published FID; needs latentgen[fid]) or inception (torchvision's "
                            "Inception-v3: NOT comparable with published FID); plugins may "
                            "register others.")
ExtractorWeightsOpt = typer.Option(None, "--extractor-weights", metavar="PATH",
                                   help="Weights file for --extractor (default: the torch hub "
                                   "cache's checkpoints/pt_inception-2015-12-05-6726825d.pth "
                                   "for fid_inception, inception_v3_google-0cc3c7bd.pth for "
                                   "inception; never downloaded for fid_inception).")
FidCacheOpt = typer.Option(None, "--fid-cache", metavar="DIR|off", help="Folder of the cached "
                           "feature statistics of real data for --extractor (default: "
                           "$LATENTGEN_FID_CACHE, else ~/.cache/latentgen/fid; off: no cache).")


def evaluate(
    run: Path = RunArg,
    test_data: str | None = TestOpt,
    negative_data: str | None = NegativeOpt,
    infer_steps: int = InferStepsOpt,
    sampler: str = SamplerOpt,
    mask: str | None = typer.Option(None, help="Occlude every set and report the error on the "
                                       "missing entries: " + MASK_HELP + "."),
    synthesis: bool = SynthesisOpt,
    reference: str | None = ReferenceOpt,
    n: int = SynthesisNOpt,
    seed: int = SynthesisSeedOpt,
    extractor: str | None = ExtractorOpt,
    extractor_weights: str | None = ExtractorWeightsOpt,
    fid_cache: str | None = FidCacheOpt,
    scale: int = ScaleOpt,
    nll: bool = NLLOpt,
    nll_samples: int = NLLSamplesOpt,
    reconstruction: bool = ReconstructionOpt,
    train_examples: str = typer.Option(
        str(TRAIN_SAMPLE), metavar="N|all", help="Training examples whose error is measured "
        "(from their banked latents): an evenly spread subset of N, the same every time, or "
        "all; inference costs as much per example as training."),
    as_json: bool = JsonOpt,
    device: str = DeviceOpt,
) -> None:
    """Reconstruction error on training data (from its banked latents), held-out and negative data,
    beside PCA with as many components as the generator has latent numbers; with --synthesis,
    how far prior samples are from real data."""
    import latentgen
    from latentgen.evaluation.features import fid_cache as caching_in

    from .tables import (
        anomaly_table,
        evaluation_table,
        finite_or_null,
        latents_line,
        likelihood_table,
        synthesis_table,
    )

    if train_examples.strip().lower() == "all":
        train_n: int | None = None
    else:
        try:
            train_n = int(train_examples)
        except ValueError:
            raise UserError(f"--train-examples must be a number or all, got {train_examples!r}"
                            ) from None
    trained = latentgen.load_run(run, device)
    with caching_in(fid_cache):
        result = trained.evaluate(test=test_data, negative=negative_data,
                                  infer_steps=infer_steps, sampler=sampler, mask=mask,
                                  synthesis=synthesis, reference=reference, n=n, seed=seed,
                                  reconstruction=reconstruction or not (synthesis or nll),
                                  nll=nll, nll_samples=nll_samples, extractor=extractor,
                                  extractor_weights=extractor_weights, scale=scale,
                                  train_examples=train_n)
    if as_json:
        print(json.dumps(finite_or_null(result), allow_nan=False))
        return
    sets = ["train"] + [name for name, given in (("test", test_data),
                                                 ("negative", negative_data)) if given]
    console = make_console()
    if "pca" in result:
        evaluation_table(console, trained, result, sets, infer_steps, sampler, mask)
    if "anomaly" in result:
        anomaly_table(console, result["anomaly"])
    if "synthesis" in result:
        synthesis_table(console, result["synthesis"])
        fid_line(console, result["synthesis"])
    if "nll" in result:
        likelihood_table(console, result["nll"])
    latents_line(console, result["latents"])


def fid_line(console: Console, found: dict[str, Any]) -> None:
    """Whether the FID printed above can stand beside papers' numbers."""
    if "fid" not in found:
        return
    if found.get("fid_comparable"):
        console.print(f"FID in {found['extractor']}'s features: comparable with published FID "
                      f"at equal N ({found['n']} here; papers use 50,000)")
    else:
        console.print(f"FID in {found['extractor']}'s features: not comparable with published "
                      "FID (only fid_inception on pictures is)", style="dim")


def score(
    run: Path = RunArg,
    data: str | None = typer.Option(None, help="Examples to score (default: the run's "
                                       "training data, with its banked latents)."),
    out: Path = typer.Option(..., help="CSV file to write: one row per example."),
    infer_steps: int = InferStepsOpt,
    sampler: str = SamplerOpt,
    mask: str | None = typer.Option(None, help="Score the observed entries only: " +
                                       MASK_HELP + "."),
    score_name: str | None = typer.Option(None, "--score", metavar="NAME", help="What the "
                                          "score column holds: joint (-log p(Y, Z*), the "
                                          "default), prior (-log p(Z*)), reconstruction "
                                          "(||Y - f(Z*)||^2 / (2 sigma^2)) or norm "
                                          "(||Z*||^2 / 2); the CSV has all four."),
    device: str = DeviceOpt,
) -> None:
    """Anomaly scores: infer Z* for each example, then write the score (higher: more unlike
    the training data), -log p(Y, Z*) and its reconstruction and prior parts, the per-element
    MSE and PCA's residual (the baseline) to a CSV file."""
    import latentgen
    from latentgen.evaluation.anomaly import DEFAULT_SCORE, score_rule

    if out.is_dir():
        raise UserError(f"--out {out} is a folder; give the path of a .csv file")
    name = score_name or DEFAULT_SCORE
    score_rule(name)  # an unknown name is refused before the run is opened
    trained = latentgen.load_run(run, device)
    examples = trained.examples(data) if data is not None else None
    scores = trained.score(examples, infer_steps=infer_steps, sampler=sampler, mask=mask,
                           score=name)
    trained.save_scores(scores, out, examples.names if examples is not None else None)
    s = scores["score"]
    make_console().print(f"scored {len(s)} examples by {literal(score_rule(name))}: median "
                         f"{s.median():.1f}, from {s.min():.1f} to {s.max():.1f}; wrote "
                         f"[bold]{literal(out)}[/]")


def report(
    run: Path = RunArg,
    test_data: str | None = typer.Option(None, "--test-data", help="Held-out data "
                                            "(default: the run's --test-data, if any)."),
    negative_data: str | None = typer.Option(None, "--negative-data", help="Data of another "
                                                "category (default: the run's "
                                                "--negative-data, if any)."),
    infer_steps: int = InferStepsOpt,
    out: Path | None = typer.Option(None, help="HTML file to write (default: RUN/report.html)."),
    device: str = DeviceOpt,
) -> None:
    """One self-contained HTML page: config, error curves, samples over epochs, synthesis,
    reconstructions, interpolations and the error table with the PCA baseline (whose tables
    are also printed here, as `evaluate --synthesis` prints them)."""
    import latentgen
    from latentgen.evaluation.defaults import DEFAULT_SAMPLER
    from latentgen.evaluation.report import build_report, report_evaluation

    from .tables import anomaly_table, evaluation_table, latents_line, synthesis_table

    trained = latentgen.load_run(run, device)
    result = report_evaluation(trained, test_data, negative_data, infer_steps)
    path = build_report(trained, test=test_data, negative=negative_data, steps=infer_steps,
                        out=out, evaluation=result)
    console = make_console()
    sets: list[str] = [name for name in ("train", "test", "negative") if name in result]
    evaluation_table(console, trained, result, sets, infer_steps, DEFAULT_SAMPLER, None)
    if "anomaly" in result:
        anomaly_table(console, result["anomaly"])
    synthesis_table(console, result["synthesis"])
    latents_line(console, result["latents"])
    console.print(f"report: [bold]{literal(path)}[/] (self-contained; open it in a browser)")
