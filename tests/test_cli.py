"""The command line end to end on tiny data, and its one-line errors for bad input."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from .conftest import TINY_TRAIN


def test_help_lists_every_command(cli):
    res = cli("--help")
    assert res.code == 0
    for cmd in ("train", "synthesize", "reconstruct", "interpolate", "evaluate", "plugins"):
        assert cmd in res.out
    res = cli("train", "--help")
    assert "--image-size" in res.out and "Modality options" in res.out


def test_train_writes_a_complete_run_directory(trained_run):
    assert (trained_run / "config.toml").exists()
    assert (trained_run / "checkpoints" / "last.pt").exists()
    rows = (trained_run / "metrics.csv").read_text().strip().splitlines()
    assert rows[0].startswith("epoch,") and len(rows) == 4
    grids = sorted((trained_run / "samples").glob("*.png"))
    assert grids and Image.open(grids[-1]).size[0] > 16


def test_synthesize(trained_run, cli, tmp_path):
    res = cli("synthesize", trained_run, "--n", "10", "--out", tmp_path / "syn")
    assert res.code == 0, res
    files = sorted((tmp_path / "syn").glob("sample_*.png"))
    assert len(files) == 10
    img = Image.open(files[0])
    assert img.size == (16, 16) and img.mode == "L"
    Image.open(tmp_path / "syn" / "grid.png").verify()


def test_reconstruct_training_data_and_new_data(trained_run, tiny_data, cli, tmp_path):
    res = cli("reconstruct", trained_run, "--out", tmp_path / "rec", "--n", "8")
    assert res.code == 0, res
    assert len(list((tmp_path / "rec").glob("original_*.png"))) == 8
    assert len(list((tmp_path / "rec").glob("reconstruction_*.png"))) == 8
    res = cli("reconstruct", trained_run, "--data", tiny_data["test"], "--out", tmp_path / "rec2",
              "--n", "4", "--infer-steps", "20")
    assert res.code == 0, res
    Image.open(tmp_path / "rec2" / "grid.png").verify()


def test_interpolate(trained_run, tiny_data, cli, tmp_path):
    res = cli("interpolate", trained_run, "--data", tiny_data["test"], "--out", tmp_path / "int",
              "--steps", "4", "--pairs", "2", "--infer-steps", "20")
    assert res.code == 0, res
    grid = Image.open(tmp_path / "int" / "grid.png")
    # 2 rows of (original, 5 interpolants, original), 16 px + 2 px padding, enlarged x2
    assert grid.size == (2 * (7 * 18 + 2), 2 * (2 * 18 + 2))
    assert len(list((tmp_path / "int").glob("pair00_step_*.png"))) == 7


def test_evaluate_json(trained_run, tiny_data, cli):
    res = cli("evaluate", trained_run, "--test-data", tiny_data["test"], "--negative-data",
              tiny_data["negative"], "--infer-steps", "30", "--json")
    assert res.code == 0, res
    result = json.loads(res.out)
    assert set(result) == {"train", "test", "negative", "pca", "regime", "latents", "anomaly"}
    gap = result["latents"]
    assert {"mean_distance", "cov_eig_min", "cov_eig_max", "kl", "mmd", "mmd_threshold",
            "matches", "n"} <= set(gap)
    assert gap["cov_eig_min"] <= gap["cov_eig_max"] and gap["kl"] >= 0
    assert result["train"]["n"] == 128 and result["test"]["n"] == 32
    for name in ("train", "test", "negative"):
        assert 0 <= result[name]["mse"] < 1
        assert 0 < result["pca"][name] < 1
    assert result["regime"]["verdict"] in ("over-fitting", "good fit", "under-fitting")


def test_evaluate_table(trained_run, cli):
    res = cli("evaluate", trained_run)
    assert res.code == 0 and "train" in res.out and "MSE" in res.out


def test_config_file_and_resume(tiny_data, cli, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'data = "{tiny_data["train"]}"\nepochs = 1\nlatent_dim = 3\n'
                   "[modality_options]\nimage_size = 16\nchannels = 1\nwidth = 8\n")
    run = tmp_path / "run"
    res = cli("train", "--config", cfg, "--latent-dim", "5", "--langevin-steps", "2",
              "--device", "cpu", "--out", run)
    assert res.code == 0, res
    text = (run / "config.toml").read_text()
    assert "latent_dim = 5" in text and "epochs = 1" in text
    assert f'data = "{tiny_data["train"].resolve()}"' in text
    res = cli("train", "--out", run, "--resume", "--epochs", "2")
    assert res.code == 0, res
    assert len((run / "metrics.csv").read_text().strip().splitlines()) == 3
    res = cli("train", "--out", run, "--resume", "--lr", "0.1")
    assert res.code == 2 and "--lr cannot change" in res.err


@pytest.mark.parametrize("case", ["missing", "empty", "corrupt", "modality", "size", "channels",
                                  "epochs", "device", "exists", "resume-nothing"])
def test_bad_training_input_is_one_line_and_writes_nothing(case, cli, tmp_path, trained_run,
                                                           tiny_data):
    empty = tmp_path / "empty"
    empty.mkdir()
    corrupt = tmp_path / "corrupt"
    corrupt.mkdir()
    Image.new("L", (16, 16)).save(corrupt / "a.png")
    (corrupt / "b.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    data = ["--data", tiny_data["train"]]
    args = {
        "missing": ["--data", tmp_path / "nope"],
        "empty": ["--data", empty],
        "corrupt": ["--data", corrupt],
        "modality": data + ["--modality", "smell"],
        "size": data + ["--image-size", "33"],
        "channels": data + ["--channels", "2"],
        "epochs": data + ["--epochs", "0"],
        "device": data + ["--device", "tpu"],
        "exists": data + ["--out", trained_run],
        "resume-nothing": ["--resume"],
    }[case]
    if "--out" not in args:
        args += ["--out", out]
    res = cli("train", *[a for a in TINY_TRAIN if a not in ("--image-size", "16", "--channels",
                                                            "1")], *args)
    assert res.code == 2, res
    lines = [line for line in res.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), res.err
    assert "Traceback" not in res.err
    assert not out.exists()
    if case == "corrupt":
        assert "b.png" in res.err


@pytest.mark.parametrize("verb", ["synthesize", "reconstruct", "interpolate", "evaluate"])
def test_run_dir_without_checkpoint(verb, cli, tmp_path):
    (tmp_path / "notarun").mkdir()
    extra = [] if verb == "evaluate" else ["--out", tmp_path / "o"]
    res = cli(verb, tmp_path / "notarun", *extra)
    assert res.code == 2 and "holds no checkpoint" in res.err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("args", [
    ["reconstruct", "--n", "0"], ["synthesize", "--batch-size", "0"],
    ["synthesize", "--device", "tpu"], ["interpolate", "--infer-steps", "-1"],
    ["evaluate", "--infer-steps", "-1"]])
def test_bad_verb_options_are_one_line_errors(args, trained_run, cli, tmp_path):
    verb, *rest = args
    out = [] if verb == "evaluate" else ["--out", tmp_path / "o"]
    res = cli(verb, trained_run, *rest, *out)
    assert res.code == 2 and res.err.startswith("error:") and "Traceback" not in res.err, res
    assert not (tmp_path / "o").exists()


def test_more_bad_training_input(tiny_data, trained_run, cli, tmp_path):
    afile = tmp_path / "afile"
    afile.write_text("x")
    base = ["train", "--data", tiny_data["train"], *TINY_TRAIN]
    res = cli(*base, "--out", afile / "sub")
    assert res.code == 2 and "is a file" in res.err
    res = cli(*base, "--config", tmp_path, "--out", tmp_path / "o")
    assert res.code == 2 and "cannot read config file" in res.err
    bad = tmp_path / "bad.toml"
    bad.write_text("[modality_options]\nwidth = \"a\"\n")
    res = cli("train", "--data", tiny_data["train"], "--config", bad, "--out", tmp_path / "o")
    assert res.code == 2 and "--width must be int" in res.err
    res = cli("train", "--out", trained_run, "--resume", "--epochs", "1")
    assert res.code == 2 and "already has 3 epochs" in res.err
    assert not (tmp_path / "o").exists()


def test_bad_data_for_a_verb_writes_nothing(trained_run, cli, tmp_path):
    res = cli("reconstruct", trained_run, "--data", tmp_path / "missing.npy", "--out",
              tmp_path / "o")
    assert res.code == 2 and "does not exist" in res.err
    res = cli("synthesize", trained_run, "--n", "0", "--out", tmp_path / "o")
    assert res.code == 2
    assert not (tmp_path / "o").exists()


def test_python_dash_m_runs_the_cli():
    import subprocess
    import sys

    res = subprocess.run([sys.executable, "-m", "latentgen", "--help"], capture_output=True,
                         text=True, timeout=120)
    assert res.returncode == 0 and "synthesize" in res.stdout
