"""The commands that measure a trained run: `evaluate`, `score` and `report` (registered on the
application in ``app``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from latentgen import DEFAULTS, MASK_HELP, UserError

from .output import literal, make_console
from .verb_options import (
    DeviceOpt,
    InferStepsOpt,
    JsonOpt,
    MeasureOpt,
    MeasureOptionOpt,
    NegativeOpt,
    NLLOpt,
    NLLSamplesOpt,
    PosteriorSamplesOpt,
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
    posterior_samples: int = PosteriorSamplesOpt,
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
        str(DEFAULTS.train_examples), metavar="N|all", help="Training examples whose error is "
        "measured (from their banked latents): an evenly spread subset of N, the same every "
        "time, or all; inference costs as much per example as training."),
    measure: list[str] | None = MeasureOpt,
    measure_option: list[str] | None = MeasureOptionOpt,
    as_json: bool = JsonOpt,
    device: str = DeviceOpt,
) -> None:
    """Reconstruction error on training data (from its banked latents), held-out and negative data,
    beside PCA with as many components as the generator has latent numbers; with --synthesis,
    how far prior samples are from real data; with --measure, any registered measure."""
    import latentgen

    from .tables import finite_or_null, print_blocks

    if train_examples.strip().lower() == "all":
        train_n: int | None = None
    else:
        try:
            train_n = int(train_examples)
        except ValueError:
            raise UserError(f"`train_examples` must be a number or all, got "
                            f"{train_examples!r}") from None
    options: dict[str, str] = {}
    for item in measure_option or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"`measure_option` takes NAME=VALUE, got {item!r}")
        options[key.strip()] = value
    names = ["latents"]
    if reconstruction or not (synthesis or nll or measure):
        names.insert(0, "reconstruction")
    names += (["synthesis"] if synthesis else []) + (["nll"] if nll else []) + list(measure or [])
    asked: dict[str, Any] = {
        "test_data": test_data, "negative_data": negative_data, "infer_steps": infer_steps,
        "sampler": sampler, "mask": mask, "posterior_samples": posterior_samples,
        "reference": reference, "n": n, "seed": seed,
        "nll_samples": nll_samples, "extractor": extractor,
        "extractor_weights": extractor_weights, "scale": scale, "train_examples": train_n,
        "options": options}
    trained = latentgen.load_run(run, device)
    console = make_console()
    # a log (output not a terminal) is told how far the evaluation is, a line per measure
    # (not with --json, whose output is the JSON alone; stderr is for the one error line)
    said = None if console.is_terminal or as_json else (
        lambda name, seconds: console.print(f"evaluate: {name} took {seconds:.1f} s",
                                            highlight=False))
    with latentgen.fid_cache(fid_cache):
        result = trained.evaluate(names, on_measure=said, **asked)
    if as_json:
        print(json.dumps(finite_or_null(result), allow_nan=False))
        return
    print_blocks(console, latentgen.present(result, trained, latentgen.Request(**asked)))


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

    if out.is_dir():
        raise UserError(f"`out` {out} is a folder; give the path of a .csv file")
    name = score_name or DEFAULTS.score
    latentgen.score_rule(name)  # an unknown name is refused before the run is opened
    trained = latentgen.load_run(run, device)
    examples = trained.examples(data) if data is not None else None
    scores = trained.score(examples, infer_steps=infer_steps, sampler=sampler, mask=mask,
                           score=name)
    trained.save_scores(scores, out, examples.names if examples is not None else None)
    s = scores["score"]
    rule = literal(latentgen.score_rule(name))
    make_console().print(f"scored {len(s)} examples by {rule}: median {s.median():.1f}, from "
                         f"{s.min():.1f} to {s.max():.1f}; wrote [bold]{literal(out)}[/]")


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

    from .tables import print_blocks

    trained = latentgen.load_run(run, device)
    written = latentgen.report(trained, test_data=test_data, negative_data=negative_data,
                               infer_steps=infer_steps, out=out)
    console = make_console()
    print_blocks(console, latentgen.present(written.evaluation, trained, written.request))
    console.print(f"report: [bold]{literal(written.path)}[/] (self-contained; open it in a "
                  "browser)")
