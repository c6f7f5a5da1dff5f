"""`latentgen train`: config -> modality -> data + generator -> ABP engine -> run directory."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .bank import LatentBank
from .config import TrainConfig
from .curves import CurveTracker
from .engine import ABPEngine, BatchStats
from .errors import UserError
from .masks import parse_masks
from .model import Model, resolve_device
from .nets import generate
from .rundir import RunDir
from .performance import compile_errors, place_storage
from .seeding import derived_generator, rng_state, set_rng_state

GRID_SIDE = 8


class TrainingObserver:
    """Receives progress; the CLI draws it, tests and notebooks may ignore it."""

    def start(self, config: TrainConfig, n_examples: int, start_epoch: int,
              batches_per_epoch: int) -> None: ...

    def batch(self, epoch: int, stats: BatchStats) -> None: ...

    def epoch(self, row: dict[str, Any]) -> None: ...


def with_modality_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (from a config file and the command line) completed with the chosen
    modality's ``train_defaults`` where they are silent."""
    from .plugins import get_registry

    name = values.get("modality") or TrainConfig.modality
    return {**get_registry().modality(name).train_defaults, **values}


def resume_config(out: Path, epochs: int | None = None, device: str | None = None,
                  compile: bool | None = None) -> TrainConfig:
    """The stored config of the run in ``out``; only epochs, device and compile may change."""
    run = RunDir(out)
    if not run.last_checkpoint.exists():
        raise UserError(f"--resume: {out} holds no checkpoints/last.pt; give the --out folder "
                        "of an earlier run, or drop --resume to start a new one")
    config = run.read_config()
    done = int(run.load_checkpoint()["epoch"])
    if epochs is not None and epochs < done:
        raise UserError(f"--resume --epochs {epochs}: the run in {out} already has {done} epochs; "
                        "give a larger total")
    if epochs is not None:
        config.epochs = epochs
    if device is not None:
        config.device = device
    if compile is not None:
        config.compile = compile
    return config


def fixed_noise(model: Model, seed: int, n: int = GRID_SIDE * GRID_SIDE) -> torch.Tensor:
    return model.prior.sample(n, generator=derived_generator(seed, "fixed-noise"))


def train(config: TrainConfig, out: str | Path, resume: bool = False,
          observer: TrainingObserver | None = None) -> RunDir:
    observer = observer or TrainingObserver()
    run = RunDir(out)
    if not resume and run.holds_run():
        raise UserError(f"{out} already holds a run; pass --resume to continue it or choose "
                        "another --out")
    for parent in [run.path, *run.path.parents]:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"--out {out}: {parent} is a file; give a folder for the run")

    # Everything that can fail on bad input happens before anything is written.
    for key in ("data", "test_data", "negative_data", "mask"):
        value = getattr(config, key)
        if value and Path(value).exists():
            # stored absolute, so later commands work from any folder
            setattr(config, key, str(Path(value).resolve()))
    torch.manual_seed(config.seed)  # the generator's initial weights follow from the seed too
    model = Model.from_config(config)
    config.modality_options = dataclasses.asdict(model.options)  # record resolved defaults
    device = resolve_device(config.device)
    data = model.open_data(config.data)
    data.storage = place_storage(data.storage, device)
    held_out = {name: model.open_data(source, f"--{name}-data") for name, source in
                (("test", config.test_data), ("negative", config.negative_data)) if source}
    masks = None
    if config.mask:
        masks = parse_masks(config.mask, model.modality, model.options,
                            tuple(model.generator.data_shape), seed=config.seed)
        masks.check(len(data), "the training data")
    state = run.load_checkpoint() if resume else None

    generator = model.generator.to(device)
    bank = LatentBank.from_prior(model.prior, len(data), config.seed, device)
    engine = ABPEngine(generator, model.prior, model.sampler(), model.observation, bank,
                       langevin_steps=config.langevin_steps, batch_size=config.batch_size,
                       lr=config.lr, beta1=config.beta1, seed=config.seed,
                       reinit_chains=config.reinit_chains, device=device, masks=masks,
                       precision=config.precision, compile=config.compile)
    tracker = CurveTracker(model, device, data, held_out, config.eval_steps, masks)
    rows: list[dict[str, Any]] = []
    start_epoch = 0
    if state is not None:
        if state["latents"].shape[0] != len(data):
            raise UserError(f"--resume: the data now holds {len(data)} examples, the run was "
                            f"trained on {state['latents'].shape[0]}; resume with the same data")
        try:
            engine.load_state_dict(state)
            set_rng_state(state["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise UserError(f"--resume: checkpoint {run.last_checkpoint} does not fit this run "
                            f"({type(exc).__name__}: {exc}); it is damaged or from other "
                            "settings") from None
        start_epoch = int(state["epoch"])
        rows = [r for r in run.read_metrics() if int(r["epoch"]) <= start_epoch]
    else:
        torch.manual_seed(config.seed)

    run.path.mkdir(parents=True, exist_ok=True)
    run.write_config(config)
    z_fixed = fixed_noise(model, config.seed).to(device)
    observer.start(config, len(data), start_epoch, len(engine.batches(len(data), 0)))

    for epoch in range(start_epoch + 1, config.epochs + 1):
        try:
            with compile_errors():
                stats = engine.run_epoch(data, epoch, on_batch=lambda s, e=epoch: observer.batch(
                    e, replace(s, mse=model.metric_mse(s.mse))))
        except RuntimeError as exc:
            if "overflow" not in str(exc) and "nan" not in str(exc).lower():
                raise
            stats = None
        if stats is None or not math.isfinite(stats.loss):
            raise UserError(f"training diverged in epoch {epoch} (loss is not finite); "
                            "lower --lr or --step-size, or raise --sigma")
        row = {"epoch": epoch, "step": engine.step, "loss": round(stats.loss, 6),
               "train_mse": round(model.metric_mse(stats.mse), 8),
               "examples_per_s": round(stats.examples_per_s, 2),
               "seconds": round(stats.seconds, 3)}
        if held_out and (epoch % config.eval_every == 0 or epoch == config.epochs):
            row.update(tracker.measure(engine.bank.latents))
        rows.append(row)
        run.write_metrics(rows)
        tracker.plot(rows, run.curves_path)
        if epoch % config.sample_every == 0 or epoch == config.epochs:
            write_sample_grid(model, z_fixed, run.samples_dir / f"epoch_{epoch:04d}")
        keep = (f"epoch_{epoch:04d}.pt"
                if config.checkpoint_every and epoch % config.checkpoint_every == 0 else None)
        run.save_checkpoint(checkpoint_state(model, engine, config, epoch), keep_as=keep)
        observer.epoch(row)
    return run


def checkpoint_state(model: Model, engine: ABPEngine, config: TrainConfig, epoch: int
                     ) -> dict[str, Any]:
    return {**engine.state_dict(), "epoch": epoch, "config": config.to_dict(),
            "plugin": model.plugin_record(), "latentgen_version": __version__,
            "rng": rng_state()}


def write_sample_grid(model: Model, z: torch.Tensor, path: Path) -> list[Path]:
    model.generator.eval()
    x = generate(model.generator, z).cpu()
    model.generator.train()
    table = x.reshape(GRID_SIDE, -1, *x.shape[1:])
    return model.modality.save_grid(table, path, model.options)
