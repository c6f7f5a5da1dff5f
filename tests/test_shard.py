"""Sharded, restartable batch synthesis: shards write the files of one job, byte for byte; a
killed job, run again, ends with the same files and nothing half-written."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from latentgen.outputs.files import resolve_shard

JOB_VARIABLES = ("SLURM_ARRAY_TASK_ID", "SLURM_ARRAY_TASK_MIN", "SLURM_ARRAY_TASK_COUNT",
                 "SLURM_ARRAY_TASK_STEP", "JOB_COMPLETION_INDEX", "JOB_COMPLETION_COUNT",
                 "RANK", "WORLD_SIZE")


@pytest.fixture
def no_job_array(monkeypatch):
    for name in JOB_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def contents(folder: Path) -> dict[str, bytes]:
    """Every file but the manifests, by name."""
    return {p.name: p.read_bytes() for p in folder.iterdir() if not p.name.startswith("manifest")}


def manifest_lines(folder: Path) -> list[dict]:
    lines = [json.loads(line) for p in folder.glob("manifest*.jsonl")
             for line in p.read_text().splitlines()]
    return sorted(lines, key=lambda e: (e["index"], e["path"]))


@pytest.fixture(scope="module")
def whole_job(trained_run, tmp_path_factory) -> Path:
    """One unsharded job of 40 examples (batches of 16: they straddle the shards' bounds)."""
    from latentgen_cli.app import main

    out = tmp_path_factory.mktemp("whole") / "s"
    with pytest.raises(SystemExit) as done:
        main(["synthesize", str(trained_run), "--n", "40", "--batch-size", "16", "--seed", "3",
              "--out", str(out), "--device", "cpu"])
    assert not done.value.code
    return out


def synth(cli, run: Path, out: Path, *extra: object):
    return cli("synthesize", run, "--n", 40, "--batch-size", 16, "--seed", 3, "--out", out,
               "--device", "cpu", *extra)


def test_four_shards_write_the_files_of_one_job(whole_job, trained_run, cli, tmp_path,
                                                no_job_array):
    whole = contents(whole_job)
    assert len(whole) == 41 and "grid.png" in whole
    out = tmp_path / "sharded"
    for k in range(4):
        res = synth(cli, trained_run, out, "--shard", f"{k}/4")
        assert res.code == 0, res
        if k == 0:
            assert (out / "grid.png").exists()  # shard 0 writes the grid
        assert not (k and (out / "manifest.jsonl").exists())
    assert contents(out) == whole
    assert sorted(p.name for p in out.glob("manifest*")) == [
        f"manifest-{k}-of-4.jsonl" for k in range(4)]
    assert manifest_lines(out) == manifest_lines(whole_job)
    lines = manifest_lines(whole_job)
    assert [e["index"] for e in lines] == list(range(40))
    assert {e["seed"] for e in lines} == {3} and len(lines[0]["latent"]) == 4


def test_the_batch_size_does_not_change_the_latents(whole_job, trained_run, tmp_path):
    import latentgen

    run = latentgen.load_run(trained_run, "cpu")
    files = run.save_synthesis(tmp_path / "b7", 40, seed=3, batch_size=7, shard="1/2")
    assert len(files) == 20 and files[0].name == "sample_00020.png"
    assert manifest_lines(tmp_path / "b7") == manifest_lines(whole_job)[20:]


def test_a_killed_job_run_again_ends_with_the_same_files(whole_job, trained_run, cli,
                                                         tmp_path, monkeypatch, no_job_array):
    import latentgen

    run = latentgen.load_run(trained_run, "cpu")
    modality_type = type(run.model.modality)
    real = modality_type.save_examples
    calls = {"n": 0}

    def dies_after_seven(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > 7:
            raise KeyboardInterrupt  # a kill in the middle of the job
        return real(self, *args, **kwargs)

    out = tmp_path / "s"
    monkeypatch.setattr(modality_type, "save_examples", dies_after_seven)
    with pytest.raises(KeyboardInterrupt):
        run.save_synthesis(out, 40, seed=3, batch_size=16)
    monkeypatch.setattr(modality_type, "save_examples", real)
    assert len(list(out.glob("sample_*.png"))) == 7
    # what kill -9 leaves: a dead process's half-written file, the cut-short last line
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = out / f".partial.{dead.pid}.abc.tmp"
    stale.mkdir()
    (stale / "sample_00007.png").write_bytes(b"\x89PNG\r\n")
    with open(out / "manifest.jsonl", "a") as fh:
        fh.write('{"index": 7, "seed": 3, "n": 40, "pa')
    (out / "sample_00003.png").unlink()  # a file lost: written again

    written = {"n": 0}

    def counting(self, *args, **kwargs):
        written["n"] += 1
        return real(self, *args, **kwargs)

    monkeypatch.setattr(modality_type, "save_examples", counting)
    res = synth(cli, trained_run, out)
    assert res.code == 0, res
    assert written["n"] == 40 - 6  # the six complete ones are kept
    assert contents(out) == contents(whole_job)
    assert manifest_lines(out) == manifest_lines(whole_job)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left


def test_a_manifest_of_another_job_is_refused(whole_job, trained_run, cli, tmp_path):
    out = tmp_path / "s"
    out.mkdir()
    (out / "manifest.jsonl").write_text((whole_job / "manifest.jsonl").read_text())
    res = cli("synthesize", trained_run, "--n", 40, "--seed", 4, "--out", out, "--device", "cpu")
    assert res.code != 0 and "another job" in res.err and len(res.err.strip().splitlines()) == 1


def test_shard_auto_reads_a_slurm_job_array(whole_job, trained_run, cli, tmp_path,
                                            no_job_array):
    no_job_array.setenv("SLURM_ARRAY_TASK_ID", "12")
    no_job_array.setenv("SLURM_ARRAY_TASK_MIN", "10")
    no_job_array.setenv("SLURM_ARRAY_TASK_COUNT", "4")
    out = tmp_path / "s"
    res = synth(cli, trained_run, out, "--shard", "auto")
    assert res.code == 0, res
    names = sorted(p.name for p in out.iterdir())
    assert names == ["manifest-2-of-4.jsonl", *(f"sample_{i:05d}.png" for i in range(20, 30))]
    whole = contents(whole_job)
    assert all(whole[name] == (out / name).read_bytes() for name in names[1:])


@pytest.mark.parametrize(("env", "spec", "expected"), [
    ({}, "auto", (0, 1)),
    ({}, None, (0, 1)),
    ({}, "3/8", (3, 8)),
    ({"SLURM_ARRAY_TASK_ID": "6", "SLURM_ARRAY_TASK_COUNT": "4", "SLURM_ARRAY_TASK_STEP": "2"},
     "auto", (3, 4)),
    ({"JOB_COMPLETION_INDEX": "5"}, "auto/6", (5, 6)),
    ({"JOB_COMPLETION_INDEX": "5", "JOB_COMPLETION_COUNT": "6"}, "auto", (5, 6)),
    ({"RANK": "1", "WORLD_SIZE": "2"}, "auto", (1, 2)),
])
def test_shard_auto_reads_the_job_variables(env, spec, expected):
    assert resolve_shard(spec, env) == expected


@pytest.mark.parametrize(("spec", "env"), [
    ("4/4", {}), ("-1/4", {}), ("1/0", {}), ("two", {}), ("1/x", {}), ("3", {}),
    ("auto/4", {}), ("auto", {"JOB_COMPLETION_INDEX": "2"}),
    ("auto/3", {"RANK": "0", "WORLD_SIZE": "2"}), ("auto", {"RANK": "x"}),
    ("auto", {"SLURM_ARRAY_TASK_ID": "9", "SLURM_ARRAY_TASK_COUNT": "4"}),
])
def test_a_bad_shard_is_one_line(spec, env, trained_run, cli, tmp_path, no_job_array):
    for name, value in env.items():
        no_job_array.setenv(name, value)
    res = cli("synthesize", trained_run, "--n", 4, "--out", tmp_path / "s", "--device", "cpu",
              "--shard", spec)
    assert res.code == 2, res
    assert "--shard" in res.err and len(res.err.strip().splitlines()) == 1, res.err
    assert not (tmp_path / "s").exists()
