"""The progress display: for training, an epoch bar with loss, reconstruction error and
examples/s (an observer); for batch jobs, a plain bar. When the output is not a terminal (a
batch job's log, CI) the bars give way to plain lines: one per epoch, one every
``PLAIN_EVERY`` seconds within a long epoch or job, and one at the end."""

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

#: seconds between two plain progress lines within an epoch (or a batch job)
PLAIN_EVERY = 60.0


def _clock(seconds: float) -> str:
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class TrainingProgress(Observer):
    """``plain``: lines instead of the bar (default: when the console is not a terminal)."""

    def __init__(self, console: Console | None = None, plain: bool | None = None) -> None:
        console = console or Console(emoji=False)
        self.console = console
        self.plain = not console.is_terminal if plain is None else plain
        self._said = 0.0  # when the last plain line was printed
        self._done = 0    # batches done in this invocation
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
        self.remaining = remaining
        self._t0 = self._said = time.perf_counter()
        self._seen = self._done = 0
        if self.plain:
            self.task = "plain"  # lines instead of the bar
            return
        self.progress.start()
        self.task = self.progress.add_task("train", total=remaining, epoch="-", loss="-",
                                           mse="-", speed="")

    def on_batch(self, event: BatchEvent) -> None:
        epoch, stats = event.epoch, event.stats
        self._seen += stats.examples
        self._done += 1
        now = time.perf_counter()
        rate = self._seen / max(1e-9, now - self._t0)
        if self.plain:
            if now - self._said >= PLAIN_EVERY:
                self._line(f"epoch {epoch}/{self.total_epochs} batch {stats.batch}/"
                           f"{self.batches}", event.step, stats.loss, stats.mse, rate, now)
            return
        self.progress.update(self.task, advance=1, epoch=f"{epoch}/{self.total_epochs}",
                             loss=f"{stats.loss:.1f}", mse=f"{stats.mse:.4f}",
                             speed=f"{rate:.0f} ex/s")

    def on_epoch(self, event: EpochEvent) -> None:
        if self.plain:
            row = event.row
            rate = self._seen / max(1e-9, time.perf_counter() - self._t0)
            self._line(f"epoch {event.epoch}/{self.total_epochs} done", event.step,
                       float(row["loss"]), float(row["train_mse"]), rate,
                       time.perf_counter())
            return
        self.progress.update(self.task, mse=f"{event.row['train_mse']:.4f}")

    def _line(self, where: str, step: int, loss: float, mse: float, rate: float,
              now: float) -> None:
        """One plain line: where, step, loss, error, examples/s, time taken and left."""
        spent = now - self._t0
        left = spent / self._done * (self.remaining - self._done) if self._done else 0.0
        self.console.print(f"{where}  step {step}  loss {loss:.1f}  mse {mse:.5f}  "
                           f"{rate:.0f} ex/s  {_clock(spent)} spent  {_clock(left)} left",
                           highlight=False, soft_wrap=True)
        self._said = now

    def close(self) -> None:
        # The display starts only once training starts, so input errors print nothing here.
        if self.task is not None and not self.plain:
            self.progress.stop()
            self.task = None


class BatchProgress:
    """A bar for batch jobs (synthesis of many files), shown once the first batch is done;
    ``plain`` (default: when the console is not a terminal): a line every ``PLAIN_EVERY``
    seconds and one at the end."""

    def __init__(self, console: Console, label: str, total: int,
                 plain: bool | None = None) -> None:
        self.progress = Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TimeRemainingColumn(), console=console)
        self.console, self.label, self.total = console, label, total
        self.plain = not console.is_terminal if plain is None else plain
        self.task: Any = None
        self._t0 = self._said = time.perf_counter()

    def __enter__(self) -> BatchProgress:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.task is not None and not self.plain:
            self.progress.stop()

    def update(self, done: int, total: int) -> None:
        if self.plain:
            now = time.perf_counter()
            if now - self._said >= PLAIN_EVERY or done >= total:
                spent = now - self._t0
                left = spent / done * (total - done) if done else 0.0
                self.console.print(f"{self.label}: {done}/{total} ({100 * done / total:.0f} %)"
                                   f"  {done / max(1e-9, spent):.1f} /s  {_clock(spent)} spent"
                                   f"  {_clock(left)} left", highlight=False, soft_wrap=True)
                self._said = now
            return
        if self.task is None:
            self.progress.start()
            self.task = self.progress.add_task("batch", total=total)
        self.progress.update(self.task, completed=done)


class Heartbeat:
    """For a job that cannot say how far it is (``prepare`` decodes inside the modality's
    reader): in a log (not a terminal), a line every ``PLAIN_EVERY`` seconds that it still
    runs; in a terminal, nothing."""

    def __init__(self, console: Console, label: str, plain: bool | None = None) -> None:
        import threading

        self.console, self.label = console, label
        self.plain = not console.is_terminal if plain is None else plain
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._t0 = time.perf_counter()

    def _beat(self) -> None:
        while not self._stop.wait(PLAIN_EVERY):
            self.console.print(f"{self.label}: still working, "
                               f"{_clock(time.perf_counter() - self._t0)} spent",
                               highlight=False, soft_wrap=True)

    def __enter__(self) -> Heartbeat:
        if self.plain:
            self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


def _precision_note(asked: str, context: Any) -> str:
    """", bf16" and, for --precision auto, what it chose and why (fp32 asked goes unsaid)."""
    if asked == "fp32":
        return ""
    note = f", {context.precision}"
    return note + (f" ({escape(context.precision_reason)})" if asked == "auto" else "")
