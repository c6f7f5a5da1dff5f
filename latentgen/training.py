"""`latentgen train`: config -> modality -> data + generator -> ABP engine -> run directory."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import torch

from . import __version__
from .bank import LatentBank
from .config import TrainConfig
from .curves import CurveTracker
from .distributed import Shard, barrier, session
from .engine import ABPEngine, BatchStats, EpochProgress
from .loader import default_workers
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
              batches_per_epoch: int, total_batches: int | None = None) -> None: ...

    def batch(self, epoch: int, stats: BatchStats) -> None: ...

    def epoch(self, row: dict[str, Any]) -> None: ...


def with_modality_defaults(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` (from a config file and the command line) completed with the chosen
    modality's ``train_defaults`` where they are silent. Without a modality, prepared data
    (``latentgen prepare``) brings its own."""
    from .plugins import get_registry
    from .prepared import is_prepared, prepared_options

    if not values.get("modality") and is_prepared(values.get("data")):
        values = {**values, "modality": prepared_options(values["data"])[0]}
    name = values.get("modality") or TrainConfig.modality
    return {**get_registry().modality(name).train_defaults, **values}


#: settings a resumed run may change: they change how it runs, not what it learns
RESUMABLE = ("epochs", "device", "compile", "max_steps", "workers", "latents_on")


def resume_config(out: Path, **changes: Any) -> TrainConfig:
    """The stored config of the run in ``out``, with the ``RESUMABLE`` settings in
    ``changes`` (those not None) applied."""
    run = RunDir(out)
    if not run.last_checkpoint.exists():
        raise UserError(f"--resume: {out} holds no checkpoints/last.pt; give the --out folder "
                        "of an earlier run, or drop --resume to start a new one")
    config = run.read_config()
    done = int(run.load_checkpoint()["epoch"])
    epochs = changes.get("epochs")
    if epochs is not None and epochs < done:
        raise UserError(f"--resume --epochs {epochs}: the run in {out} already has {done} epochs; "
                        "give a larger total")
    for key, value in changes.items():
        if key not in RESUMABLE:
            raise ValueError(f"{key} cannot change on resume")
        if value is not None:
            setattr(config, key, value)
    # a step budget belongs to one invocation (a smoke test, one slot of a job schedule): the
    # stored one would stop a resumed run before it starts
    config.max_steps = changes.get("max_steps")
    config.validate()
    return config


def fixed_noise(model: Model, seed: int, n: int = GRID_SIDE * GRID_SIDE) -> torch.Tensor:
    return model.prior.sample(n, generator=derived_generator(seed, "fixed-noise"))


def train(config: TrainConfig, out: str | Path, resume: bool = False,
          observer: TrainingObserver | None = None) -> RunDir:
    """Train (or resume) the run in ``out``. Under torchrun each process calls this; they
    split every batch (``latentgen.distributed``) and only the first writes ``out``."""
    run = RunDir(out)
    if not resume and run.holds_run():
        raise UserError(f"{out} already holds a run; pass --resume to continue it or choose "
                        "another --out")
    for parent in [run.path, *run.path.parents]:
        if parent.exists() and not parent.is_dir():
            raise UserError(f"--out {out} is inside {parent}, which is a file; give a folder "
                            "for the run")
    with session(resolve_device(config.device)) as (shard, device):
        if not shard.is_main:
            observer = None
        return _train(config, run, resume, observer or TrainingObserver(), shard, device)


