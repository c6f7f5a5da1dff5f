"""`latentgen`: train generative ConvNets by alternating back-propagation, then synthesize,
reconstruct, interpolate and evaluate from the run directory alone."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.table import Table

from latentgen.errors import UserError
from latentgen.masks import MASK_HELP

from . import display
from .modality_options import PREFIX, given_modality_options, with_modality_options

app = typer.Typer(help=__doc__, no_args_is_help=True, add_completion=False,
                  pretty_exceptions_enable=False, rich_markup_mode="rich")
console = Console()
err_console = Console(stderr=True)

RunArg = typer.Argument(..., help="Run directory written by `latentgen train` (its --out).",
                        show_default=False)
DeviceOpt = typer.Option("auto", help="auto (CUDA when present), cpu or cuda.")
FormatOpt = typer.Option(None, "--format", help="File format, for modalities that write "
                         "several (video: mp4 or gif; default: the modality's first).",
                         show_default=False)
SAMPLER_HELP = ("Inference for data without banked latents: map (gradient descent on the log "
                "posterior with a self-tuning step), gd (the seed's fixed-step update) or "
                "langevin (a posterior sample).")
_TRAIN_PANEL = "Training"
_EVAL_PANEL = "Error curves"
_SCALE_PANEL = "Scale"


def train(
    ctx: typer.Context,
    modality: Optional[str] = typer.Option(None, help="Data modality (default: image); "
                                           "`latentgen plugins` lists them."),
    data: Optional[str] = typer.Option(None, help="Training data (folder or file); omit for the "
                                       "modality's embedded default."),
    out: Optional[Path] = typer.Option(None, help="Run directory (default: runs/MODALITY-TIME)."),
    epochs: Optional[int] = typer.Option(None, help="Epochs to train (on --resume: the new "
                                         "total) (default: 30)."),
    latent_dim: Optional[int] = typer.Option(None, help="d, latent factors per example "
                                             "(default: 16)."),
    batch_size: Optional[int] = typer.Option(None, help="Examples per iteration (default: 32)."),
    langevin_steps: Optional[int] = typer.Option(None, help="L, Langevin steps per iteration "
                                                 "(default: 30).", rich_help_panel=_TRAIN_PANEL),
    step_size: Optional[float] = typer.Option(None, help="delta, the Langevin step size "
                                              "(default: 0.3).", rich_help_panel=_TRAIN_PANEL),
    sigma: Optional[float] = typer.Option(None, help="sigma, observation noise std "
                                          "(default: 0.5).", rich_help_panel=_TRAIN_PANEL),
    lr: Optional[float] = typer.Option(None, help="Adam learning rate (default: 0.001).",
                                       rich_help_panel=_TRAIN_PANEL),
    beta1: Optional[float] = typer.Option(None, help="Adam beta1 (default: 0.5).",
                                          rich_help_panel=_TRAIN_PANEL),
    sampler: Optional[str] = typer.Option(None, help="Inference during training: langevin, "
                                          "gd (no noise) or map (no noise, self-tuning step) "
                                          "(default: langevin).",
                                          rich_help_panel=_TRAIN_PANEL),
    reinit_chains: Optional[bool] = typer.Option(None, "--reinit-chains/--persistent-chains",
                                                 help="Restart chains from the prior every "
                                                 "iteration (short-run) (default: persistent).",
                                                 rich_help_panel=_TRAIN_PANEL, show_default=False),
    seed: Optional[int] = typer.Option(None, help="Random seed (default: 0)."),
    device: Optional[str] = typer.Option(None, help="auto (CUDA when present), cpu or cuda "
                                         "(default: auto)."),
    precision: Optional[str] = typer.Option(None, help="fp32, or bf16: the generator's passes "
                                            "run in bfloat16 autocast (faster on GPUs; changes "
                                            "numerics) (default: fp32).",
                                            rich_help_panel=_TRAIN_PANEL),
    compile: Optional[bool] = typer.Option(None, "--compile/--no-compile",
                                           help="torch.compile the generator (CUDA graphs on "
                                           "CUDA); may be changed on --resume (default: off).",
                                           rich_help_panel=_TRAIN_PANEL, show_default=False),
    sample_every: Optional[int] = typer.Option(None, help="Write a sample grid every N epochs "
                                               "(default: 5)."),
    checkpoint_every: Optional[int] = typer.Option(None, help="Keep a checkpoint every N epochs, "
                                                   "0 for last.pt only (default: 10)."),
    test_data: Optional[str] = typer.Option(None, help="Held-out data of the training category: "
                                            "its error is tracked every --eval-every epochs.",
                                            rich_help_panel=_EVAL_PANEL),
    negative_data: Optional[str] = typer.Option(None, help="Data of another category, tracked "
                                                "beside --test-data.",
                                                rich_help_panel=_EVAL_PANEL),
    eval_every: Optional[int] = typer.Option(None, help="Epochs between evaluations of train / "
                                             "test / negative error (default: 5).",
                                             rich_help_panel=_EVAL_PANEL),
    eval_steps: Optional[int] = typer.Option(None, help="MAP inference steps (sampler map) "
                                             "from Z = 0 for test / negative data (default: "
                                             "300).",
                                             rich_help_panel=_EVAL_PANEL),
    mask: Optional[str] = typer.Option(None, help="Learn from incomplete data: " + MASK_HELP +
                                       ".", rich_help_panel=_TRAIN_PANEL),
    fp64_gradients: Optional[bool] = typer.Option(None, "--fp64-gradients/--fp32-gradients",
                                                  help="Compute and sum the learning step's "
                                                  "gradients in float64: the model then does "
                                                  "not depend on the number of processes or "
                                                  "threads (slower; docs/distributed.md) "
                                                  "(default: fp32).",
                                                  rich_help_panel=_SCALE_PANEL,
                                                  show_default=False),
    max_steps: Optional[int] = typer.Option(None, help="Stop after N ABP iterations in all "
                                            "(a checkpoint is written there, even mid-epoch; "
                                            "--resume continues from it).",
                                            rich_help_panel=_SCALE_PANEL),
    latents_on: Optional[str] = typer.Option(None, help="Where the latent bank lives: device "
                                             "(the training device), host (CPU memory) or "
                                             "disk (a .npy file beside the checkpoint, "
                                             "read a batch of rows at a time) (default: "
                                             "device).",
                                             rich_help_panel=_SCALE_PANEL),
    workers: Optional[int] = typer.Option(None, help="DataLoader worker processes reading "
                                          "batches ahead (default: 1 for prepared data, "
                                          "else 0).", rich_help_panel=_SCALE_PANEL),
    config: Optional[Path] = typer.Option(None, help="TOML file of settings; options given "
                                          "on the command line win."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out exactly "
                                "where it stopped."),
) -> None:
    """Train a generator by alternating back-propagation and write a run directory.

    Several processes: torchrun --nproc-per-node N -m latentgen train ... (docs/distributed.md).
    """
    from latentgen.config import TrainConfig, read_toml
    from latentgen.training import (RESUMABLE, resume_config, train as run_training,
                                    with_modality_defaults)

    core_params = {k: v for k, v in ctx.params.items()
                   if k not in ("config", "resume", "out") and not k.startswith(PREFIX)}
    given = {k: v for k, v in core_params.items() if v is not None
             and getattr(ctx.get_parameter_source(k), "name", "") == "COMMANDLINE"}
    mod_opts = given_modality_options(ctx.params)
    if resume:
        if out is None:
            raise UserError("--resume needs --out, the run directory to continue")
        changed = sorted(set(given) - set(RESUMABLE)) + sorted(mod_opts)
        if changed or config is not None:
            flags = ", ".join("--" + k.replace("_", "-") for k in changed) or "--config"
            allowed = ", ".join("--" + k.replace("_", "-") for k in RESUMABLE)
            raise UserError(f"--resume continues the stored configuration; {flags} cannot "
                            f"change (only {allowed} can)")
        cfg = resume_config(out, **{k: ctx.params[k] for k in RESUMABLE})
    else:
        values: dict[str, Any] = {}
        if config is not None:
            values = read_toml(config)
            if not isinstance(values.get("modality_options", {}), dict):
                raise UserError(f"config file {config}: modality_options must be a table "
                                "([modality_options])")
            values["modality_options"] = dict(values.get("modality_options", {}))
        values.update({k: v for k, v in core_params.items() if v is not None})
        values["modality_options"] = {**values.get("modality_options", {}), **mod_opts}
        cfg = TrainConfig.from_dict(with_modality_defaults(values),
                                    source=str(config) if config else "options")
        if out is None:
            from latentgen.distributed import environment_world

            if environment_world()[1] > 1:  # a time-stamped name could differ between processes
                raise UserError("under torchrun give --out: every process must name the same "
                                "run directory")
            out = Path("runs") / f"{cfg.modality}-{time.strftime('%Y%m%d-%H%M%S')}"
    from latentgen.curves import REGIME_RULE, final_regime

    with display.TrainingProgress(console) as progress:
        run = run_training(cfg, out, resume=resume, observer=progress)
    from latentgen.distributed import environment_world

    if environment_world()[0] != 0:
        return  # under torchrun the first process reports
    console.print(f"run directory: [bold]{run.path}[/]  (config.toml, metrics.csv, curves.png, "
                  "samples/, checkpoints/)")
    found = final_regime(run.read_metrics())
    if found is not None:
        verdict, errs = found
        figures = ", ".join(f"{k} {v:.5f}" for k, v in errs.items())
        console.print(f"curves show [bold]{verdict}[/] ({figures})")
        console.print(f"rule: {REGIME_RULE}", style="dim")


@app.command()
def synthesize(
    run: Path = RunArg,
    n: int = typer.Option(64, "--n", help="Number of examples to synthesize."),
    out: Path = typer.Option(..., help="Output folder (files plus grid)."),
    seed: int = typer.Option(0, help="Random seed for Z ~ prior."),
    batch_size: int = typer.Option(256, help="Examples generated per batch (memory stays flat)."),
    fmt: Optional[str] = FormatOpt,
    device: str = DeviceOpt,
) -> None:
    """Synthesis: draw Z from the prior and write f(Z): N files plus a grid."""
    from latentgen.model import TrainedRun
    from latentgen.verbs import synthesize as run_synthesis

    trained = TrainedRun.load(run, device)
    with display.BatchProgress(console, "synthesize", n) as progress:
        files = run_synthesis(trained, n, out, seed=seed, batch_size=batch_size,
                              on_progress=progress.update, fmt=fmt)
    console.print(f"wrote {n} examples and a grid to [bold]{out}[/] ({len(files)} files)")


@app.command()
def reconstruct(
    run: Path = RunArg,
    data: Optional[str] = typer.Option(None, help="Examples to reconstruct (default: the run's "
                                       "training data, with its banked latents)."),
    out: Path = typer.Option(..., help="Output folder."),
    n: int = typer.Option(32, "--n", help="Reconstruct the first N examples."),
    steps: int = typer.Option(300, help="Inference steps for data without banked latents."),
    sampler: str = typer.Option("map", help=SAMPLER_HELP),
    mask: Optional[str] = typer.Option(None, help="Occlude the examples and recover them: " +
                                       MASK_HELP + "."),
    fmt: Optional[str] = FormatOpt,
    device: str = DeviceOpt,
) -> None:
    """Reconstruction: infer Z for each example, write originals beside f(Z).

    With --mask, Z is inferred from the observed entries only and the files show original,
    occluded and recovered examples side by side.
    """
    from latentgen.model import TrainedRun
    from latentgen.verbs import reconstruct as run_reconstruction

    trained = TrainedRun.load(run, device)
    res = run_reconstruction(trained, data, out, n=n, steps=steps, sampler=sampler, mask=mask,
                              fmt=fmt)
    units = trained.model.modality.metric_units
    if mask:
        console.print(f"recovered {res['n']} occluded examples: MSE {res['recovery_mse']:.5f} "
                      f"on missing entries, {res['mse']:.5f} on observed ({units}); grid: "
                      f"[bold]{out}/grid.*[/]")
    else:
        console.print(f"reconstructed {res['n']} examples, per-element MSE {res['mse']:.5f} "
                      f"({units}); grid: [bold]{out}/grid.*[/]")


@app.command()
def interpolate(
    run: Path = RunArg,
    data: Optional[str] = typer.Option(None, help="Examples whose latents are interpolated "
                                       "(default: the run's training data)."),
    out: Path = typer.Option(..., help="Output folder."),
    steps: int = typer.Option(8, help="n: intervals between the two latents (n + 1 outputs)."),
    pairs: int = typer.Option(4, help="Pairs of examples (consecutive examples of --data)."),
    infer_steps: int = typer.Option(300, help="Inference steps for data without banked latents."),
    mode: str = typer.Option("linear", help="linear (the seed's) or spherical (slerp: the path "
                             "keeps the norm of prior samples)."),
    fmt: Optional[str] = FormatOpt,
    device: str = DeviceOpt,
) -> None:
    """Interpolation: f((1 - t) Z1 + t Z2) between inferred latents, originals at both ends;
    one row per pair in the grid."""
    from latentgen.model import TrainedRun
    from latentgen.verbs import interpolate as run_interpolation

    trained = TrainedRun.load(run, device)
    res = run_interpolation(trained, data, out, steps=steps, pairs=pairs, infer_steps=infer_steps,
                            mode=mode, fmt=fmt)
    console.print(f"interpolated {res['pairs']} pairs in {res['steps']} steps ({mode}); grid: "
                  f"[bold]{out}/grid.*[/]")


@app.command()
def evaluate(
    run: Path = RunArg,
    test: Optional[str] = typer.Option(None, help="Held-out data of the training category."),
    negative: Optional[str] = typer.Option(None, help="Data of another category."),
    steps: int = typer.Option(300, help="Inference steps for --test / --negative (from Z = 0)."),
    sampler: str = typer.Option("map", help=SAMPLER_HELP),
    mask: Optional[str] = typer.Option(None, help="Occlude every set and report the error on the "
                                       "missing entries: " + MASK_HELP + "."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
    device: str = DeviceOpt,
) -> None:
    """Reconstruction error on training data (from its banked latents), held-out and negative data,
    beside PCA with as many components as the generator has latent numbers."""
    from latentgen.inference import REFINE_STEPS
    from latentgen.model import TrainedRun
    from latentgen.verbs import evaluate as run_evaluation

    trained = TrainedRun.load(run, device)
    sets: dict[str, Optional[str]] = {"train": None}
    if test is not None:
        sets["test"] = test
    if negative is not None:
        sets["negative"] = negative
    result = run_evaluation(trained, sets, steps=steps, sampler=sampler, mask=mask)
    if as_json:
        print(json.dumps(_finite_or_null(result), allow_nan=False))
        return
    table = Table(title=f"reconstruction error — {trained.model.modality.metric_units}")
    extras = sorted({k for name in sets if name in result for k in result[name]}
                    - {"n", "mse", "recovery_mse", "mean_fill_mse"})
    if mask:  # observed-entry errors do not compare with PCA's error over whole examples
        columns = ["set", "examples", "MSE observed", "MSE missing", "mean fill missing",
                   "PCA MSE (whole)"]
    else:
        columns = ["set", "examples", "MSE", "PCA MSE", "MSE / PCA", *extras]
    for col in columns:
        table.add_column(col, justify="left" if col == "set" else "right")
    for name in [s for s in sets if s in result]:
        r, pca = result[name], result["pca"][name]
        if mask:
            cells = [name, str(r["n"]), f"{r['mse']:.5f}", f"{r['recovery_mse']:.5f}",
                     f"{r['mean_fill_mse']:.5f}", f"{pca:.5f}"]
        else:
            cells = [name, str(r["n"]), f"{r['mse']:.5f}", f"{pca:.5f}",
                     f"{r['mse'] / pca:.2f}" if pca > 0 else "-"]
            cells += [f"{r[k]:.4g}" for k in extras]
        table.add_row(*cells)
    left_out = [s for s in sets if s not in result]
    if left_out:
        console.print(f"left out (the --mask file holds no masks for them): "
                      f"{', '.join(left_out)}")
    console.print(table)
    console.print(f"all sets: {steps} {sampler} steps from Z = 0" if mask else
                  f"train: MAP latents refined from the banked ones ({REFINE_STEPS} steps, "
                  f"epoch {trained.epoch}); others: {steps} {sampler} steps from Z = 0")
    if "regime" in result:
        console.print(f"regime: [bold]{result['regime']['verdict']}[/]")
        console.print(f"rule: {result['regime']['rule']}", style="dim")


@app.command()
def report(
    run: Path = RunArg,
    test: Optional[str] = typer.Option(None, help="Held-out data (default: the run's "
                                       "--test-data, if any)."),
    negative: Optional[str] = typer.Option(None, help="Data of another category (default: the "
                                           "run's --negative-data, if any)."),
    steps: int = typer.Option(300, help="Inference steps for data without banked latents."),
    out: Optional[Path] = typer.Option(None, help="HTML file to write (default: RUN/report.html)."),
    device: str = DeviceOpt,
) -> None:
    """One self-contained HTML page: config, error curves, samples over epochs, synthesis,
    reconstructions, interpolations and the error table with the PCA baseline."""
    from latentgen.model import TrainedRun
    from latentgen.report import build_report

    trained = TrainedRun.load(run, device)
    path = build_report(trained, test=test, negative=negative, steps=steps, out=out)
    console.print(f"report: [bold]{path}[/] (self-contained; open it in a browser)")


def prepare(
    ctx: typer.Context,
    modality: str = typer.Option("image", help="Data modality; `latentgen plugins` lists them."),
    data: Optional[str] = typer.Option(None, help="Data to pack (folder or file, as `train "
                                       "--data` takes); omit for the embedded default."),
    out: Path = typer.Option(..., help="File to write; its description goes to FILE.json.",
                             show_default=False),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Pack a dataset into one array file (for data larger than memory): `train --data FILE`
    then reads batches from it as they are needed, with the modality options it was packed
    with (FILE.json)."""
    from latentgen.config import TrainConfig
    from latentgen.model import Model
    from latentgen.prepared import prepare as pack

    cfg = TrainConfig.from_dict({"modality": modality, "data": data,
                                 "modality_options": given_modality_options(ctx.params)},
                                source="options")
    result = pack(Model.from_config(cfg), data, out)
    if as_json:
        print(json.dumps(result))
        return
    console.print(f"wrote [bold]{result['file']}[/] ({result['examples']} {modality} examples, "
                  f"shape {'x'.join(map(str, result['shape'][1:]))}, {result['dtype']}, "
                  f"{result['bytes'] / 2**20:.1f} MiB) and {result['sidecar']} in "
                  f"{result['seconds']:.1f} s")


