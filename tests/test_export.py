"""Exported models (`latentgen export`, ``Run.export``): a portable folder of safetensors, JSON
and a model card, loaded back without pickle, giving the same samples as its run."""

from __future__ import annotations

import json
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import latentgen
from latentgen.errors import UserError


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory) -> Path:
    return latentgen.export_run(latentgen.load_run(trained_run, device="cpu"),
                                tmp_path_factory.mktemp("exports") / "tiny")


def _copy(folder: Path, tmp_path: Path, name: str = "copy") -> Path:
    return Path(shutil.copytree(folder, tmp_path / name))


def test_export_reads_with_safetensors_and_json_alone(exported):
    code = (
        "import json, sys\n"
        "from safetensors.torch import load_file\n"
        f"t = load_file({str(exported / 'model.safetensors')!r})\n"
        f"c = json.load(open({str(exported / 'config.json')!r}))\n"
        "assert not any(m.startswith('latentgen') for m in sys.modules)\n"
        "print(json.dumps({'keys': sorted(t), 'latents': list(t['latents'].shape),\n"
        "                  'format': c['format'], 'epoch': c['epoch'],\n"
        "                  'latent_dim': c['latent_dim'], 'version': c['version']}))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert got["format"] == "latentgen-export" and got["epoch"] == 3
    assert got["latent_dim"] == 4 and got["version"] == latentgen.__version__
    assert got["latents"][1:] == [4]
    assert any(k.startswith("generator.") for k in got["keys"])
    assert "observation.sigma" in got["keys"] and "latents" in got["keys"]
    assert {k.split(".")[0] for k in got["keys"]} <= {"generator", "prior", "observation",
                                                      "latents"}
    names = {p.name for p in exported.iterdir()}
    assert {"model.safetensors", "config.json", "README.md", "samples.png",
            "metrics.csv"} <= names
    assert not [n for n in names if n.startswith(".")]


def test_model_card(exported):
    card = (exported / "README.md").read_text()
    assert card.startswith("---\nlibrary_name: latentgen\ntags:\n- latentgen\n")
    command = next(line for line in card.splitlines() if line.startswith("latentgen train"))
    for words in ("--image-size 16", "--channels 1", "--latent-dim 4", "--langevin-steps 5",
                  "--width 8", "--epochs 3", "--modality image"):
        assert words in command
    assert "![samples](samples.png)" in card
    assert "## Measured errors" in card


def test_cli_export_synthesizes_the_same_files(cli, trained_run, tmp_path):
    folder = tmp_path / "shared"
    res = cli("export", trained_run, "--out", folder, "--device", "cpu")
    assert res.code == 0, res.err
    assert "exported epoch 3" in res.out
    a, b = tmp_path / "from-run", tmp_path / "from-export"
    assert cli("synthesize", trained_run, "--n", 8, "--out", a, "--device", "cpu").code == 0
    res = cli("synthesize", folder, "--n", 8, "--out", b, "--device", "cpu")
    assert res.code == 0, res.err
    files = sorted(p.name for p in a.glob("*.png"))
    assert files == sorted(p.name for p in b.glob("*.png")) and len(files) == 9
    for name in files:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def test_loading_an_export_never_unpickles(exported, tmp_path, monkeypatch):
    folder = _copy(exported, tmp_path)
    (folder / "metrics.csv").unlink()

    def refuse(*args, **kwargs):
        raise AssertionError("pickle used")

    monkeypatch.setattr(torch, "load", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "Unpickler", refuse)
    run = latentgen.load_run(folder, device="cpu")
    assert run.exported and run.epoch == 3 and run.metrics() == []
    assert run.synthesize(4).shape == (4, 1, 16, 16)
    assert run.reconstruct(n=2).reconstructions.shape == (2, 1, 16, 16)
    assert set(run.latent_gap()) >= {"kl", "mmd"}


def test_export_of_an_export_is_the_same_model(exported, tmp_path):
    again = latentgen.export_run(latentgen.load_run(exported, device="cpu"), tmp_path / "x")
    from safetensors.torch import load_file

    first, second = load_file(exported / "model.safetensors"), load_file(again /
                                                                          "model.safetensors")
    assert sorted(first) == sorted(second)
    assert all(torch.equal(first[k], second[k]) for k in first)


def test_export_replaces_an_earlier_export_and_refuses_other_folders(exported, tmp_path):
    run = latentgen.load_run(exported, device="cpu")
    out = tmp_path / "out"
    run.export(out)
    (out / "config.json").write_text((out / "config.json").read_text())
    run.export(out)  # an earlier export: replaced whole
    assert (out / "model.safetensors").is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="holds other files"):
        run.export(other)
    assert [p.name for p in other.iterdir()] == ["notes.txt"]


