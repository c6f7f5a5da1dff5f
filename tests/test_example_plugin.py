"""The documented example plugin (docs/examples/latentgen-example-plugin) through
``latentgen.testing`` and the CLI: its data packs with `latentgen prepare` and trains."""

from __future__ import annotations

import dataclasses
import json

import numpy as np

from latentgen.plugins.registry import get_registry
from latentgen.testing import check_modality

TINY = ["--latent-dim", "2", "--batch-size", "32", "--langevin-steps", "2", "--device", "cpu"]


def test_example_plugin_passes_latentgen_testing(example_plugin, tmp_path):
    check_modality(get_registry().modality("waves"), tmp_path)


def test_example_plugin_imports_only_the_stable_api(example_plugin):
    import ast
    import inspect

    stable = {"latentgen", "latentgen.data", "latentgen.model"}
    tree = ast.parse(inspect.getsource(example_plugin))
    used = {node.module for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("latentgen")}
    used |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import)
             for alias in node.names if alias.name.startswith("latentgen")}
    assert used and used <= stable, used - stable


def test_example_plugin_data_is_prepared_and_trained_from_the_cli(example_plugin, cli,
                                                                  tmp_path):
    # the options this test relies on are the ones the modality declares
    declared = {f.name for f in dataclasses.fields(get_registry().modality("waves").Options)}
    assert {"length", "count"} <= declared
    packed = tmp_path / "waves.f32"
    res = cli("prepare", "--modality", "waves", "--length", "32", "--count", "64",
              "--out", packed, "--json")
    assert res.code == 0, res
    result = json.loads(res.out)
    assert result["examples"] == 64 and result["shape"] == [64, 1, 32]
    meta = json.loads((tmp_path / "waves.f32.json").read_text())
    assert meta["decode"] == "latentgen_waves:decode"
    assert meta["modality"] == "waves" and meta["modality_options"] == {"length": 32,
                                                                       "count": 64}
    assert packed.stat().st_size == 64 * 32 * np.dtype(meta["dtype"]).itemsize

    run = tmp_path / "run"
    res = cli("train", "--data", packed, "--epochs", "1", *TINY, "--out", run)
    assert res.code == 0, res
    config = (run / "config.toml").read_text()
    # the modality and its options come from the prepared file
    assert 'modality = "waves"' in config and "length = 32" in config
    events = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    start = next(e for e in events if e["event"] == "start")
    assert start["modality"] == "waves" and start["examples"] == 64
    epochs = [e for e in events if e["event"] == "epoch"]
    assert [e["epoch"] for e in epochs] == [1] and epochs[0]["step"] == 2  # 64 / 32 batches
    assert np.isfinite(epochs[0]["loss"]) and np.isfinite(epochs[0]["train_mse"])
    assert (run / "checkpoints" / "last.pt").is_file()
