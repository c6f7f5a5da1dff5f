"""The run folder under faults: two runs on one folder, kills mid-write (kept checkpoints,
temporary files, metrics), tampered config files; --resume then ends where an uninterrupted
run ends. (Full and read-only disks: tests/test_disk_faults.py; bad input:
tests/test_bad_input.py; plugins that misbehave: tests/test_plugin_isolation.py.)"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import latentgen
from latentgen import UserError

from .conftest import ROOT, TINY_TRAIN

TINY = dict(image_size=16, channels=1, latent_dim=4, batch_size=32, langevin_steps=5, width=8,
            device="cpu")


def _train(data: Path, out: Path, **settings) -> latentgen.Run:
    return latentgen.train(data=str(data), out=out, **{**TINY, "epochs": 1, **settings})


def FolderLock(folder: Path):  # noqa: N802 - the class, imported when a test runs
    from latentgen.runtime.lock import FolderLock as lock

    return lock(folder)


def _cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(ROOT / "cli"),
                                                         str(ROOT / "plugins")])}


def _leftovers(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*")
                  if p.name.endswith(".tmp") or ".partial." in str(p))


# -- one run per folder -------------------------------------------------------------------

def test_a_second_train_on_a_locked_folder_is_refused_naming_the_holder(tiny_data, tmp_path,
                                                                       cli):
    out = tmp_path / "run"
    with FolderLock(out):  # as a running `latentgen train` holds it
        res = cli("train", "--data", tiny_data["train"], "--out", out, "--epochs", "1",
                  *TINY_TRAIN)
        assert res.code == 2, res
        assert "is in use by latentgen train" in res.err and f"process {os.getpid()}" in res.err
        assert len(res.err.strip().splitlines()) == 1, res.err
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # nothing of the second run
    assert not (out / ".lock").exists()  # released with its holder


def test_a_train_on_a_folder_being_trained_is_told_who_trains(trained_run, cli):
    with FolderLock(trained_run):  # it already holds a checkpoint, and is being trained
        res = cli("train", "--out", trained_run, "--epochs", "1")
    assert res.code == 2 and "is in use by latentgen train" in res.err, res


def test_readers_run_beside_training(trained_run, tmp_path):
    with FolderLock(trained_run):
        run = latentgen.load_run(trained_run, device="cpu")
        assert run.synthesize(2).shape[0] == 2


def test_two_trains_started_together_on_one_folder_exactly_one_runs(tiny_data, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "latentgen", "train", "--data", str(tiny_data["train"]),
           "--out", str(out), "--epochs", "1", *TINY_TRAIN]
    procs = [subprocess.Popen(cmd, env=_cli_env(), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(timeout=300), p.stderr.read()) for p in procs]  # type: ignore[union-attr]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    refused = next(err for code, err in results if code == 2)
    assert "in use by latentgen train" in refused or "already holds a run" in refused, refused
    assert latentgen.load_run(out, device="cpu").epoch == 1


def test_a_killed_holder_leaves_no_lock_that_blocks(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time; from latentgen.runtime.lock import FolderLock;"
         f"FolderLock({str(out)!r}).acquire(); print('held', flush=True); time.sleep(60)"],
        env=_cli_env(), stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"  # type: ignore[union-attr]
    with pytest.raises(UserError, match=f"process {holder.pid}"):
        FolderLock(out).acquire()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    assert (out / ".lock").exists()  # the file stays; the lock went with the process
    with FolderLock(out) as lock:
        assert lock.held


# -- kept checkpoints and leftovers -------------------------------------------------------

def test_a_kill_while_a_kept_checkpoint_is_written_loses_nothing(tiny_data, tmp_path,
                                                                 monkeypatch):
    from latentgen.runtime import files

    out = tmp_path / "run"
    real = files.atomic_write

    def killed_at_epoch_2(path, write, mode="wb"):
        if Path(path).name == "epoch_0002.pt":
            raise KeyboardInterrupt  # the process dies here
        return real(path, write, mode)

    monkeypatch.setattr("latentgen.assembly.rundir.atomic_write", killed_at_epoch_2)
    with pytest.raises(KeyboardInterrupt):
        _train(tiny_data["train"], out, epochs=3, checkpoint_every=1)
    monkeypatch.undo()
    latentgen.train(out=out, resume=True)
    kept = sorted(p.name for p in (out / "checkpoints").glob("epoch_*.pt"))
    assert kept == ["epoch_0001.pt", "epoch_0002.pt", "epoch_0003.pt"]
    state = torch.load(out / "checkpoints" / "epoch_0002.pt", weights_only=True)
    assert state["epoch"] == 2


def test_resume_restores_a_missing_kept_checkpoint_of_its_epoch(tiny_data, tmp_path):
    out = tmp_path / "run"
    _train(tiny_data["train"], out, epochs=2, checkpoint_every=2)
    (out / "checkpoints" / "epoch_0002.pt").unlink()  # lost by a kill in an older version
    latentgen.train(out=out, resume=True, epochs=3)
    assert (out / "checkpoints" / "epoch_0002.pt").exists()


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_resume_removes_the_temporary_files_of_a_killed_run(tiny_data, tmp_path):
    out = tmp_path / "run"
    _train(tiny_data["train"], out)
    dead = _dead_pid()
    stale = [out / "checkpoints" / f".last.pt.{dead}.k3j2_x.tmp",
             out / "checkpoints" / f".last.latents-000000004.npy.{dead}.tmp",
             out / f".metrics.csv.{dead}.abc.tmp"]
    for path in stale:
        path.write_bytes(b"x" * 1000)
    live = out / "checkpoints" / f".last.pt.{os.getpid()}.mine.tmp"  # another live writer's
    live.write_bytes(b"x")
    latentgen.train(out=out, resume=True, epochs=2)
    assert [p for p in stale if p.exists()] == []
    assert live.exists()


def test_resumed_metrics_jsonl_drops_what_is_trained_again(tiny_data, tmp_path):
    import json

    out = tmp_path / "run"
    _train(tiny_data["train"], out)
    step = int(torch.load(out / "checkpoints/last.pt", weights_only=True)["step"])
    with open(out / "metrics.jsonl", "a") as fh:  # written after the checkpoint, then a kill
        fh.write(json.dumps({"event": "batch", "step": step + 1}) + "\n" + '{"event": "ba')
    latentgen.train(out=out, resume=True, epochs=2)
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    batches = [r["step"] for r in records if r["event"] == "batch"]
    assert batches == sorted(set(batches)), batches  # no step twice, no broken line


# -- resume and an edited config.toml -------------------------------------------------

@pytest.mark.parametrize("line", ["lr = 0.01", "seed = 5", "latent_dim = 3"])
def test_resume_refuses_an_edited_config_toml(line, tiny_data, tmp_path, cli):
    out = tmp_path / "run"
    _train(tiny_data["train"], out)
    config = out / "config.toml"
    key = line.split(" = ")[0]
    text = "\n".join(line if row.startswith(f"{key} = ") else row
                     for row in config.read_text().splitlines())
    config.write_text(text + "\n")
    res = cli("train", "--out", out, "--resume", "--epochs", "2")
    assert res.code == 2, res
    assert "was edited since its checkpoint" in res.err and key in res.err, res.err


def test_resume_takes_a_config_toml_whose_resumable_settings_changed(tiny_data, tmp_path):
    out = tmp_path / "run"
    _train(tiny_data["train"], out)
    config = out / "config.toml"
    config.write_text(config.read_text().replace("epochs = 1", "epochs = 2"))
    assert latentgen.train(out=out, resume=True).epoch == 2


# -- a slow check: kill -9 at random moments, then resume --------------------------------

@pytest.mark.slow
def test_random_kills_then_resume_end_bit_equal_to_an_uninterrupted_run(tiny_data, tmp_path):
    epochs = 400  # about 20 s of training after a 3 s start: kills land at any moment
    args = ["--data", str(tiny_data["train"]), "--epochs", str(epochs), "--checkpoint-every", "1",
            *TINY_TRAIN]
    train = [sys.executable, "-m", "latentgen", "train"]
    subprocess.run([*train, "--out", str(tmp_path / "straight"), *args], env=_cli_env(),
                   check=True, capture_output=True)
    out = tmp_path / "killed"
    rng = random.Random(1)
    kills = 0
    for _ in range(40):
        resume = ["--resume"] if (out / "checkpoints" / "last.pt").exists() else []
        cmd = [*train, "--out", str(out), *(args if not resume else []), *resume]
        proc = subprocess.Popen(cmd, env=_cli_env(), stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE)
        if kills < 5:
            time.sleep(rng.uniform(1.0, 12.0))
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                kills += 1
        if proc.wait() == 0:
            break
        assert proc.returncode == -signal.SIGKILL, proc.stderr.read()  # type: ignore[union-attr]
    assert kills == 5
    a = torch.load(tmp_path / "straight/checkpoints/last.pt", weights_only=True)
    b = torch.load(out / "checkpoints/last.pt", weights_only=True)
    assert a["step"] == b["step"] and a["epoch"] == b["epoch"] == epochs
    for key in a["generator"]:
        assert torch.equal(a["generator"][key], b["generator"][key]), key
    assert torch.equal(a["latents"], b["latents"])
    kept = sorted(p.name for p in (out / "checkpoints").glob("epoch_*.pt"))
    assert kept == [f"epoch_{e:04d}.pt" for e in range(1, epochs + 1)]
    assert _leftovers(out) == []
