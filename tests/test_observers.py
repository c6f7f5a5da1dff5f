"""Observers of training: the built-in metrics writers, TensorBoard, and one a plugin adds."""

from __future__ import annotations

import csv
import json
import sys
import tomllib

import pytest

import latentgen
from latentgen import UserError, hookimpl
from latentgen.plugins.registry import register_plugin, unregister_plugin

from .conftest import TINY_TRAIN

TINY = dict(image_size=16, channels=1, width=8, latent_dim=4, batch_size=32, langevin_steps=2,
            device="cpu")


class Recorder(latentgen.Observer):
    def __init__(self):
        self.events = []

    def on_start(self, event):
        self.events.append(("start", event.start_epoch, event.total_batches))

    def on_batch(self, event):
        self.events.append(("batch", event.epoch, event.step))

    def on_epoch(self, event):
        self.events.append(("epoch", event.epoch, dict(event.row)))

    def on_checkpoint(self, event):
        self.events.append(("checkpoint", event.epoch, event.path.name))

    def on_end(self, event):
        self.events.append(("end", event.epoch, event.step))

    def close(self):
        self.events.append(("close",))


def test_events_arrive_in_order_and_match_the_metrics(tiny_data, tmp_path):
    rec = Recorder()
    latentgen.train(data=str(tiny_data["train"]), epochs=2, out=tmp_path / "r", observers=[rec],
                    test_data=str(tiny_data["test"]), eval_every=2, eval_steps=3, **TINY)
    kinds = [e[0] for e in rec.events]
    assert kinds == ["start"] + (["batch"] * 4 + ["epoch", "checkpoint"]) * 2 + ["end", "close"]
    assert rec.events[0] == ("start", 0, 8)
    assert [e[2] for e in rec.events if e[0] == "batch"] == list(range(1, 9))
    with open(tmp_path / "r" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    epochs = [e[2] for e in rec.events if e[0] == "epoch"]
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    # the curves observer ran first: its column is in the row the observers saw and in the CSV
    assert "test_mse" in epochs[1] and rows[1]["test_mse"] not in ("", None)
    assert float(rows[1]["test_mse"]) == pytest.approx(epochs[1]["test_mse"])

    lines = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [x["event"] for x in lines] == [e for e in kinds if e != "close"]
    jsonl_epochs = [x for x in lines if x["event"] == "epoch"]
    assert [x["train_mse"] for x in jsonl_epochs] == [float(r["train_mse"]) for r in rows]
    assert lines[-1] == {"event": "end", "step": 8, "epoch": 2}


def test_resume_appends_to_the_json_lines(tiny_data, tmp_path):
    latentgen.train(data=str(tiny_data["train"]), epochs=1, out=tmp_path / "r", **TINY)
    latentgen.train(out=tmp_path / "r", resume=True, epochs=2)
    lines = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert [x["event"] for x in lines].count("start") == 2
    assert [x["epoch"] for x in lines if x["event"] == "epoch"] == [1, 2]


def test_tensorboard_observer_writes_events(tiny_data, tmp_path, cli):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    res = cli("train", "--data", tiny_data["train"], "--out", tmp_path / "r", "--epochs", "2",
              "--observer", "tensorboard", *TINY_TRAIN)
    assert res.code == 0, res
    logs = tmp_path / "r" / "tensorboard"
    acc = EventAccumulator(str(logs))
    acc.Reload()
    tags = acc.Tags()["scalars"]
    assert {"batch/loss", "batch/mse", "epoch/train_mse", "epoch/loss"} <= set(tags)
    assert [e.step for e in acc.Scalars("epoch/train_mse")] == [1, 2]
    assert len(acc.Scalars("batch/loss")) == 8
    stored = tomllib.loads((tmp_path / "r" / "config.toml").read_text())
    assert stored["observers"] == ["tensorboard"]


def test_tensorboard_missing_is_one_line_and_writes_nothing(tiny_data, tmp_path, cli,
                                                           monkeypatch):
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # import fails
    res = cli("train", "--data", tiny_data["train"], "--out", tmp_path / "r", "--epochs", "1",
              "--observer", "tensorboard", *TINY_TRAIN)
    assert res.code == 2
    assert "pip install 'latentgen[tensorboard]'" in res.err and len(res.err.splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_unknown_observer_is_refused(tiny_data, tmp_path):
    with pytest.raises(UserError, match="unknown observer 'nope'; available: .*tensorboard"):
        latentgen.train(data=str(tiny_data["train"]), out=tmp_path / "r", observers=["nope"],
                        epochs=1, **TINY)
    assert not (tmp_path / "r").exists()


class _CountingPlugin:
    made: list = []

    class Counter(latentgen.Observer):
        def __init__(self, run_dir):
            self.run_dir, self.batches = run_dir, 0
            _CountingPlugin.made.append(self)

        def on_batch(self, event):
            self.batches += 1

        def on_end(self, event):
            (self.run_dir / "counted.txt").write_text(str(self.batches))

    @staticmethod
    @hookimpl
    def register_observers(register):
        register("counter", lambda run_dir, config: _CountingPlugin.Counter(run_dir))


def test_a_plugin_adds_an_observer_by_name(tiny_data, tmp_path, cli):
    register_plugin(_CountingPlugin, name="counting")
    try:
        res = cli("plugins", "--json")
        info = {p["name"]: p for p in json.loads(res.out)}
        assert info["counting"]["observers"] == ["counter"] and not info["counting"]["error"]
        res = cli("train", "--data", tiny_data["train"], "--out", tmp_path / "r", "--epochs",
                  "1", "--observer", "counter", *TINY_TRAIN)
        assert res.code == 0, res
        assert (tmp_path / "r" / "counted.txt").read_text() == "4"
    finally:
        unregister_plugin("counting")


class _ClashingPlugin:
    @staticmethod
    @hookimpl
    def register_observers(register):
        register("tensorboard", lambda run_dir, config: latentgen.Observer())


def test_a_plugin_cannot_take_a_built_in_observer_name():
    from latentgen.plugins.registry import get_registry

    register_plugin(_ClashingPlugin, name="clash")
    try:
        info = get_registry().plugins["clash"]
        assert info.error and "built into latentgen" in info.error
        assert get_registry().owners["observers:tensorboard"] == "tensorboard"
    finally:
        unregister_plugin("clash")


def test_tensorboard_registers_as_a_built_in_plugin():
    from latentgen.plugins.registry import get_registry

    reg = get_registry()
    assert reg.owners["observers:tensorboard"] in reg.builtin
    assert "tensorboard" in reg.plugins["tensorboard"].observers


def test_none_clears_the_stored_observers_on_resume(tiny_data, tmp_path, cli):
    pytest.importorskip("tensorboard")
    assert cli("train", "--data", tiny_data["train"], "--out", tmp_path / "r", "--epochs", "1",
               "--observer", "tensorboard", *TINY_TRAIN).code == 0
    res = cli("train", "--out", tmp_path / "r", "--resume", "--epochs", "2", "--observer", "none")
    assert res.code == 0, res
    assert tomllib.loads((tmp_path / "r" / "config.toml").read_text())["observers"] == []