def test_export_onto_a_file_is_one_line(cli, exported, tmp_path):
    target = tmp_path / "file.txt"
    target.write_text("keep")
    res = cli("export", exported, "--out", target, "--device", "cpu")
    assert res.code == 2 and "--out" in res.err and "is a file" in res.err
    assert len(res.err.strip().splitlines()) == 1
    assert target.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file.txt"]


def test_damaged_export_config_is_one_line(cli, exported, tmp_path):
    folder = _copy(exported, tmp_path)
    (folder / "config.json").write_text('{"format": "latentgen-export", "epoch": ')
    out = tmp_path / "samples"
    res = cli("synthesize", folder, "--n", 2, "--out", out, "--device", "cpu")
    assert res.code == 2 and "config.json" in res.err and "damaged" in res.err
    assert len(res.err.strip().splitlines()) == 1
    assert not out.exists()
    (folder / "config.json").write_text('{"format": "something-else"}')
    res = cli("synthesize", folder, "--n", 2, "--out", out, "--device", "cpu")
    assert res.code == 2 and "not the config of a latentgen export" in res.err
    assert not out.exists()


def test_old_style_pickle_checkpoint_is_one_line(cli, trained_run, tmp_path):
    run = tmp_path / "old"
    (run / "checkpoints").mkdir(parents=True)
    shutil.copy(trained_run / "config.toml", run / "config.toml")
    state = torch.load(trained_run / "checkpoints" / "last.pt", weights_only=True)
    torch.save(state, run / "checkpoints" / "last.pt", _use_new_zipfile_serialization=False)
    res = cli("synthesize", run, "--n", 2, "--out", tmp_path / "s", "--device", "cpu")
    assert res.code == 2, res.err
    assert "old-style PyTorch pickle file, not a latentgen checkpoint" in res.err
    assert "mmap" not in res.err and "_use_new_zipfile" not in res.err
    assert len(res.err.strip().splitlines()) == 1


def test_hub_models_load_through_snapshot_download(exported, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    asked = []

    def fake(repo_id, **kwargs):
        asked.append(repo_id)
        return str(exported)

    monkeypatch.setattr(hub, "snapshot_download", fake)
    run = latentgen.load_run("hf://someone/tiny", device="cpu")
    assert asked == ["someone/tiny"] and run.exported
    assert torch.equal(run.synthesize(2), latentgen.load_run(exported, "cpu").synthesize(2))
    with pytest.raises(UserError, match="hf://OWNER/NAME"):
        latentgen.load_run("hf://no-name", device="cpu")


def test_cli_takes_hub_models(cli, exported, tmp_path, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    monkeypatch.setattr(hub, "snapshot_download", lambda repo_id, **kw: str(exported))
    res = cli("synthesize", "hf://someone/tiny", "--n", 2, "--out", tmp_path / "s",
              "--device", "cpu")
    assert res.code == 0, res.err
    assert (tmp_path / "s" / "sample_00001.png").is_file()


def test_hub_without_huggingface_hub_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)
    with pytest.raises(UserError, match=r"latentgen\[hub\]"):
        latentgen.load_run("hf://someone/tiny", device="cpu")


def test_push_uploads_the_export_and_loads_back(cli, trained_run, tmp_path, monkeypatch):
    hub = pytest.importorskip("huggingface_hub")
    remote: dict[str, Path] = {}

    class FakeApi:  # the Hub offline: a repository is a local folder
        def __init__(self, token=None):
            self.token = token

        def create_repo(self, repo_id, repo_type, private, exist_ok):
            assert repo_type == "model" and exist_ok
            remote.setdefault(repo_id, tmp_path / "hub" / repo_id.replace("/", "--"))

        def upload_folder(self, repo_id, folder_path, repo_type, commit_message):
            shutil.copytree(folder_path, remote[repo_id], dirs_exist_ok=True)

    monkeypatch.setattr(hub, "HfApi", FakeApi)
    monkeypatch.setattr(hub, "snapshot_download", lambda repo_id, **kw: str(remote[repo_id]))
    res = cli("export", trained_run, "--out", tmp_path / "e", "--push", "someone/tiny",
              "--device", "cpu")
    assert res.code == 0, res.err
    assert "https://huggingface.co/someone/tiny" in res.out
    pushed = sorted(p.name for p in remote["someone/tiny"].iterdir())
    assert pushed == sorted(p.name for p in (tmp_path / "e").iterdir())
    run = latentgen.load_run(trained_run, "cpu")
    assert run.push_to_hub("someone/other") == "https://huggingface.co/someone/other"
    back = latentgen.load_run("hf://someone/other", "cpu")
    assert torch.equal(back.synthesize(2), run.synthesize(2))
    res = cli("export", trained_run, "--out", tmp_path / "f", "--push", "no-owner",
              "--device", "cpu")
    assert res.code == 2 and "--push no-owner: give a Hugging Face Hub model as OWNER/NAME" \
        in res.err
