"""`latentgen`: train generative ConvNets by alternating back-propagation, then synthesize,
reconstruct, interpolate and evaluate from the run directory alone."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import typer

from latentgen import MASK_HELP, UserError, __version__

from .measure import evaluate, report, score
from .options import (
    given_modality_options,
    given_settings,
    modality_params,
    settings_params,
    with_params,
)
from .output import command_flags, fail, literal, make_console
from .share import export
from .verb_options import (
    DeviceOpt,
    FormatOpt,
    InferStepsOpt,
    JsonOpt,
    PosteriorSamplesOpt,
    RunArg,
    SamplerOpt,
    ScaleOpt,
    ShardOpt,
)

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode="rich")



def _version(value: bool) -> None:
    if value:
        print(f"latentgen {__version__}")
        raise typer.Exit()


@app.callback()
def _root(version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                       help="Print the version and exit.")) -> None:
    pass


def train(
    ctx: typer.Context,
    out: Path | None = typer.Option(None, help="Run directory (default: "
                                       "runs/MODALITY-TIME).", rich_help_panel="Data and run"),
    config: Path | None = typer.Option(None, help="TOML file of settings (the form of a "
                                          "run's config.toml); options given here win.",
                                          rich_help_panel="Data and run"),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out exactly "
                                "where it stopped.", rich_help_panel="Data and run"),
) -> None:
    """Train a generator by alternating back-propagation and write a run directory.

    Several processes: torchrun --nproc-per-node N -m latentgen train ... (docs/distributed.md).
    """
    import latentgen

    from .progress import TrainingProgress

    settings = given_settings(ctx.params)
    options = given_modality_options(ctx.params)
    if options:
        settings["modality_options"] = options
    # observers by name (the setting) and the progress bar, an observer object
    named = settings.pop("observers", None) or []
    run = latentgen.train(config, out=out, resume=resume,
                          observers=[*named, TrainingProgress()], **settings)
    if run is None:
        return  # under torchrun the first process reports
    console = make_console()
    console.print(f"run directory: [bold]{literal(run.path)}[/]  (config.toml, metrics.csv, "
                  "metrics.jsonl, curves.png, samples/, checkpoints/)")
    found = latentgen.final_regime(run.metrics())
    if found is not None:
        verdict, errs = found
        figures = ", ".join(f"{k} {v:.5f}" for k, v in errs.items())
        console.print(f"curves show [bold]{verdict}[/] ({figures})")
        console.print(f"rule: {latentgen.REGIME_RULE}", style="dim")
    share = latentgen.evaluation_share(run.metrics())
    if share is not None:
        console.print(f"the curves' evaluations took {share[0]:.1f} s, {100 * share[1]:.0f} % "
                      "of the training epochs' time", style="dim")


@app.command()
def synthesize(
    run: Path = RunArg,
    n: int = typer.Option(64, "--n", help="Number of examples to synthesize."),
    out: Path = typer.Option(..., help="Output folder (files plus grid)."),
    seed: int = typer.Option(0, help="Random seed for Z ~ prior."),
    batch_size: int = typer.Option(256, help="Examples generated per batch (memory stays flat)."),
    scale: int = ScaleOpt,
    fmt: str | None = FormatOpt,
    shard: str | None = ShardOpt,
    device: str = DeviceOpt,
) -> None:
    """Synthesis: draw Z from the prior and write f(Z): N files plus a grid.

    Restartable: each file appears whole or not at all and is listed in manifest.jsonl;
    the same command again writes only what is missing. --shard K/N writes slice K of N
    (the same files one job writes), e.g. one per task of a job array.
    """
    import latentgen

    from .progress import BatchProgress

    console = make_console()
    latentgen.output_folder(out)  # before the work
    trained = latentgen.load_run(run, device)
    with BatchProgress(console, "synthesize", n) as progress:
        files = trained.save_synthesis(out, n, seed=seed, batch_size=batch_size, fmt=fmt,
                                       on_progress=progress.update, scale=scale, shard=shard)
    what = f"shard {shard} of {n} examples" if shard else f"{n} examples and a grid"
    console.print(f"wrote {what} to [bold]{literal(out)}[/] ({len(files)} files, listed in "
                  "its manifest)")


@app.command()
def reconstruct(
    run: Path = RunArg,
    data: str | None = typer.Option(None, help="Examples to reconstruct (default: the run's "
                                       "training data, with its banked latents)."),
    out: Path = typer.Option(..., help="Output folder."),
    n: int = typer.Option(32, "--n", help="Reconstruct the first N examples."),
    infer_steps: int = InferStepsOpt,
    sampler: str = SamplerOpt,
    mask: str | None = typer.Option(None, help="Occlude the examples and recover them: " +
                                       MASK_HELP + "."),
    posterior_samples: int = PosteriorSamplesOpt,
    fmt: str | None = FormatOpt,
    device: str = DeviceOpt,
) -> None:
    """Reconstruction: infer Z for each example, write originals beside f(Z).

    With --mask, Z is inferred from the observed entries only and the files show original,
    occluded and recovered examples side by side.
    """
    import latentgen

    latentgen.output_folder(out)  # before the work
    trained = latentgen.load_run(run, device)
    trained.model.modality.check_format(fmt)
    rec = trained.reconstruct(data, n=n, infer_steps=infer_steps, sampler=sampler, mask=mask,
                              posterior_samples=posterior_samples)
    trained.save_reconstruction(rec, out, fmt=fmt)
    res, units = rec.summary(), trained.model.metric_units
    if mask:
        make_console().print(f"recovered {res['n']} occluded examples: MSE "
                         f"{res['recovery_mse']:.5f} on missing entries, {res['mse']:.5f} on "
                         f"observed ({units}); grid: [bold]{literal(out)}/grid.*[/]")
    else:
        make_console().print(f"reconstructed {res['n']} examples, per-element MSE "
                         f"{res['mse']:.5f} ({units}); grid: [bold]{literal(out)}/grid.*[/]")


@app.command()
def interpolate(
    run: Path = RunArg,
    data: str | None = typer.Option(None, help="Examples whose latents are interpolated "
                                       "(default: the run's training data)."),
    out: Path = typer.Option(..., help="Output folder."),
    steps: int = typer.Option(8, help="n: intervals between the two latents (n + 1 outputs)."),
    pairs: int = typer.Option(4, help="Pairs of examples (consecutive examples of --data)."),
    infer_steps: int = InferStepsOpt,
    sampler: str = SamplerOpt,
    mode: str = typer.Option("linear", metavar="linear|spherical", help="linear (the seed's) "
                             "or spherical (slerp: the path keeps the norm of prior samples)."),
    fmt: str | None = FormatOpt,
    device: str = DeviceOpt,
) -> None:
    """Interpolation: f((1 - t) Z1 + t Z2) between inferred latents, originals at both ends;
    one row per pair in the grid."""
    import latentgen

    latentgen.output_folder(out)
    trained = latentgen.load_run(run, device)
    trained.model.modality.check_format(fmt)
    table = trained.interpolation_table(data, steps=steps, pairs=pairs,
                                        infer_steps=infer_steps, sampler=sampler, mode=mode)
    trained.save_interpolation(table, out, fmt=fmt)
    make_console().print(f"interpolated {len(table)} pairs in {steps} steps ({mode}); grid: "
                     f"[bold]{literal(out)}/grid.*[/]")


# the commands that measure a trained run live in .measure (registered here, in this order)
app.command()(evaluate)
app.command()(score)
app.command()(report)
app.command()(export)


def prepare(
    ctx: typer.Context,
    out: Path = typer.Option(..., help="File to write; its description goes to FILE.json.",
                             show_default=False),
    as_json: bool = JsonOpt,
) -> None:
    """Pack a dataset into one array file (for data larger than memory): `train --data FILE`
    then reads batches from it as they are needed, with the modality options it was packed
    with (FILE.json)."""
    import latentgen

    settings = given_settings(ctx.params)  # --modality and --data, as train takes them
    modality, data = settings["modality"], settings.get("data")
    from .progress import Heartbeat

    with Heartbeat(make_console(), "prepare"):
        result = latentgen.prepare(out, modality, data, **given_modality_options(ctx.params))
    if as_json:
        print(json.dumps(result))
        return
    make_console().print(f"wrote [bold]{literal(result['file'])}[/] ({result['examples']} "
                     f"{literal(modality)} "
                     f"examples, shape {'x'.join(map(str, result['shape'][1:]))}, "
                     f"{result['dtype']}, {result['bytes'] / 2**20:.1f} MiB) and "
                     f"{literal(result['sidecar'])} in {result['seconds']:.1f} s")


@app.command()
def plugins(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Installed plugins: version, what each registers, and load errors."""
    from .tables import plugins_table

    plugins_table(make_console(), as_json)


