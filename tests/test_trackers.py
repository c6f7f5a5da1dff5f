"""Sample grids reach the observers; the experiment trackers (TensorBoard's images, Weights &
Biases, MLflow) record metrics and grids; a missing tracker package is one line."""

from __future__ import annotations

import json
import struct
import sys
from pathlib import Path

import pytest

import latentgen
from latentgen.training.observers import SamplesEvent

from .conftest import TINY_TRAIN

TINY = dict(image_size=16, channels=1, width=8, latent_dim=4, batch_size=32, langevin_steps=2,
            device="cpu")
#: two epochs of four batches, a grid after each
SHORT = ["--epochs", "2", "--sample-every", "1", *TINY_TRAIN]


class Recorder(latentgen.Observer):
    def __init__(self):
        self.events, self.samples = [], []

    def on_epoch(self, event):
        self.events.append(("epoch", event.epoch))

    def on_samples(self, event):
        self.events.append(("samples", event.epoch))
        self.samples.append(event)

    def on_checkpoint(self, event):
        self.events.append(("checkpoint", event.epoch))


def test_sample_grids_reach_observers_after_the_epoch_before_the_checkpoint(tiny_data,
                                                                              tmp_path):
    rec = Recorder()
    latentgen.train(data=str(tiny_data["train"]), out=tmp_path / "r", observers=[rec],
                    epochs=3, sample_every=2, **TINY)
    assert rec.events == [("epoch", 1), ("checkpoint", 1),
                          ("epoch", 2), ("samples", 2), ("checkpoint", 2),
                          ("epoch", 3), ("samples", 3), ("checkpoint", 3)]
    event = rec.samples[0]
    assert isinstance(event, SamplesEvent) and event.step == 8
    assert event.paths == [tmp_path / "r" / "samples" / "epoch_0002.png"]
    assert event.picture == event.paths[0] and event.picture.is_file()
    assert tuple(event.grid.shape) == (8, 8, 1, 16, 16)
    assert event.grid.device.type == "cpu" and float(event.grid.abs().max()) <= 1.0


def test_tensorboard_gets_the_sample_grid_image(tiny_data, tmp_path, cli):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    res = cli("train", "--data", tiny_data["train"], "--out", tmp_path / "r",
              "--observer", "tensorboard", *SHORT)
    assert res.code == 0, res
    acc = EventAccumulator(str(tmp_path / "r" / "tensorboard"))
    acc.Reload()
    assert acc.Tags()["images"] == ["samples"]
    images = acc.Images("samples")
    assert [e.step for e in images] == [1, 2]
    from PIL import Image

    with Image.open(tmp_path / "r" / "samples" / "epoch_0002.png") as png:
        assert (images[-1].width, images[-1].height) == png.size


def test_wandb_offline_records_metrics_and_the_grid(tiny_data, tmp_path, cli, monkeypatch):
    pytest.importorskip("wandb")
    for var in ("WANDB_DIR", "WANDB_CACHE_DIR", "WANDB_CONFIG_DIR", "WANDB_DATA_DIR"):
        monkeypatch.setenv(var, str(tmp_path / "wandb-home"))
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CONSOLE", "off")
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    res = cli("train", "--data", tiny_data["train"], "--out", tmp_path / "r",
              "--observer", "wandb", *SHORT)
    assert res.code == 0, res
    runs = list((tmp_path / "r" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, list((tmp_path / "r").rglob("*"))
    records = list(wandb_records(next(runs[0].glob("run-*.wandb"))))
    (run,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (run.project, run.display_name) == ("latentgen", "r")
    config = {item.key: json.loads(item.value_json) for item in run.config.update}
    assert config["latent_dim"] == 4 and config["observers"] == ["wandb"]
    rows = [{"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in r.history.item}
            for r in records if r.WhichOneof("record_type") == "history"]
    assert [r["step"] for r in rows if "batch/loss" in r] == list(range(1, 9))
    assert [r["epoch"] for r in rows if "epoch/train_mse" in r] == [1, 2]
    images = [r for r in rows if r.get("samples/_type") == "image-file"]
    assert [r["epoch"] for r in images] == [1, 2]
    files = runs[0] / "files"
    assert all((files / r["samples/path"]).is_file() for r in images)
    assert any(r.WhichOneof("record_type") == "exit" and r.exit.exit_code == 0
               for r in records)


def wandb_records(path: Path):
    """The records of an offline W&B run's ``.wandb`` file: a 7-byte header, then a LevelDB-style
    log of 32 KiB blocks whose records (a 7-byte header: crc, length, type) may be split."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    pos, block, pending = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # a block's zero-filled tail
            pos += left
            continue
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        if kind == 0:
            break
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # whole, or the last part
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            pending = b""
            yield record


def test_mlflow_file_store_records_metrics_params_and_grids(tiny_data, tmp_path, cli,
                                                            monkeypatch):
    pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)
    res = cli("train", "--data", tiny_data["train"], "--out", tmp_path / "r",
              "--observer", "mlflow", *SHORT)
    assert res.code == 0, res
    client = MlflowClient(tracking_uri=(tmp_path / "r" / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("latentgen")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "r" and run.info.status == "FINISHED"
    assert run.data.params["latent_dim"] == "4"
    assert run.data.params["modality_options.channels"] == "1"
    history = client.get_metric_history(run.info.run_id, "batch/loss")
    assert [m.step for m in history] == list(range(1, 9))
    assert [m.step for m in client.get_metric_history(run.info.run_id, "epoch/train_mse")
            ] == [1, 2]
    grids = {a.path for a in client.list_artifacts(run.info.run_id, "samples")}
    assert grids == {"samples/epoch_0001.png", "samples/epoch_0002.png"}
    import os

    assert os.environ.pop("MLFLOW_ALLOW_FILE_STORE") == "true"  # set for its own store


@pytest.mark.parametrize("name", ["wandb", "mlflow"])
def test_a_missing_tracker_is_one_line_and_writes_nothing(name, tiny_data, tmp_path, cli,
                                                          monkeypatch):
    monkeypatch.setitem(sys.modules, name, None)  # import fails
    res = cli("train", "--data", tiny_data["train"], "--out", tmp_path / "r",
              "--observer", name, *SHORT)
    assert res.code == 2, res
    assert f"pip install 'latentgen[{name}]'" in res.err, res
    assert len(res.err.strip().splitlines()) == 1, res
    assert f"--observer {name} needs {name}" in res.err, res
    assert not (tmp_path / "r").exists()


def test_the_trackers_register_as_built_in_plugins():
    from latentgen.plugins.registry import get_registry

    reg = get_registry()
    for name in ("tensorboard", "wandb", "mlflow"):
        assert reg.owners[f"observers:{name}"] in reg.builtin
