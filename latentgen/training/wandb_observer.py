"""Weights & Biases as an observer of training, registered the way a plugin registers one (an
entry point of latentgen's own): ``--observer wandb`` (``pip install 'latentgen[wandb]'``).

The module is not named ``wandb`` so that it never shadows the package."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from latentgen.data import need
from latentgen.plugins.hookspecs import hookimpl
from latentgen.training.observers import (
    BatchEvent,
    EndEvent,
    EpochEvent,
    Observer,
    SamplesEvent,
    StartEvent,
    numeric_columns,
)

if TYPE_CHECKING:
    from latentgen.assembly.config import TrainConfig

#: the project of a run when ``WANDB_PROJECT`` is not set
DEFAULT_PROJECT = "latentgen"


class WandB(Observer):
    """A W&B run (``pip install 'latentgen[wandb]'``): project ``$WANDB_PROJECT`` (else
    ``latentgen``), named after the run folder, its files under ``RUN/wandb/``, the resolved
    settings as its config. Logs ``batch/loss`` and ``batch/mse`` against ``step`` (the ABP
    iteration), every metrics column as ``epoch/NAME`` against ``epoch``, and each fixed-noise
    sample grid's picture as the image ``samples``. W&B's own variables apply
    (``WANDB_MODE=offline``, ``WANDB_ENTITY``, ...)."""

    def __init__(self, run_dir: Path) -> None:
        self.wandb = need("wandb", "`observers` wandb", "wandb")
        self.run_dir = run_dir
        self.run: Any = None
        self.ended = False

    def on_start(self, event: StartEvent) -> None:
        wandb = self.wandb
        context = event.context
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT,
                              name=self.run_dir.name, dir=str(self.run_dir),
                              config=context.config.to_dict())
        self.run.define_metric("step")
        self.run.define_metric("epoch")
        self.run.define_metric("batch/*", step_metric="step")
        self.run.define_metric("epoch/*", step_metric="epoch")
        self.run.define_metric("samples", step_metric="epoch")

    def on_batch(self, event: BatchEvent) -> None:
        self.run.log({"batch/loss": event.stats.loss, "batch/mse": event.stats.mse,
                      "step": event.step})

    def on_epoch(self, event: EpochEvent) -> None:
        self.run.log({**{f"epoch/{k}": v for k, v in numeric_columns(event.row).items()},
                      "epoch": event.epoch, "step": event.step})

    def on_samples(self, event: SamplesEvent) -> None:
        picture = event.picture
        if picture is not None:
            self.run.log({"samples": self.wandb.Image(str(picture),
                                                      caption=f"epoch {event.epoch}"),
                          "epoch": event.epoch, "step": event.step})

    def on_end(self, event: EndEvent) -> None:
        self.ended = True

    def close(self) -> None:
        if self.run is not None:
            self.run.finish(exit_code=0 if self.ended else 1)
            self.run = None


def wandb_observer(run_dir: Path, config: TrainConfig) -> Observer:
    return WandB(run_dir)


@hookimpl
def register_observers(register: Callable) -> None:
    register("wandb", wandb_observer)
