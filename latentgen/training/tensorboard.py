"""TensorBoard as an observer of training, registered the way a plugin registers one (an entry
point of latentgen's own): ``--observer tensorboard`` writes event files to
``RUN/tensorboard/`` (``pip install 'latentgen[tensorboard]'``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentgen.errors import UserError
from latentgen.plugins.hookspecs import hookimpl
from latentgen.training.observers import BatchEvent, EpochEvent, Observer, StartEvent

if TYPE_CHECKING:
    from latentgen.assembly.config import TrainConfig


class TensorBoard(Observer):
    """TensorBoard event files in ``RUN/tensorboard/`` (``pip install 'latentgen[tensorboard]'``):
    loss and MSE per batch, every metrics column per epoch."""

    def __init__(self, log_dir: Path) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise UserError("`observers` tensorboard needs the tensorboard package; install it "
                            "with pip install 'latentgen[tensorboard]' or drop the "
                            "observer") from None
        self.log_dir = log_dir
        self._writer_cls = SummaryWriter
        self.writer: Any = None

    def on_start(self, event: StartEvent) -> None:
        self.writer = self._writer_cls(log_dir=str(self.log_dir))

    def on_batch(self, event: BatchEvent) -> None:
        self.writer.add_scalar("batch/loss", event.stats.loss, event.step)
        self.writer.add_scalar("batch/mse", event.stats.mse, event.step)

    def on_epoch(self, event: EpochEvent) -> None:
        for key, value in event.row.items():
            if key not in ("epoch", "step") and isinstance(value, (int, float)):
                self.writer.add_scalar(f"epoch/{key}", value, event.epoch)
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def tensorboard_observer(run_dir: Path, config: TrainConfig) -> Observer:
    return TensorBoard(run_dir / "tensorboard")


@hookimpl
def register_observers(register: Callable) -> None:
    register("tensorboard", tensorboard_observer)
