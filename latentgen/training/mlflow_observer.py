"""MLflow as an observer of training, registered the way a plugin registers one (an entry point
of latentgen's own): ``--observer mlflow`` (``pip install 'latentgen[mlflow]'``).

The module is not named ``mlflow`` so that it never shadows the package."""

from __future__ import annotations

import os
import time
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

#: the experiment of a run when ``MLFLOW_EXPERIMENT_NAME`` is not set
DEFAULT_EXPERIMENT = "latentgen"
#: the longest parameter value MLflow stores
MAX_PARAM = 6000


def flatten(values: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested settings as ``a.b`` -> str(value); None is left out."""
    flat: dict[str, str] = {}
    for key, value in values.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "."))
        elif value is not None:
            flat[name] = str(value)[:MAX_PARAM]
    return flat


class MLflow(Observer):
    """An MLflow run (``pip install 'latentgen[mlflow]'``) tracked at ``$MLFLOW_TRACKING_URI``,
    else in the file store ``RUN/mlruns``; experiment ``$MLFLOW_EXPERIMENT_NAME`` (else
    ``latentgen``), named after the run folder. Logs the resolved settings as parameters
    (flattened: ``modality_options.channels``), ``batch/loss`` and ``batch/mse`` at each ABP
    iteration's step, every metrics column as ``epoch/NAME`` at the epoch, and the files of each
    fixed-noise sample grid as artifacts under ``samples/``. The run ends FINISHED, or FAILED
    when training stopped on an error. MLflow 3 keeps file stores in maintenance mode and
    refuses them unless ``MLFLOW_ALLOW_FILE_STORE`` is true: with no tracking URI given, the
    observer sets it (when unset) for the process, since ``RUN/mlruns`` is a store of its own
    (a database store would take seconds to create for every run)."""

    def __init__(self, run_dir: Path) -> None:
        need("mlflow", "`observers` mlflow", "mlflow")
        from mlflow.tracking import MlflowClient

        self.run_dir = run_dir
        self._client_cls = MlflowClient
        self.client: Any = None
        self.run_id: str | None = None
        self.ended = False

    def on_start(self, event: StartEvent) -> None:
        uri = os.environ.get("MLFLOW_TRACKING_URI")
        if not uri:
            uri = (self.run_dir / "mlruns").resolve().as_uri()
            os.environ.setdefault("MLFLOW_ALLOW_FILE_STORE", "true")
        client = self.client = self._client_cls(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or DEFAULT_EXPERIMENT
        found = client.get_experiment_by_name(name)
        experiment = found.experiment_id if found is not None else client.create_experiment(name)
        run = client.create_run(experiment, run_name=self.run_dir.name,
                                tags={"latentgen.run_dir": str(self.run_dir)})
        self.run_id = run.info.run_id
        from mlflow.entities import Param

        params = [Param(k, v) for k, v in flatten(event.context.config.to_dict()).items()]
        for i in range(0, len(params), 100):  # MLflow takes at most 100 params a call
            client.log_batch(self.run_id, params=params[i:i + 100])

    def _metrics(self, values: dict[str, float], step: int) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[Metric(k, float(v), now, step)
                                                    for k, v in values.items()])

    def on_batch(self, event: BatchEvent) -> None:
        self._metrics({"batch/loss": event.stats.loss, "batch/mse": event.stats.mse},
                      event.step)

    def on_epoch(self, event: EpochEvent) -> None:
        self._metrics({f"epoch/{k}": v for k, v in numeric_columns(event.row).items()}, event.epoch)

    def on_samples(self, event: SamplesEvent) -> None:
        for path in event.paths:
            self.client.log_artifact(self.run_id, str(path), artifact_path="samples")

    def on_end(self, event: EndEvent) -> None:
        self.ended = True

    def close(self) -> None:
        if self.run_id is not None:
            self.client.set_terminated(self.run_id, "FINISHED" if self.ended else "FAILED")
            self.run_id = None


def mlflow_observer(run_dir: Path, config: TrainConfig) -> Observer:
    return MLflow(run_dir)


@hookimpl
def register_observers(register: Callable) -> None:
    register("mlflow", mlflow_observer)
