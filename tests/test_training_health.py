"""A run that stops learning stops with one line: the data's variance as the error to beat."""

from __future__ import annotations

import torch

from latentgen.assembly.rundir import RunDir
from latentgen.data.examples import Examples
from latentgen.model.observation import GaussianObservation
from latentgen.training.health import GRACE_EPOCHS, GRACE_STEPS, collapse, data_variance
from latentgen_image.faces import DEFAULT_COUNT


def test_the_data_variance_is_the_error_of_the_mean_example():
    x = torch.rand(300, 2, 5, 5) * 2 - 1
    data = Examples(x, lambda b: b, "memory")
    mean_error = (x - x.mean(0)).pow(2).mean()
    assert abs(data_variance(data, GaussianObservation(0.3)) - float(mean_error)) < 1e-6


def test_collapse_is_judged_after_the_grace_epochs_against_the_variance():
    assert collapse(GRACE_EPOCHS - 1, 1000, 0.5, 0.1) is None  # random latents: not yet
    assert collapse(GRACE_EPOCHS, GRACE_STEPS - 1, 0.5, 0.1) is None  # a few steps: not yet
    assert collapse(GRACE_EPOCHS, GRACE_STEPS, 0.09, 0.1) is None  # below the mean: learning
    said = collapse(GRACE_EPOCHS, GRACE_STEPS, 0.1, 0.1)
    assert said is not None and "variance 0.1" in said


def test_a_collapsed_run_stops_with_one_line_and_keeps_the_last_checkpoint(cli, tmp_path):
    # a Langevin step far too large: every move is rejected, the latents never leave their
    # prior draws and the generator can only learn the mean face
    run = tmp_path / "run"
    res = cli("train", "--modality", "image", "--image-size", "16", "--step-size", "30",
              "--batch-size", "32", "--epochs", "12", "--out", run)
    assert res.code != 0
    lines = res.err.strip().splitlines()
    assert len(lines) == 1, res.err
    # judged once both graces have passed
    judged = max(GRACE_EPOCHS, -(-GRACE_STEPS // -(-DEFAULT_COUNT // 32)))
    assert f"training collapsed in epoch {judged}" in lines[0]
    assert "--step-size (now 30)" in lines[0] and "last.pt" in lines[0]
    state = RunDir(run).load_checkpoint()
    assert state is not None and state["epoch"] == judged - 1
    assert len(RunDir(run).read_metrics()) == judged - 1
