"""Progress for a log file: when the output is not a terminal, plain lines (one per epoch, one
every PLAIN_EVERY seconds within a long epoch or batch job) instead of the progress bars."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time

from rich.console import Console

import latentgen
from latentgen_cli import progress
from tests.conftest import TINY_TRAIN


def test_training_into_a_file_writes_a_line_per_epoch(tiny_data, tmp_path):
    log = tmp_path / "train.log"
    with open(log, "w") as fh:
        done = subprocess.run([sys.executable, "-m", "latentgen", "train", "--data",
                               str(tiny_data["train"]), "--out", str(tmp_path / "run"),
                               "--epochs", "3", *TINY_TRAIN], stdout=fh,
                              stderr=subprocess.STDOUT, env={**os.environ, "COLUMNS": "200"})
    text = log.read_text()
    assert done.returncode == 0, text
    lines = [line for line in text.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"], text
    for line in lines:  # step, loss, error, speed and time left, as plain text
        assert all(word in line for word in ("step", "loss", "mse", "ex/s", "left")), line
    assert "\x1b[" not in text and "━" not in text  # no colour codes, no bar


def test_long_epochs_and_batch_jobs_say_how_far_they_are(tiny_data, tmp_path, monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.0)  # a line after every batch
    out = io.StringIO()
    shown = progress.TrainingProgress(Console(file=out, width=200), plain=True)
    latentgen.train(data=str(tiny_data["train"]), out=tmp_path / "run", epochs=1,
                    image_size=16, channels=1, latent_dim=4, batch_size=32, langevin_steps=2,
                    width=8, device="cpu", observers=[shown])
    lines = out.getvalue().splitlines()
    within = [line for line in lines if " batch " in line]
    assert [line.split()[3] for line in within] == ["1/4", "2/4", "3/4", "4/4"], lines
    assert lines[-1].startswith("epoch 1/1 done") and "0:00 left" in lines[-1]
    out = io.StringIO()
    job = progress.BatchProgress(Console(file=out, width=200), "synthesize", 10, plain=True)
    with job:
        for done in (4, 8, 10):
            job.update(done, 10)
    said = out.getvalue().splitlines()
    assert [line.split()[1] for line in said] == ["4/10", "8/10", "10/10"]
    assert said[-1].startswith("synthesize: 10/10 (100 %)")


def test_evaluate_into_a_log_says_each_measure(trained_run, tmp_path):
    args = [sys.executable, "-m", "latentgen", "evaluate", str(trained_run), "--train-examples",
            "8", "--infer-steps", "2"]
    done = subprocess.run(args, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    said = [line.split()[1] for line in done.stdout.splitlines()
            if line.startswith("evaluate:")]
    assert said == ["reconstruction", "latents"], done.stdout
    assert "reconstruction error" in done.stdout  # the tables follow
    done = subprocess.run([*args, "--json"], capture_output=True, text=True)
    assert sorted(json.loads(done.stdout)) == ["latents", "pca", "train"]  # the JSON alone
    assert done.stderr == ""


def test_a_job_that_cannot_say_how_far_it_is_says_it_runs(monkeypatch):
    monkeypatch.setattr(progress, "PLAIN_EVERY", 0.05)
    out = io.StringIO()
    with progress.Heartbeat(Console(file=out, width=200), "prepare", plain=True):
        time.sleep(0.3)
    said = out.getvalue().splitlines()
    assert len(said) >= 2 and all(line.startswith("prepare: still working, 0:00 spent")
                                  for line in said), said
    out = io.StringIO()
    with progress.Heartbeat(Console(file=out, width=200), "prepare", plain=False):
        time.sleep(0.1)
    assert out.getvalue() == ""  # a terminal: nothing
