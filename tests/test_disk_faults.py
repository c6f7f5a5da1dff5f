"""Faults of the disk and of --out: full and read-only disks (during training, synthesis and
`prepare`), unwritable or unusable output paths. Each is one line naming the file and what to
do, exit code 2, no partial files, and a run that --resume continues once space is freed.
(The run folder's lock, kills and resume: tests/test_reliability.py.)"""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import latentgen
from latentgen import UserError

from .conftest import TINY_TRAIN

TINY = dict(image_size=16, channels=1, latent_dim=4, batch_size=32, langevin_steps=5, width=8,
            device="cpu")


def _train(data: Path, out: Path, **settings) -> latentgen.Run:
    return latentgen.train(data=str(data), out=out, **{**TINY, "epochs": 1, **settings})


def _leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.name.endswith(".tmp") or ".partial." in str(p))


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# -- full and read-only disks----------------------------------------------------------

def _fail_writes_under(monkeypatch, folder: Path, code: int, after: int = 0) -> None:
    """Every write of a file below ``folder`` fails with ``code`` (after ``after`` writes):
    a full disk (ENOSPC) or a read-only one (EROFS), without needing either."""
    import builtins

    real_open, real_mkstemp = builtins.open, __import__("tempfile").mkstemp
    seen = {"n": 0}

    def failing(path: object) -> bool:
        if not str(path).startswith(str(folder)):
            return False
        seen["n"] += 1
        return seen["n"] > after

    def fake_open(file, mode="r", *args, **kwargs):
        if any(m in mode for m in "wax+") and failing(file):
            raise OSError(code, os.strerror(code), str(file))
        return real_open(file, mode, *args, **kwargs)

    def fake_mkstemp(*args, **kwargs):
        if failing(kwargs.get("dir", "")):
            raise OSError(code, os.strerror(code), str(kwargs.get("dir")))
        return real_mkstemp(*args, **kwargs)

    monkeypatch.setattr(builtins, "open", fake_open)
    monkeypatch.setattr("latentgen.runtime.files.tempfile.mkstemp", fake_mkstemp)


def test_a_full_disk_mid_training_is_one_line_and_resume_continues(tiny_data, tmp_path, cli,
                                                                   monkeypatch):
    out = tmp_path / "run"
    _train(tiny_data["train"], out)
    monkeypatch.setattr("latentgen.runtime.files.os.fsync", _no_space)
    res = cli("train", "--out", out, "--resume", "--epochs", "2")
    assert res.code == 2, res
    assert "No space left on device" in res.err and "--resume" in res.err, res.err
    assert len(res.err.strip().splitlines()) == 1 and "Traceback" not in res.err
    assert _leftovers(out) == []
    monkeypatch.undo()  # space freed
    assert latentgen.train(out=out, resume=True, epochs=2).epoch == 2


def _no_space(fd: int) -> None:
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


def test_torch_save_on_a_full_disk_is_named_as_such(tmp_path, monkeypatch):
    """torch.save reports a failed write as its own RuntimeError."""
    from latentgen.runtime.files import atomic_write

    monkeypatch.setattr("latentgen.runtime.files.os.fdopen", _FullFile)
    with pytest.raises(UserError, match="No space left on device"):
        atomic_write(tmp_path / "x.pt", lambda fh: torch.save({"a": torch.zeros(1000)}, fh))
    assert list(tmp_path.iterdir()) == []


class _FullFile:
    """An open file whose writes fail as on a full disk."""

    def __init__(self, fd: int, mode: str) -> None:

        self._fh = open(fd, mode)

    def write(self, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def __getattr__(self, name: str):
        return getattr(self._fh, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self._fh.close()


@pytest.mark.parametrize("good", [2, 6])  # fails in the first batch; in the second
def test_a_full_disk_while_synthesizing_leaves_no_partial_picture(good, trained_run, tmp_path,
                                                                  cli, monkeypatch):
    from PIL import Image

    real_save = Image.Image.save
    calls = {"n": 0}

    def save_then_fill(self, fp, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] <= good:
            return real_save(self, fp, *args, **kwargs)
        with open(fp, "wb") as fh:  # half a file, then the disk is full
            fh.write(b"\x89PNG\r\n")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(fp))

    monkeypatch.setattr(Image.Image, "save", save_then_fill)
    out = tmp_path / "samples"
    res = cli("synthesize", trained_run, "--n", "8", "--batch-size", "4", "--out", out,
              "--device", "cpu")
    assert res.code == 2, res
    assert f"cannot write {out}" in res.err and "No space left" in res.err, res.err
    # nothing half-written: only whole pictures (a batch job keeps them, to go on from
    # them) and their manifest; no partial or temporary file
    left = sorted(p.name for p in out.iterdir()) if out.exists() else []
    pictures = [name for name in left if name.startswith(("sample_", "grid"))]
    assert left == sorted([*pictures, *(["manifest.jsonl"] if pictures else [])]), left
    for name in pictures:
        with Image.open(out / name) as img:
            img.load()  # decodes: a whole file
    monkeypatch.setattr(Image.Image, "save", real_save)  # space again: the job finishes
    assert cli("synthesize", trained_run, "--n", "8", "--batch-size", "4", "--out", out,
               "--device", "cpu").code == 0
    assert len([p for p in out.iterdir() if p.name.startswith("sample_")]) == 8


@pytest.mark.parametrize("command", ["train", "synthesize", "prepare"])
def test_a_read_only_out_is_one_line(command, tiny_data, trained_run, tmp_path, cli,
                                     monkeypatch):
    ro = tmp_path / "ro"
    _fail_writes_under(monkeypatch, ro, errno.EROFS)
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):
        if str(self).startswith(str(ro)):
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    args = {"train": ["train", "--data", tiny_data["train"], "--out", ro / "run", *TINY_TRAIN],
            "synthesize": ["synthesize", trained_run, "--n", "2", "--out", ro / "s",
                           "--device", "cpu"],
            "prepare": ["prepare", "--data", tiny_data["train"], "--out", ro / "p.u8",
                        "--image-size", "16", "--channels", "1"]}[command]
    res = cli(*args)
    assert res.code == 2, res
    assert "Read-only file system" in res.err and str(ro) in res.err, res.err
    assert len(res.err.strip().splitlines()) == 1