def _train(config: TrainConfig, run: RunDir, resume: bool, observer: TrainingObserver,
           shard: Shard, device: torch.device) -> RunDir:
    main = shard.is_main
    # Everything that can fail on bad input happens before anything is written.
    for key in ("data", "test_data", "negative_data", "mask"):
        value = getattr(config, key)
        if value and Path(value).exists():
            # stored absolute, so later commands work from any folder
            setattr(config, key, str(Path(value).resolve()))
    torch.manual_seed(config.seed)  # the generator's initial weights follow from the seed too
    model = Model.from_config(config)
    config.modality_options = dataclasses.asdict(model.options)  # record resolved defaults
    data = model.open_data(config.data)
    data.storage = place_storage(data.storage, device)
    # every process opens them, so that bad input stops all with one line each; only the
    # first keeps them (it computes the curves)
    held_out = {name: model.open_data(source, f"--{name}-data") for name, source in
                (("test", config.test_data), ("negative", config.negative_data)) if source}
    if not main:
        held_out = {}
    masks = None
    if config.mask:
        masks = parse_masks(config.mask, model.modality, model.options,
                            tuple(model.generator.data_shape), seed=config.seed)
        masks.check(len(data), "the training data")
    state = run.load_checkpoint() if resume else None
    if state is not None and state["latents"].shape[0] != len(data):
        raise UserError(f"--resume: the data now holds {len(data)} examples, the run was "
                        f"trained on {state['latents'].shape[0]}; resume with the same data")

    generator = model.generator.to(device)
    stored_shape = tuple(state["latents"].shape[1:]) if state is not None else None
    if stored_shape is not None and stored_shape != tuple(model.prior.latent_shape):
        raise UserError(f"--resume: checkpoint {run.last_checkpoint} holds latents of shape "
                        f"{stored_shape}, this run's are {tuple(model.prior.latent_shape)}; it "
                        "is damaged or from other settings")
    if main and run.checkpoints_dir.is_dir():  # working banks of a run with another world size
        for stale in run.checkpoints_dir.glob("bank-rank*-of-*.npy"):
            if not stale.name.endswith(f"-of-{shard.world}.npy"):
                stale.unlink(missing_ok=True)
    bank = _make_bank(model, config, len(data), device, shard, run, fresh=state is None)
    # handed over in a list so that _run can drop the (mapped) checkpoint once it is loaded
    states, state = [state], None
    try:
        return _run(config, run, model, data, held_out, masks, states, bank, observer, shard,
                    device)
    finally:
        if bank.path is not None:  # the working rows: the checkpoint holds the bank
            bank.path.unlink(missing_ok=True)


