"""The rich progress display: for training, an epoch bar with loss, reconstruction error and
examples/s (an observer); for batch jobs, a plain bar."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from latentgen import BatchEvent, EpochEvent, Observer, StartEvent


class TrainingProgress(Observer):
    def __init__(self, console: Console | None = None) -> None:
        console = console or Console(emoji=False)
        self.console = console
        self.progress = Progress(
            TextColumn("[bold]epoch {task.fields[epoch]}"), BarColumn(), MofNCompleteColumn(),
            TextColumn("loss {task.fields[loss]}  mse {task.fields[mse]}  {task.fields[speed]}"),
            TimeElapsedColumn(), TimeRemainingColumn(), console=console)
        self.task: Any = None
        self.total_epochs = 0
        self._t0 = 0.0
        self._seen = 0

    def __enter__(self) -> TrainingProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def on_start(self, event: StartEvent) -> None:
        config = event.context.config
        n_examples, start_epoch = event.n_examples, event.start_epoch
        self.total_epochs = config.epochs
        self.batches = event.batches_per_epoch
        remaining = event.total_batches
        if remaining <= 0:
            self.console.print(f"nothing to train: the run has reached epoch {start_epoch} of "
                               f"{config.epochs}" + (f" or step {config.max_steps}"
                                                     if config.max_steps else "")
                               + "; give a larger --epochs or --max-steps")
            return
        source = escape(config.data or "embedded default")  # a path, printed literally
        self.console.print(f"training [bold]{escape(config.modality)}[/] on {n_examples} "
                           f"examples ({source}), d = {config.latent_dim}, "
                           f"L = {config.langevin_steps}, "
                           f"epochs {start_epoch + 1}..{config.epochs}"
                           + _precision_note(config.precision, event.context))
        self.progress.start()
        self.task = self.progress.add_task("train", total=remaining, epoch="-", loss="-",
                                           mse="-", speed="")
        self._t0 = time.perf_counter()
        self._seen = 0

    def on_batch(self, event: BatchEvent) -> None:
        epoch, stats = event.epoch, event.stats
        self._seen += stats.examples
        rate = self._seen / max(1e-9, time.perf_counter() - self._t0)
        self.progress.update(self.task, advance=1, epoch=f"{epoch}/{self.total_epochs}",
                             loss=f"{stats.loss:.1f}", mse=f"{stats.mse:.4f}",
                             speed=f"{rate:.0f} ex/s")

    def on_epoch(self, event: EpochEvent) -> None:
        self.progress.update(self.task, mse=f"{event.row['train_mse']:.4f}")

    def close(self) -> None:
        # The display starts only once training starts, so input errors print nothing here.
        if self.task is not None:
            self.progress.stop()
            self.task = None


class BatchProgress:
    """A bar for batch jobs (synthesis of many files), shown once the first batch is done."""

    def __init__(self, console: Console, label: str, total: int) -> None:
        self.progress = Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=console)
        self.total = total
        self.task: Any = None

    def __enter__(self) -> BatchProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.task is not None:
            self.progress.stop()

    def update(self, done: int, total: int) -> None:
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("batch", total=total)
        self.progress.update(self.task, completed=done)



def _precision_note(asked: str, context: Any) -> str:
    """", bf16" and, for --precision auto, what it chose and why (fp32 asked goes unsaid)."""
    if asked == "fp32":
        return ""
    note = f", {context.precision}"
    return note + (f" ({escape(context.precision_reason)})" if asked == "auto" else "")
