"""Observers of training: what a run reports, and where, as it goes.

The trainer emits six events, on the first process only, in this order:

    on_start(StartEvent)            once, before the first batch
    on_batch(BatchEvent)            after each ABP iteration
    on_epoch(EpochEvent)            after each epoch, before its checkpoint is written
    on_samples(SamplesEvent)        after on_epoch, once the epoch's fixed-noise sample grid
                                    is written (every ``sample_every`` epochs and the last)
    on_checkpoint(CheckpointEvent)  after each checkpoint (end of epoch, or --max-steps)
    on_end(EndEvent)                once, after the last one

``EpochEvent.rows`` is the run's metrics table with this epoch's row last; observers earlier
in the list may add columns to that row (the error curves do), and the built-in writers,
which run last, record the row as it then is: ``metrics.csv`` (one row per epoch; the table
``--resume`` and the report read) and ``metrics.jsonl`` (one JSON object per event).

A plugin adds an observer through the ``register_observers`` hook; the ``observers`` setting
(``--observer NAME``) turns it on. TensorBoard, Weights & Biases and MLflow are built in that
way (``latentgen.training.tensorboard``, ``wandb_observer``, ``mlflow_observer``: entry points
of latentgen's own).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentgen.errors import UserError
from latentgen.runtime.files import atomic_write, write_error

if TYPE_CHECKING:
    import torch

    from latentgen.assembly.config import TrainConfig
    from latentgen.assembly.model import Model
    from latentgen.data.examples import Examples
    from latentgen.data.masks import Masks
    from latentgen.training.engine import BatchStats


@dataclass(frozen=True)
class TrainingContext:
    """What an observer may know of the training it watches, fixed at its start."""

    #: the resolved settings (a copy: changing it changes nothing)
    config: TrainConfig
    #: the run directory being written
    run_dir: Path
    #: the model being trained (its generator's weights change as training goes)
    model: Model
    device: torch.device
    #: the training examples and the held-out sets the curves measure (``test``, ``negative``)
    data: Examples
    held_out: Mapping[str, Examples]
    #: the training data's masks (``mask``), if any
    masks: Masks | None
    #: the metrics rows of the epochs done before this start (a resumed run)
    rows: tuple[dict[str, Any], ...]
    #: ABP iterations done before this start
    step: int
    #: the precision the engine runs in (fp32 or bf16) and, under ``precision`` auto, why
    precision: str
    precision_reason: str


@dataclass
class StartEvent:
    context: TrainingContext
    n_examples: int
    start_epoch: int
    batches_per_epoch: int
    #: ABP iterations this invocation will run (0: nothing left to train)
    total_batches: int


@dataclass
class BatchEvent:
    epoch: int
    #: the global iteration count after this batch
    step: int
    #: this batch's statistics; ``mse`` on the modality's metric scale
    stats: BatchStats


@dataclass
class EpochEvent:
    epoch: int
    step: int
    #: the whole metrics table; ``rows[-1]`` is this epoch's (observers may add to it)
    rows: list[dict[str, Any]]
    #: the full latent bank as it stands after this epoch
    latents: torch.Tensor

    @property
    def row(self) -> dict[str, Any]:
        return self.rows[-1]


@dataclass
class SamplesEvent:
    epoch: int
    step: int
    #: the files of the grid as written (``samples/epoch_NNNN.png``; for sound or video also
    #: the file that plays it)
    paths: list[Path]
    #: the generated table, (rows, cols, *data_shape), in model space, on the CPU
    grid: torch.Tensor

    @property
    def picture(self) -> Path | None:
        """The grid's picture (the first PNG among ``paths``; a spectrogram sheet for sound,
        frame strips for video), or None if the modality wrote none."""
        return next((p for p in self.paths if p.suffix.lower() == ".png"), None)


@dataclass
class CheckpointEvent:
    epoch: int
    step: int
    path: Path
    #: the kept copy (``checkpoints/epoch_NNNN.pt``), if this epoch keeps one
    kept: Path | None


@dataclass
class EndEvent:
    run_dir: Path
    epoch: int
    step: int


def numeric_columns(row: dict[str, Any]) -> dict[str, float]:
    """The numeric columns of a metrics row but its ``epoch`` and ``step``: what the trackers
    plot per epoch."""
    return {k: v for k, v in row.items()
            if k not in ("epoch", "step") and isinstance(v, (int, float))
            and not isinstance(v, bool)}


class Observer:
    """Base class: override the events you need; each default does nothing."""

    def on_start(self, event: StartEvent) -> None: ...

    def on_batch(self, event: BatchEvent) -> None: ...

    def on_epoch(self, event: EpochEvent) -> None: ...

    def on_samples(self, event: SamplesEvent) -> None: ...

    def on_checkpoint(self, event: CheckpointEvent) -> None: ...

    def on_end(self, event: EndEvent) -> None: ...

    def close(self) -> None:
        """Called once when training stops, normally or on an error."""


class CSVMetrics(Observer):
    """``metrics.csv``: one row per epoch (the whole table rewritten, so it stays consistent
    with the checkpoint on resume)."""

    def __init__(self, run: Any) -> None:
        self.run = run

    def on_epoch(self, event: EpochEvent) -> None:
        self.run.write_metrics(event.rows)


class JSONLines(Observer):
    """``metrics.jsonl``: one JSON object per event, appended as it happens (``tail -f`` it).
    Each line has ``event`` (start, batch, epoch, checkpoint, end) and ``step``."""

    def __init__(self, path: Path, every_batch: bool = True, fresh: bool = True) -> None:
        self.path, self.every_batch = path, every_batch
        #: a new run starts the file anew; a resumed one appends to it
        self.mode = "w" if fresh else "a"
        self.fh: Any = None

    def _write(self, record: dict[str, Any]) -> None:
        clean = {k: (v if not isinstance(v, float) or math.isfinite(v) else None)
                 for k, v in record.items()}
        try:
            if self.fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.fh = open(self.path, self.mode, encoding="utf-8")
            self.fh.write(json.dumps(clean) + "\n")
            self.fh.flush()
        except OSError as exc:
            raise write_error(exc, self.path) from None

    def on_start(self, event: StartEvent) -> None:
        cfg = event.context.config
        if self.mode == "a":
            self._keep_until(event.context.step)
        self._write({"event": "start", "step": event.context.step,
                     "epoch": event.start_epoch, "modality": cfg.modality,
                     "examples": event.n_examples, "batches_per_epoch": event.batches_per_epoch,
                     "total_batches": event.total_batches})

    def _keep_until(self, step: int) -> None:
        """Drop what a resumed run will write again: records past its checkpoint's ``step``
        and a last line cut short by a crash."""
        try:
            lines = self.path.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return
        kept = []
        for line in lines:
            try:
                at = int(json.loads(line)["step"])
            except (ValueError, TypeError, KeyError):
                continue  # cut short, or not ours
            if at <= step:
                kept.append(line + "\n")
        atomic_write(self.path, lambda fh: fh.writelines(kept), mode="w")

    def on_batch(self, event: BatchEvent) -> None:
        if self.every_batch:
            s = event.stats
            self._write({"event": "batch", "step": event.step, "epoch": event.epoch,
                         "batch": s.batch, "examples": s.examples, "loss": s.loss,
                         "mse": s.mse})

    def on_epoch(self, event: EpochEvent) -> None:
        self._write({"event": "epoch", **event.row})

    def on_checkpoint(self, event: CheckpointEvent) -> None:
        self._write({"event": "checkpoint", "step": event.step, "epoch": event.epoch,
                     "path": str(event.path), "kept": str(event.kept) if event.kept else None})

    def on_end(self, event: EndEvent) -> None:
        self._write({"event": "end", "step": event.step, "epoch": event.epoch})

    def close(self) -> None:
        if self.fh is not None:
            self.fh.close()
            self.fh = None


def named_observers(names: list[str], run_dir: Path, config: TrainConfig) -> list[Observer]:
    """The observers the ``observers`` setting names, made by their registered factories
    (``factory(run_dir, config) -> Observer``); an unknown name is a UserError."""
    from latentgen.plugins.registry import get_registry

    reg = get_registry()
    made = []
    for name in names:
        factory = reg.observer(name)
        observer = factory(run_dir, config)
        if not isinstance(observer, Observer):
            raise UserError(f"`observers` {name}: its plugin made a {type(observer).__name__}, "
                            "not a latentgen.Observer; fix or remove the plugin")
        made.append(observer)
    return made


class Observers(Observer):
    """Several observers as one, called in order."""

    def __init__(self, observers: list[Observer]) -> None:
        self.observers = observers

    def _emit(self, hook: str, event: Any) -> None:
        for o in self.observers:
            getattr(o, hook)(event)

    def on_start(self, event: StartEvent) -> None:
        self._emit("on_start", event)

    def on_batch(self, event: BatchEvent) -> None:
        self._emit("on_batch", event)

    def on_epoch(self, event: EpochEvent) -> None:
        self._emit("on_epoch", event)

    def on_samples(self, event: SamplesEvent) -> None:
        self._emit("on_samples", event)

    def on_checkpoint(self, event: CheckpointEvent) -> None:
        self._emit("on_checkpoint", event)

    def on_end(self, event: EndEvent) -> None:
        self._emit("on_end", event)

    def close(self) -> None:
        for o in self.observers:
            o.close()
