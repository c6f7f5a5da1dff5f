"""TensorBoard as an observer of training, registered the way a plugin registers one (an entry
point of latentgen's own): ``--observer tensorboard`` writes event files to
``RUN/tensorboard/`` (``pip install 'latentgen[tensorboard]'``)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentgen.errors import UserError
from latentgen.plugins.hookspecs import hookimpl
from latentgen.training.observers import (
    BatchEvent,
    EpochEvent,
    Observer,
    SamplesEvent,
    StartEvent,
    numeric_columns,
)

if TYPE_CHECKING:
    from latentgen.assembly.config import TrainConfig


class TensorBoard(Observer):
    """TensorBoard event files in ``RUN/tensorboard/`` (``pip install 'latentgen[tensorboard]'``):
    loss and MSE per batch, every metrics column per epoch, and each fixed-noise sample grid as
    the image ``samples`` (step = epoch). The image is the grid's picture as the modality wrote
    it (``SamplesEvent.picture``): the pictures for images, the spectrogram sheet for sound,
    the frame strips for video; TensorBoard's audio and video panels are not used (a grid of
    clips has no one clip to play). A modality that writes no PNG adds no image."""

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
        for key, value in numeric_columns(event.row).items():
            self.writer.add_scalar(f"epoch/{key}", value, event.epoch)
        self.writer.flush()

    def on_samples(self, event: SamplesEvent) -> None:
        picture = event.picture
        if picture is None:
            return
        self.writer.add_image("samples", picture_array(picture), event.epoch,
                              dataformats="HWC")
        self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def picture_array(path: Path) -> Any:
    """The picture at ``path`` as an (H, W, 3) uint8 array."""
    import numpy as np
    from PIL import Image

    with Image.open(path) as img:
        return np.asarray(img.convert("RGB"))


def tensorboard_observer(run_dir: Path, config: TrainConfig) -> Observer:
    return TensorBoard(run_dir / "tensorboard")


@hookimpl
def register_observers(register: Callable) -> None:
    register("tensorboard", tensorboard_observer)
