"""Measures are plain registered functions: a new one is one function and one registration, and
appears in `evaluate --json`, the terminal and the report with no other edit. Errors name the
setting: the command line shows its flag, the Python API the argument."""

from __future__ import annotations

import json

import pytest

import latentgen
from latentgen import UserError
from latentgen.measures.registry import MEASURES


@pytest.fixture
def norms_measure():
    """A measure registered the way a plugin or a user registers one, removed afterwards."""

    @latentgen.register_measure("latent_norms", title="Latent norms")
    def latent_norms(trained, request):
        norms = trained.latents.flatten(1).norm(dim=1)
        return {"latent_norms": {"mean": float(norms.mean()), "n": len(norms),
                                 "seed": request.seed, "unit": request.options.get("unit")}}

    yield latent_norms
    MEASURES.pop("latent_norms", None)


def test_a_new_measure_shows_in_json_terminal_and_report(norms_measure, cli, trained_run,
                                                          tiny_data, tmp_path):
    res = cli("evaluate", trained_run, "--measure", "latent_norms", "--seed", "7",
              "--measure-option", "unit=nats", "--train-examples", "16", "--infer-steps", "2",
              "--json")
    assert res.code == 0, res.err
    found = json.loads(res.out)
    assert found["latent_norms"]["n"] == 128 and found["latent_norms"]["seed"] == 7
    assert found["latent_norms"]["unit"] == "nats"
    assert "train" in found and "latents" in found  # the default measures still run
    res = cli("evaluate", trained_run, "--measure", "latent_norms", "--train-examples", "16",
              "--infer-steps", "2")
    assert res.code == 0 and "Latent norms" in res.out and "mean" in res.out
    out = tmp_path / "report.html"
    res = cli("report", trained_run, "--test-data", tiny_data["test"], "--infer-steps", "2",
              "--out", out)
    assert res.code == 0, res.err
    page = out.read_text()
    assert "<h2>Latent norms</h2>" in page and "Latent norms" in res.out


def test_measures_run_in_registration_order_and_unknown_names_are_refused(trained_run):
    run = latentgen.load_run(trained_run, "cpu")
    names = latentgen.measure_names()
    assert names[:4] == ["reconstruction", "latents", "nll", "synthesis"]
    found = run.evaluate(["latents", "reconstruction"], train_examples=8, infer_steps=1)
    assert list(found)[:2] == ["train", "pca"] and list(found)[-1] == "latents"
    with pytest.raises(UserError, match=r"^`measures`: no measure named 'nope'"):
        run.evaluate(["nope"])
    with pytest.raises(UserError, match="evaluate: no option synthesis"):
        run.evaluate(synthesis=True)


def test_the_same_name_cannot_be_taken_twice(norms_measure):
    with pytest.raises(ValueError, match="registered already"):
        latentgen.register_measure("latent_norms", title="x")(lambda trained, request: {})
    # the same function defined again replaces its registration
    latentgen.register_measure("latent_norms", title="again")(norms_measure)
    assert MEASURES["latent_norms"].title == "again"


def test_errors_name_the_setting_for_python_and_the_flag_for_the_cli(trained_run, cli):
    run = latentgen.load_run(trained_run, "cpu")
    with pytest.raises(UserError, match=r"^`infer_steps` must be 0 or more, got -1$"):
        run.evaluate(infer_steps=-1)
    res = cli("evaluate", trained_run, "--infer-steps", "-1")
    assert res.code == 2 and "--infer-steps must be 0 or more, got -1" in res.err
    assert "`" not in res.err
    with pytest.raises(UserError, match=r"`nll` needs held-out data: give `test_data`"):
        run.evaluate(["nll"])
    res = cli("evaluate", trained_run, "--nll")
    assert res.code == 2 and "--nll needs held-out data: give --test-data" in res.err