@app.command()
def plugins(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Installed plugins: version, what each registers, and load errors."""
    from dataclasses import asdict

    from latentgen.plugins import get_registry

    reg = get_registry()
    if as_json:
        print(json.dumps([asdict(p) for p in reg.plugins.values()]))
        return
    table = Table(title="latentgen plugins")
    for col in ("plugin", "version", "modalities", "priors", "samplers", "status"):
        table.add_column(col)
    for p in reg.plugins.values():
        status = "[red]failed[/]" if p.error else "[green]ok[/]"
        table.add_row(p.name, p.version, ", ".join(p.modalities), ", ".join(p.priors),
                      ", ".join(p.samplers), status)
    console.print(table)
    for p in reg.plugins.values():
        if p.error:  # in full, below the table, where nothing truncates it
            console.print(f"[red]{p.name}[/]: {p.error} (skipped)", highlight=False,
                          soft_wrap=True)


def bench(
    ctx: typer.Context,
    modality: str = typer.Option("image", help="Modality whose default generator is measured."),
    latent_dim: int = typer.Option(16, help="d, latent factors per example."),
    batch_size: int = typer.Option(64, help="Examples per ABP iteration."),
    langevin_steps: int = typer.Option(10, help="L, Langevin steps per iteration."),
    device: str = typer.Option("auto", help="auto (CUDA when present), cpu or cuda."),
    precision: str = typer.Option("fp32", help="fp32 or bf16 (autocast of the generator's "
                                  "passes; the peak is measured in the same precision)."),
    compile: bool = typer.Option(False, "--compile/--no-compile", help="torch.compile the "
                                 "generator (CUDA graphs on CUDA)."),
    repeats: int = typer.Option(5, help="Interleaved timing rounds (each measurement runs at "
                                "least 0.3 s per round; the median is reported)."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object."),
) -> None:
    """Measure ABP iterations of a modality's default generator on random data: examples/s,
    Langevin steps/s, achieved FLOP/s against a matrix-multiply peak measured in the same run,
    and the engine's time against a plain reference loop."""
    from latentgen.bench import run_bench

    result = run_bench(modality, given_modality_options(ctx.params), latent_dim=latent_dim,
                       batch_size=batch_size, langevin_steps=langevin_steps, device=device,
                       precision=precision, compile=compile, repeats=repeats)
    if as_json:
        print(json.dumps(result))
        return
    table = Table(title=f"latentgen bench — {result['modality']} "
                        f"{'x'.join(map(str, result['data_shape']))}, batch "
                        f"{result['batch_size']}, L = {result['langevin_steps']}, "
                        f"{result['device_name']}, {result['precision']}, "
                        f"{result['threads']} threads, torch {result['torch']}")
    table.add_column("measure")
    table.add_column("value", justify="right")
    rows = [("examples/s (whole ABP iterations)", f"{result['examples_per_s']:.1f}"),
            ("Langevin steps/s", f"{result['langevin_steps_per_s']:.2f}"),
            ("Langevin phase", f"{result['langevin_flops_per_s'] / 1e9:.1f} GFLOP/s"),
            ("learning step", f"{result['learning_flops_per_s'] / 1e9:.1f} GFLOP/s"),
            ("matmul peak", f"{result['peak_flops'] / 1e9:.1f} GFLOP/s"),
            ("Langevin fraction of peak", f"{result['langevin_fraction_of_peak']:.3f}"),
            ("MFU (whole iteration)", f"{result['mfu']:.3f}"),
            ("engine / plain loop time", f"{result['reference_ratio']:.3f}")]
    for name, value in rows:
        table.add_row(name, value)
    console.print(table)


def _finite_or_null(value: Any) -> Any:
    """JSON has no NaN: a measure that is not a number (e.g. no missing entries) becomes null."""
    if isinstance(value, float):
        return value if value == value and abs(value) != float("inf") else None
    if isinstance(value, dict):
        return {k: _finite_or_null(v) for k, v in value.items()}
    return value


def build_command() -> Any:
    """The click command; `train` is added here because its options depend on the plugins."""
    app.registered_commands[:] = [c for c in app.registered_commands
                                  if c.name not in ("train", "bench", "prepare")]
    app.command("train")(with_modality_options(train))
    app.registered_commands.insert(0, app.registered_commands.pop())
    app.command("prepare")(with_modality_options(prepare, panel_defaults=False))
    app.command("bench")(with_modality_options(bench, panel_defaults=False))
    return typer.main.get_command(app)


def main(argv: list[str] | None = None) -> None:
    from latentgen.performance import tune_host_allocator

    tune_host_allocator()
    try:
        build_command().main(args=argv, prog_name="latentgen")
    except UserError as exc:
        from latentgen.distributed import environment_world

        rank, world, _ = environment_world() if "WORLD_SIZE" in os.environ else (0, 1, 0)
        where = f" (rank {rank})" if world > 1 else ""
        err_console.print(f"[red]error{where}:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