def _run(config: TrainConfig, run: RunDir, model: Model, data: Any, held_out: dict[str, Any],
         masks: Any, states: list[dict[str, Any] | None], bank: LatentBank,
         observer: TrainingObserver, shard: Shard, device: torch.device) -> RunDir:
    main = shard.is_main
    state = states.pop()
    generator = model.generator
    engine = ABPEngine(generator, model.prior, model.sampler(), model.observation, bank,
                       langevin_steps=config.langevin_steps, batch_size=config.batch_size,
                       lr=config.lr, beta1=config.beta1, seed=config.seed,
                       reinit_chains=config.reinit_chains, device=device, masks=masks,
                       precision=config.precision, compile=config.compile, shard=shard,
                       fp64_gradients=config.fp64_gradients)
    tracker = CurveTracker(model, device, data, held_out, config.eval_steps, masks) if main \
        else None
    rows: list[dict[str, Any]] = []
    start_epoch, progress = 0, None
    if state is not None:
        try:
            engine.load_state_dict(state)
            set_rng_state(state["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise UserError(f"--resume: checkpoint {run.last_checkpoint} does not fit this run "
                            f"({type(exc).__name__}: {exc}); it is damaged or from other "
                            "settings") from None
        start_epoch = int(state["epoch"])
        if state.get("progress"):
            progress = EpochProgress.from_dict(dict(state["progress"]))
        rows = [r for r in run.read_metrics() if int(r["epoch"]) <= start_epoch]
        del state  # drop the mapped checkpoint (and its bank) before training
    else:
        torch.manual_seed(config.seed)

    if main:
        run.path.mkdir(parents=True, exist_ok=True)
        run.write_config(config)
    z_fixed = fixed_noise(model, config.seed).to(device)
    workers = config.workers if config.workers is not None else default_workers(data)
    if data.storage.device.type != "cpu":
        workers = 0  # already on the device: nothing to read ahead
    per_epoch = len(engine.batches(len(data), 0))
    todo = (config.epochs - start_epoch) * per_epoch - (progress.batch if progress else 0)
    if config.max_steps is not None:
        todo = min(todo, config.max_steps - engine.step)
    observer.start(config, len(data), start_epoch, per_epoch, total_batches=max(0, todo))

    for epoch in range(start_epoch + 1, config.epochs + 1):
        left = None if config.max_steps is None else config.max_steps - engine.step
        if left is not None and left <= 0:
            break
        try:
            with compile_errors():
                stats, progress = engine.run_epoch(
                    data, epoch, progress=progress, max_batches=left, workers=workers,
                    on_batch=lambda s, e=epoch: observer.batch(
                        e, replace(s, mse=model.metric_mse(s.mse))))
        except RuntimeError as exc:
            if "overflow" not in str(exc) and "nan" not in str(exc).lower():
                raise
            stats = None
            progress = EpochProgress(epoch, loss_sum=math.nan, examples=1)
        if not math.isfinite(progress.loss_sum):
            raise UserError(f"training diverged in epoch {epoch} (loss is not finite); "
                            "lower --lr or --step-size, or raise --sigma")
        if stats is None:  # stopped by --max-steps inside the epoch
            _save(run, model, engine, config, epoch - 1, progress, None)
            break
        progress = None
        row = {"epoch": epoch, "step": engine.step, "loss": round(stats.loss, 6),
               "train_mse": round(model.metric_mse(stats.mse), 8),
               "examples_per_s": round(stats.examples_per_s, 2),
               "seconds": round(stats.seconds, 3)}
        keep = (f"epoch_{epoch:04d}.pt"
                if config.checkpoint_every and epoch % config.checkpoint_every == 0 else None)
        def record(latents: torch.Tensor, epoch: int = epoch, row: dict = row) -> None:
            """The first process's part, with the full bank, before the checkpoint: the
            curves, then metrics.csv, curves.png and samples (a crash between them and the
            checkpoint leaves a resumable run whose metrics cover its checkpoint)."""
            assert tracker is not None
            if tracker.held_out and (epoch % config.eval_every == 0 or epoch == config.epochs):
                row.update(tracker.measure(latents))
            rows.append(row)
            run.write_metrics(rows)
            tracker.plot(rows, run.curves_path)
            if epoch % config.sample_every == 0 or epoch == config.epochs:
                write_sample_grid(model, z_fixed, run.samples_dir / f"epoch_{epoch:04d}")

        _save(run, model, engine, config, epoch, None, keep, before_write=record)
        observer.epoch(row)
    barrier(shard)
    return run


def _working_bank_path(run: RunDir, shard: Shard) -> Path:
    return run.checkpoints_dir / f"bank-rank{shard.rank}-of-{shard.world}.npy"


def _make_bank(model: Model, config: TrainConfig, n: int, device: torch.device, shard: Shard,
               run: RunDir, fresh: bool) -> LatentBank:
    """The latent bank where ``--latents-on`` puts it; prior draws for a new run, empty rows
    (filled from the checkpoint) on resume."""
    place = {"device": device, "host": torch.device("cpu"), "disk": torch.device("cpu")}
    path = _working_bank_path(run, shard) if config.latents_on == "disk" else None
    if fresh:
        return LatentBank.from_prior(model.prior, n, config.seed, place[config.latents_on],
                                     shard, disk_path=path)
    return LatentBank.empty(model.prior.latent_shape, n, place[config.latents_on], shard, path)


def _save(run: RunDir, model: Model, engine: ABPEngine, config: TrainConfig, epoch: int,
          progress: EpochProgress | None, keep: str | None,
          before_write: Callable[[torch.Tensor], None] | None = None) -> None:
    """Gather the bank and write the checkpoint (every rank calls this; the first writes).
    ``before_write(full bank)`` runs on the first rank before the checkpoint is written (the
    error curves use the bank)."""
    main = engine.shard.is_main
    state = checkpoint_state(model, engine, config, epoch)
    state["progress"] = progress.to_dict() if progress is not None else None
    if config.latents_on == "disk":
        engine.bank.flush()
        state["latents_file"] = run.write_latents_file(
            engine.step, (engine.bank.n, *engine.bank.latent_shape), engine.bank.gather, main)
        latents = run.load_checkpoint_latents(state["latents_file"]) if main else None
    else:
        latents = engine.bank.full()
        state["latents"] = latents
    if main:
        if before_write is not None:
            before_write(latents)  # type: ignore[arg-type]
        run.save_checkpoint(state, keep_as=keep)


def checkpoint_state(model: Model, engine: ABPEngine, config: TrainConfig, epoch: int
                     ) -> dict[str, Any]:
    """Everything but the latent bank (``_save`` adds it)."""
    return {**engine.state_dict(), "epoch": epoch, "config": config.to_dict(),
            "plugin": model.plugin_record(), "latentgen_version": __version__,
            "rng": rng_state()}


def write_sample_grid(model: Model, z: torch.Tensor, path: Path) -> list[Path]:
    model.generator.eval()
    x = generate(model.generator, z).cpu()
    model.generator.train()
    table = x.reshape(GRID_SIDE, -1, *x.shape[1:])
    return model.modality.save_grid(table, path, model.options)