def bench(
    ctx: typer.Context,
    repeats: int = typer.Option(5, help="Interleaved timing rounds (each measurement runs at "
                                "least 0.3 s per round; the median is reported)."),
    as_json: bool = JsonOpt,
) -> None:
    """Measure ABP iterations of a modality's default generator on random data: examples/s,
    Langevin steps/s, achieved FLOP/s against a matrix-multiply peak measured in the same run,
    and the engine's time against a plain reference loop."""
    import latentgen

    from .tables import bench_table

    result = latentgen.bench(options=given_modality_options(ctx.params), repeats=repeats,
                             **given_settings(ctx.params))
    if as_json:
        print(json.dumps(result))
        return
    bench_table(make_console(), result)


#: commands whose options come from the settings schema and the installed plugins
GENERATED = ("train", "prepare", "bench")


def build_command(light: bool = False) -> Any:
    """The click command. ``light``: without the generated options (enough to list the
    commands; no torch or plugin import)."""
    app.registered_commands[:] = [c for c in app.registered_commands
                                  if c.name not in GENERATED]
    # the command list alone is plain text: rich's help renderer costs more CPU than the rest
    # of `latentgen --help` together
    app.rich_markup_mode = None if light else "rich"
    if light:
        commands = {"train": train, "prepare": prepare, "bench": bench}
    else:
        from latentgen import BENCH_DEFAULTS

        modopts = modality_params()
        commands = {
            "train": with_params(train, settings_params() + modopts),
            "prepare": with_params(prepare, settings_params(["modality", "data"],
                                                            {"modality": "image"}) + modopts),
            "bench": with_params(bench, settings_params(list(BENCH_DEFAULTS), BENCH_DEFAULTS)
                                 + modopts),
        }
    for name, func in commands.items():
        app.command(name)(func)  # type: ignore[type-var]
    app.registered_commands.insert(0, app.registered_commands.pop(-3))  # train first
    return typer.main.get_command(app)


def _light(args: list[str]) -> bool:
    """Whether the arguments only ask for the command list or the version."""
    return not args or args[0] in ("--help", "--version")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else list(argv)
    if not _light(args):
        from latentgen import tune_host_allocator

        tune_host_allocator()
    command = build_command(light=_light(args))
    try:
        command.main(args=args, prog_name="latentgen")
    except UserError as exc:
        fail(str(exc), command_flags(command))
    except OSError as exc:
        from latentgen import write_error

        told = write_error(exc, exc.filename or "a file")
        if not isinstance(told, UserError):
            raise
        fail(str(told), command_flags(command))
    except MemoryError:
        fail("out of memory; use a smaller --batch-size (or --n), or pack large data with "
             "`latentgen prepare` so it is read a batch at a time")
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        sys.exit(130)

