"""The trainer: a resolved config -> model, data, latent bank and ABP engine -> a run directory.

Under torchrun every process makes a ``Trainer`` and calls ``fit``; the processes split every
batch (``latentgen.runtime.distributed``) and only the first writes the run directory and
tells the observers.
"""

from __future__ import annotations

import copy
import math
import os
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from latentgen.assembly.config import TrainConfig, learned_settings
from latentgen.assembly.model import Model
from latentgen.assembly.rundir import RunDir
from latentgen.data.loader import default_workers
from latentgen.data.masks import Masks, parse_masks
from latentgen.data.order import EpochOrder
from latentgen.data.sources import resolved_source
from latentgen.errors import UserError
from latentgen.model.nets import generate
from latentgen.runtime.devices import resolve_device
from latentgen.runtime.distributed import Shard, barrier, session
from latentgen.runtime.files import (
    WriteError,
    check_utf8_path,
    remove_stale_temporaries,
    write_error,
)
from latentgen.runtime.lock import FolderLock
from latentgen.runtime.seeding import derived_generator, rng_state, set_rng_state
from latentgen.runtime.speed import compile_errors, place_storage
from latentgen.training.bank import LatentBank
from latentgen.training.engine import (
    ABPEngine,
    BatchStats,
    EpochProgress,
    EpochStats,
    PriorDiverged,
)
from latentgen.training.health import collapse, data_variance
from latentgen.training.observers import (
    BatchEvent,
    CheckpointEvent,
    CSVMetrics,
    EndEvent,
    EpochEvent,
    JSONLines,
    Observer,
    Observers,
    SamplesEvent,
    StartEvent,
    TrainingContext,
    named_observers,
)
from latentgen.version import __version__

GRID_SIDE = 8


def fixed_noise(model: Model, seed: int, n: int = GRID_SIDE * GRID_SIDE) -> torch.Tensor:
    return model.prior.sample(n, generator=derived_generator(seed, "fixed-noise"))