def test_an_out_that_becomes_read_only_mid_run_is_one_line(tiny_data, tmp_path, cli,
                                                            monkeypatch):
    out = tmp_path / "run"
    _train(tiny_data["train"], out)
    _fail_writes_under(monkeypatch, out, errno.EROFS)
    res = cli("train", "--out", out, "--resume", "--epochs", "2")
    assert res.code == 2, res
    assert "Read-only file system" in res.err and "--resume" in res.err, res.err
    assert latentgen.load_run(out, device="cpu").epoch == 1  # the last good checkpoint


def test_a_full_disk_as_the_bank_file_is_made_leaves_nothing(tiny_data, tmp_path, monkeypatch):
    from latentgen.runtime.files import write_error

    def full(path, target=None):
        raise write_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), target or path)

    monkeypatch.setattr("latentgen.training.bank.reserve", full)
    out = tmp_path / "run"
    with pytest.raises(UserError, match="bank-rank0-of-1.npy: No space left on device"):
        _train(tiny_data["train"], out, latents_on="disk")
    assert not out.exists()


def test_prepare_on_a_full_disk_leaves_neither_file(tiny_data, tmp_path, cli, monkeypatch):
    from latentgen.runtime import files

    real = files.atomic_write

    def sidecar_fails(path, write, mode="wb"):
        if Path(path).name.endswith(".json"):
            raise files.write_error(OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)), path)
        return real(path, write, mode)

    monkeypatch.setattr("latentgen.data.prepared.atomic_write", sidecar_fails)
    out = tmp_path / "p.u8"
    res = cli("prepare", "--data", tiny_data["train"], "--out", out, "--image-size", "16",
              "--channels", "1")
    assert res.code == 2 and "No space left" in res.err, res
    assert sorted(p.name for p in tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert cli("prepare", "--data", tiny_data["train"], "--out", out, "--image-size", "16",
               "--channels", "1").code == 0


def test_prepare_names_its_out_on_a_full_disk_and_removes_a_killed_prepare_s_file(
        tiny_data, tmp_path, cli, monkeypatch):
    from PIL import Image

    pictures = tmp_path / "pictures"  # packed straight into the file as they are read
    pictures.mkdir()
    for i in range(4):
        Image.new("L", (16, 16), 50 * i).save(pictures / f"{i}.png")
    packed = tmp_path / "packed"
    packed.mkdir()
    out = packed / "p.u8"
    stale = packed / f".p.u8.{_dead_pid()}.tmp"
    stale.write_bytes(b"x" * 1000)
    monkeypatch.setattr("latentgen.runtime.files.os.posix_fallocate",
                        lambda fd, start, size: _no_space(fd))
    res = cli("prepare", "--data", pictures, "--out", out, "--image-size", "16",
              "--channels", "1")
    assert res.code == 2, res
    assert res.err.startswith(f"error: cannot write {out}: No space left"), res.err
    assert sorted(p.name for p in packed.iterdir()) == []  # the killed one's file too


@pytest.mark.parametrize("name", ["run\udcff", "dangling"])
def test_an_out_that_cannot_hold_a_run_is_refused_before_training(name, tiny_data, tmp_path,
                                                                    cli):
    out = tmp_path / name
    if name == "dangling":
        out.symlink_to(tmp_path / "nowhere")
    res = cli("train", "--data", tiny_data["train"], "--out", out, *TINY_TRAIN)
    assert res.code == 2 and "--out" in res.err, res
    assert len(res.err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ([name] if name == "dangling" else [])


def test_data_whose_name_is_not_utf8_is_refused(tiny_data, tmp_path, cli):
    import shutil

    data = tmp_path / "d\udcff.npy"
    shutil.copy(tiny_data["train"], data)
    res = cli("train", "--data", data, "--out", tmp_path / "run", *TINY_TRAIN)
    assert res.code == 2 and "not UTF-8" in res.err and "--data" in res.err, res
    assert not (tmp_path / "run").exists()


def test_a_run_whose_config_toml_was_emptied_is_one_line(trained_run, tmp_path, cli):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_run, run)
    (run / "config.toml").write_text("")
    res = cli("synthesize", run, "--n", "2", "--out", tmp_path / "s")
    assert res.code == 2 and "was edited since its checkpoint" in res.err, res
    assert len(res.err.strip().splitlines()) == 1