class Trainer:
    """Trains (or resumes) the run in ``out`` with ``config``, a resolved config
    (``latentgen.resolve_config``; it is copied, never changed). ``observers`` are told of
    progress before the built-in metrics writers (first process only)."""

    def __init__(self, config: TrainConfig, out: str | Path, resume: bool = False,
                 observers: list[Observer] | None = None) -> None:
        self.config = copy.deepcopy(config)
        self.run = RunDir(out)
        self.resume = resume
        self.extra_observers = list(observers or [])
        check_utf8_path(self.run.path, "`out`")
        if self.run.path.is_symlink() and not self.run.path.exists():
            raise UserError(f"`out` {out} is a link to {os.readlink(self.run.path)}, which does "
                            "not exist; create that folder or give another `out`")
        for parent in [self.run.path, *self.run.path.parents]:
            if parent.exists() and not parent.is_dir():
                raise UserError(f"`out` {out} is inside {parent}, which is a file; give a "
                                "folder for the run")
        # set by ``fit``
        self.shard: Shard
        self.device: torch.device
        self.model: Model
        self.data: Any
        self.held_out: dict[str, Any] = {}
        self.masks: Masks | None = None
        self.bank: LatentBank
        self.engine: ABPEngine
        self.rows: list[dict[str, Any]] = []
        self.start_epoch = 0
        #: how far a checkpoint written mid-epoch got (resumed from there)
        self.progress: EpochProgress | None = None

    def fit(self) -> RunDir:
        """Train until ``epochs`` (or ``max_steps``); returns the run directory.

        The first process holds an exclusive lock on the run directory throughout (a second
        ``train`` on it is refused). A failure before the first write leaves no folder behind
        that was not there; a full disk or an unwritable folder is one ``UserError``, with the
        last good checkpoint kept for ``--resume``."""
        with session(resolve_device(self.config.device)) as (shard, device):
            self.shard, self.device = shard, device
            created = not self.run.path.exists()
            lock = FolderLock(self.run.path).acquire() if shard.is_main else None
            try:
                if shard.is_main:
                    self._claim()
                self._fit()
            except BaseException as exc:
                if lock is not None and created:
                    lock.release()
                    _remove_if_empty(self.run.path)
                told = write_error(exc, self.run.path) if isinstance(exc, OSError) else exc
                if isinstance(told, WriteError):  # a full disk, an unwritable folder
                    raise self._write_failed(told) from None
                raise
            finally:
                if lock is not None:
                    lock.release()
        return self.run

    def _claim(self) -> None:
        """Under the lock (so that a second ``train`` is told who is training): a new run does
        not overwrite one; remove what interrupted writes left."""
        if not self.resume and self.run.holds_run():
            raise UserError(f"{self.run.path} already holds a run; pass `resume` to continue it "
                            "or choose another `out`")
        for folder in (self.run.path, self.run.checkpoints_dir, self.run.samples_dir):
            remove_stale_temporaries(folder)

    def _fit(self) -> None:
        observers = self._observers() if self.shard.is_main else Observers([])
        try:
            self._setup()
            self._loop(observers)
        finally:
            observers.close()
            bank = getattr(self, "bank", None)
            if bank is not None and bank.path is not None:
                bank.path.unlink(missing_ok=True)  # working rows: the checkpoint holds them

    def _write_failed(self, exc: WriteError) -> UserError:
        """The message for a full disk or unwritable folder mid-run: how to go on."""
        if not self.run.last_checkpoint.exists():
            return exc
        fix = ("free some space" if "space" in exc.reason.lower() or "quota" in exc.reason
               else "make the folder writable")
        return UserError(f"cannot write {exc.path}: {exc.reason}; {fix}, then training again "
                         f"with `resume` into `out` {self.run.path} continues from the last "
                         "checkpoint")

    # -- setup ---------------------------------------------------------------------------
    def _observers(self) -> Observers:
        named = named_observers(self.config.observers, self.run.path, self.config)
        return Observers([*self.extra_observers, *named, CSVMetrics(self.run),
                          JSONLines(self.run.path / "metrics.jsonl", fresh=not self.resume)])

    def _setup(self) -> None:
        config, run, shard, device = self.config, self.run, self.shard, self.device
        # Everything that can fail on bad input happens before anything is written.
        for key in ("data", "test_data", "negative_data", "mask"):
            value = getattr(config, key)
            if value:  # stored absolute (scheme and ?query kept): later commands work anywhere
                setattr(config, key, resolved_source(value))
        torch.manual_seed(config.seed)  # the generator's initial weights follow from the seed
        model = self.model = Model.from_config(config)
        config.modality_options = model.options_dict()  # record resolved defaults
        data = self.data = model.open_data(config.data)
        data.storage = place_storage(data.storage, device)
        # every process opens them, so that bad input stops all with one line each; only the
        # first keeps them (it computes the curves)
        held_out = {name: model.open_data(source, f"`{name}_data`") for name, source in
                    (("test", config.test_data), ("negative", config.negative_data)) if source}
        self.held_out = held_out if shard.is_main else {}
        if config.mask:
            self.masks = parse_masks(config.mask, model.modality, model.options,
                                     tuple(model.generator.data_shape), seed=config.seed)
            self.masks.check(len(data), "the training data")
        state = run.load_checkpoint() if self.resume else None
        if state is not None and state["latents"].shape[0] != len(data):
            raise UserError(f"`resume`: the data now holds {len(data)} examples, the run was "
                            f"trained on {state['latents'].shape[0]}; resume with the same data")
        model.generator.to(device)
        stored_shape = tuple(state["latents"].shape[1:]) if state is not None else None
        if stored_shape is not None and stored_shape != tuple(model.prior.latent_shape):
            raise UserError(f"`resume`: checkpoint {run.last_checkpoint} holds latents of "
                            f"shape {stored_shape}, this run's are "
                            f"{tuple(model.prior.latent_shape)}; it is damaged or from other "
                            "settings")
        if shard.is_main and run.checkpoints_dir.is_dir():  # banks of another world size
            for stale in run.checkpoints_dir.glob("bank-rank*-of-*.npy"):
                if not stale.name.endswith(f"-of-{shard.world}.npy"):
                    stale.unlink(missing_ok=True)
        self.bank = self._make_bank(fresh=state is None)
        #: the training error of a generator that ignores its latent (model space)
        self.data_variance = data_variance(data, model.observation, self.masks)
        self.engine = ABPEngine(
            model.generator, model.prior, model.sampler(), model.observation, self.bank,
            langevin_steps=config.langevin_steps, batch_size=config.batch_size, lr=config.lr,
            beta1=config.beta1, seed=config.seed, reinit_chains=config.reinit_chains,
            device=device, masks=self.masks, precision=config.precision,
            compile=config.compile, shard=shard, fp64_gradients=config.fp64_gradients,
            lr_end=config.lr_end, prior_lr=config.prior_lr, ema=config.ema,
            total_steps=config.epochs * len(EpochOrder(len(data), config.batch_size, 0, 0)))
        if state is not None:
            self._restore(state)
            del state  # drop the mapped checkpoint (and its bank) before training
        else:
            torch.manual_seed(config.seed)

    def _make_bank(self, fresh: bool) -> LatentBank:
        """The latent bank where ``latents_on`` puts it; prior draws for a new run, empty rows
        (filled from the checkpoint) on resume."""
        config, shard = self.config, self.shard
        place = {"device": self.device, "host": torch.device("cpu"),
                 "disk": torch.device("cpu")}[config.latents_on]
        path = (self.run.checkpoints_dir / f"bank-rank{shard.rank}-of-{shard.world}.npy"
                if config.latents_on == "disk" else None)
        n, prior = len(self.data), self.model.prior
        if fresh:
            return LatentBank.from_prior(prior, n, config.seed, place, shard, disk_path=path)
        return LatentBank.empty(prior.latent_shape, n, place, shard, path)

    def _restore(self, state: dict[str, Any]) -> None:
        try:
            self.engine.load_state_dict(state)
            set_rng_state(state["rng"])
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise UserError(f"`resume`: checkpoint {self.run.last_checkpoint} does not fit this "
                            f"run ({type(exc).__name__}: {exc}); it is damaged or from other "
                            "settings") from None
        self.start_epoch = int(state["epoch"])
        if state.get("progress"):
            self.progress = EpochProgress.from_dict(dict(state["progress"]))
        every = self.config.checkpoint_every
        if (self.shard.is_main and every and self.start_epoch % every == 0
                and self.progress is None):
            self.run.restore_kept(self.start_epoch)
        self.rows = [r for r in self.run.read_metrics() if int(r["epoch"]) <= self.start_epoch]

    # -- the loop ------------------------------------------------------------------------
    def _loop(self, observers: Observer) -> None:
        config, run, engine, model = self.config, self.run, self.engine, self.model
        main = self.shard.is_main
        if main:
            run.path.mkdir(parents=True, exist_ok=True)
            run.write_config(config)
        workers = config.workers if config.workers is not None else default_workers(self.data)
        if self.data.storage.device.type != "cpu":
            workers = 0  # already on the device: nothing to read ahead
        per_epoch = len(engine.batches(len(self.data), 0))
        progress = self.progress
        todo = ((config.epochs - self.start_epoch) * per_epoch
                - (progress.batch if progress else 0))
        if config.max_steps is not None:
            todo = min(todo, config.max_steps - engine.step)
        context = TrainingContext(
            config=copy.deepcopy(config), run_dir=run.path, model=model, device=self.device,
            data=self.data, held_out=dict(self.held_out), masks=self.masks,
            rows=tuple(dict(r) for r in self.rows), step=engine.step,
            precision=engine.precision, precision_reason=engine.precision_reason)
        observers.on_start(StartEvent(context, len(self.data), self.start_epoch, per_epoch,
                                      max(0, todo)))
        done = self.start_epoch  # the last epoch completed
        for epoch in range(self.start_epoch + 1, config.epochs + 1):
            left = None if config.max_steps is None else config.max_steps - engine.step
            if left is not None and left <= 0:
                break
            stats, progress = self._epoch(epoch, progress, left, workers, observers)
            if stats is None:  # stopped by max_steps inside the epoch
                self._save(epoch - 1, progress, None, observers)
                break
            why = collapse(epoch, engine.step, model.metric_mse(stats.mse),
                           model.metric_mse(self.data_variance))
            if why is not None:
                kept = (f"the last checkpoint, {run.last_checkpoint}, is kept"
                        if run.last_checkpoint.exists() else "no checkpoint was written")
                raise UserError(f"training collapsed in epoch {epoch}: {why}; lower "
                                f"`step_size` (now {config.step_size:g}) or `lr` (now "
                                f"{config.lr:g}); {kept}")
            engine.end_epoch(stats.mse)
            done = epoch
            progress = None
            row = {"epoch": epoch, "step": engine.step, "loss": round(stats.loss, 6),
                   "train_mse": round(model.metric_mse(stats.mse), 8),
                   "examples_per_s": round(stats.examples_per_s, 2),
                   "seconds": round(stats.seconds, 3)}
            if model.observation.learns:
                row["sigma"] = round(model.observation.sigma, 6)
            if stats.prior_loss is not None:
                row["prior_loss"] = round(stats.prior_loss, 6)
            keep = (f"epoch_{epoch:04d}.pt"
                    if config.checkpoint_every and epoch % config.checkpoint_every == 0 else None)

            def record(latents: torch.Tensor, epoch: int = epoch, row: dict = row) -> None:
                """The first process's part, with the full bank, before the checkpoint: the
                observers (curves, then metrics files), then the sample grid, which the
                observers are then told of (a crash between them and the checkpoint leaves a
                resumable run whose metrics cover its checkpoint)."""
                self.rows.append(row)
                observers.on_epoch(EpochEvent(epoch, engine.step, self.rows, latents))
                if epoch % config.sample_every == 0 or epoch == config.epochs:
                    # drawn afresh from the same seed: a learned prior has moved since
                    z_fixed = fixed_noise(model, config.seed).to(self.device)
                    paths, grid = write_sample_grid(model, z_fixed,
                                                    run.samples_dir / f"epoch_{epoch:04d}")
                    observers.on_samples(SamplesEvent(epoch, engine.step, paths, grid))

            self._save(epoch, None, keep, observers, before_write=record)
        barrier(self.shard)
        if main:
            observers.on_end(EndEvent(run.path, done, engine.step))

    def _epoch(self, epoch: int, progress: EpochProgress | None, left: int | None,
               workers: int, observers: Observer
               ) -> tuple[EpochStats | None, EpochProgress]:
        model, engine = self.model, self.engine

        def on_batch(s: BatchStats) -> None:
            observers.on_batch(BatchEvent(epoch, engine.step,
                                          replace(s, mse=model.metric_mse(s.mse))))

        try:
            with compile_errors():
                stats, progress = engine.run_epoch(self.data, epoch, progress=progress,
                                                   max_batches=left, workers=workers,
                                                   on_batch=on_batch)
        except PriorDiverged as exc:
            kept = (f"the last checkpoint, {self.run.last_checkpoint}, is kept"
                    if self.run.last_checkpoint.exists() else "no checkpoint was written")
            raise UserError(f"the {self.config.prior} prior diverged in epoch {epoch} ({exc}); "
                            f"lower `prior_lr` or `prior_step_size`; {kept}") from None
        except RuntimeError as exc:
            if "overflow" not in str(exc) and "nan" not in str(exc).lower():
                raise
            stats, progress = None, EpochProgress(epoch, loss_sum=math.nan, examples=1)
        if not math.isfinite(progress.loss_sum):
            raise UserError(f"training diverged in epoch {epoch} (loss is not finite); "
                            "lower `lr` or `step_size`, or raise `sigma`")
        return stats, progress

    def _save(self, epoch: int, progress: EpochProgress | None, keep: str | None,
              observers: Observer,
              before_write: Callable[[torch.Tensor], None] | None = None) -> None:
        """Gather the bank and write the checkpoint (every rank calls this; the first writes).
        ``before_write(full bank)`` runs on the first rank before the checkpoint is written
        (the error curves use the bank)."""
        run, engine, model = self.run, self.engine, self.model
        main = self.shard.is_main
        state = {**engine.state_dict(), "epoch": epoch, "plugin": model.plugin_record(),
                 "latentgen_version": __version__, "rng": rng_state(),
                 "settings": learned_settings(self.config)}
        state["progress"] = progress.to_dict() if progress is not None else None
        if self.config.latents_on == "disk":
            engine.bank.flush()
            state["latents_file"] = run.write_latents_file(
                engine.step, (engine.bank.n, *engine.bank.latent_shape), engine.bank.gather,
                main)
            latents = run.load_checkpoint_latents(state["latents_file"]) if main else None
        else:
            latents = engine.bank.full()
            state["latents"] = latents
        if main:
            if before_write is not None:
                before_write(latents)  # type: ignore[arg-type]
            run.save_checkpoint(state, keep_as=keep)
            observers.on_checkpoint(CheckpointEvent(
                epoch, engine.step, run.last_checkpoint,
                run.checkpoints_dir / keep if keep else None))


def _remove_if_empty(folder: Path) -> None:
    """Remove ``folder`` if it holds no file (empty subfolders go too)."""
    inner = sorted((p for p in folder.rglob("*") if p.is_dir() and not p.is_symlink()),
                   key=lambda p: len(p.parts), reverse=True)
    for path in [*inner, folder]:
        try:
            path.rmdir()
        except OSError:
            pass  # not empty (or gone): leave it


def write_sample_grid(model: Model, z: torch.Tensor, path: Path) -> tuple[list[Path], torch.Tensor]:
    """The files written and the generated (rows, cols, *data_shape) table, in model space."""
    model.generator.eval()
    x = generate(model.generator, z).cpu()
    model.generator.train()
    table = x.reshape(GRID_SIDE, -1, *x.shape[1:])
    return model.modality.save_grid(table, path, model.options), table
