"""Scale: torchrun training (2 gloo processes on CPU) against one process, resume across
process counts, --max-steps, prepared datasets and latent banks on disk."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from latentgen.assembly.rundir import RunDir
from latentgen.data.order import EpochOrder
from latentgen.model.priors import StandardNormal
from latentgen.model.samplers import RowNoise, normal_like
from latentgen.runtime.distributed import Shard
from latentgen.runtime.seeding import derived_generator
from latentgen.training.bank import LatentBank

from .conftest import TINY_TRAIN, make_faces

#: a run whose inference dynamics are sensitive (L = 5 at step 0.3): rounding differences
#: would show; 4 batches per epoch, so --max-steps 5 stops inside epoch 2
OPTIONS = [*TINY_TRAIN, "--seed", "0", "--fp64-gradients", "--generator", "convt"]
RUN = [*OPTIONS, "--epochs", "3"]


def weights_and_bank(run: Path) -> tuple[dict[str, torch.Tensor], torch.Tensor, int]:
    state = RunDir(run).load_checkpoint()
    return dict(state["generator"]), state["latents"][:].clone(), state["step"]


def max_difference(a: Path, b: Path) -> tuple[float, float]:
    wa, za, sa = weights_and_bank(a)
    wb, zb, sb = weights_and_bank(b)
    assert sa == sb and wa.keys() == wb.keys()
    return (max(float((wa[k] - wb[k]).abs().max()) for k in wa),
            float((za - zb).abs().max()))


def torchrun(nproc: int, *args: object) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc-per-node={nproc}", "-m", "latentgen", *map(str, args)],
                          capture_output=True, text=True, env=env, timeout=300)


def metrics(run: Path) -> list[dict[str, str]]:
    return [{k: v for k, v in r.items() if k in ("epoch", "step", "loss", "train_mse")}
            for r in RunDir(run).read_metrics()]


@pytest.fixture(scope="module")
def one_process(tiny_data, tmp_path_factory) -> Path:
    from .conftest import train_from_cli

    out = tmp_path_factory.mktemp("dist") / "one"
    return train_from_cli(tiny_data["train"], out, *OPTIONS, epochs=3)


# -- pieces ---------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3, 7, 64, 1000, 4097])
def test_epoch_order_is_a_permutation_per_epoch(n):
    orders = [torch.cat(list(EpochOrder(n, 32, seed=0, epoch=e))) for e in (1, 2)]
    for order in orders:
        assert sorted(order.tolist()) == list(range(n))
    if n >= 64:
        assert not torch.equal(orders[0], orders[1])
        # not the identity, nor a shifted copy of it
        assert float(np.corrcoef(np.arange(n), orders[0].numpy())[0, 1]) < 0.2
    assert torch.equal(orders[0], torch.cat(list(EpochOrder(n, 32, seed=0, epoch=1))))


@pytest.mark.parametrize("n", [10, 40001])  # 40001 crosses the draw and copy chunks
def test_bank_shards_make_the_one_process_bank(n, tmp_path):
    prior = StandardNormal((3,))
    whole = LatentBank.from_prior(prior, n, seed=4)
    shards = [LatentBank.from_prior(prior, n, seed=4, shard=Shard(r, 3)) for r in range(3)]
    assert [len(s.latents) for s in shards] == [len(range(r, n, 3)) for r in range(3)]
    for r, s in enumerate(shards):
        assert torch.equal(s.latents, whole.latents[r::3])
        index = torch.arange(r, n, 3)[-5:]
        assert torch.equal(s.read(index), whole.latents[index])
    on_disk = LatentBank.from_prior(prior, n, seed=4, shard=Shard(2, 3),
                                    disk_path=tmp_path / "bank.npy")
    assert torch.equal(on_disk.latents[:], whole.latents[2::3])
    assert torch.equal(torch.from_numpy(np.load(tmp_path / "bank.npy")), whole.latents[2::3])
    fresh = LatentBank.empty((3,), n, shard=Shard(1, 3))
    fresh.load_full(whole.latents)
    assert torch.equal(fresh.latents, whole.latents[1::3])
    with pytest.raises(ValueError, match="does not match"):
        fresh.load_full(torch.zeros(n - 1, 3))


def test_row_noise_gives_each_row_what_the_whole_batch_draws():
    z = torch.zeros(6, 2, 3)
    full = normal_like(z, derived_generator(0, "x"))
    rows = torch.tensor([1, 4, 5])
    part = normal_like(z[rows], RowNoise(derived_generator(0, "x"), 6, rows))
    assert torch.equal(part, full[rows])


# -- torchrun -------------------------------------------------------------------------------
def test_two_gloo_processes_train_what_one_process_trains(one_process, tiny_data, tmp_path):
    out = tmp_path / "two"
    done = torchrun(2, "train", "--data", tiny_data["train"], "--out", out, *RUN)
    assert done.returncode == 0, done.stderr[-3000:]
    # bit for bit with --fp64-gradients (the acceptance bound is 1e-4)
    assert max_difference(out, one_process) == (0.0, 0.0)
    assert metrics(out) == metrics(one_process)
    # only the first process wrote the run directory, and reported
    assert done.stdout.count("run directory:") == 1
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["last.pt"]


def test_two_process_checkpoint_resumes_with_one_process(one_process, tiny_data, tmp_path, cli):
    out = tmp_path / "two-then-one"
    done = torchrun(2, "train", "--data", tiny_data["train"], "--out", out, *RUN,
                    "--max-steps", 5)
    assert done.returncode == 0, done.stderr[-3000:]
    state = RunDir(out).load_checkpoint()
    assert state["step"] == 5 and state["epoch"] == 1 and state["progress"]["batch"] == 1
    assert [r["epoch"] for r in metrics(out)] == ["1"]
    res = cli("train", "--resume", "--out", out)
    assert res.code == 0, res
    assert max_difference(out, one_process) == (0.0, 0.0)
    assert metrics(out) == metrics(one_process)


def test_two_processes_learn_the_ebm_prior_one_process_learns(tiny_data, tmp_path, cli):
    ebm = ["--prior", "ebm", "--prior-steps", "10", "--prior-width", "16"]
    one, two = tmp_path / "one", tmp_path / "two"
    assert cli("train", "--data", tiny_data["train"], "--out", one, *RUN, *ebm).code == 0
    done = torchrun(2, "train", "--data", tiny_data["train"], "--out", two, *RUN, *ebm)
    assert done.returncode == 0, done.stderr[-3000:]
    assert max_difference(two, one) == (0.0, 0.0)
    a, b = RunDir(one).load_checkpoint(), RunDir(two).load_checkpoint()
    assert a["prior"].keys() == b["prior"].keys() and a["prior"]
    assert all(torch.equal(a["prior"][k], b["prior"][k]) for k in a["prior"])
    assert [r["prior_loss"] for r in RunDir(one).read_metrics()] == [
        r["prior_loss"] for r in RunDir(two).read_metrics()]


@pytest.mark.parametrize("flag", ["--data", "--test-data"])
def test_torchrun_bad_input_is_one_line_per_process(tiny_data, tmp_path, flag):
    data = [] if flag == "--data" else ["--data", tiny_data["train"]]
    done = torchrun(2, "train", *data, flag, tmp_path / "missing", "--out", tmp_path / "r",
                    *TINY_TRAIN)
    assert done.returncode != 0
    lines = [ln for ln in done.stderr.splitlines() if "does not exist" in ln]
    assert sorted(ln.split(":")[0] for ln in lines) == ["error (rank 0)", "error (rank 1)"]
    # what the processes printed comes before torchrun's own report (and its traceback)
    assert "Traceback" not in done.stderr.split("elastic")[0]
    assert not (tmp_path / "r").exists()


def test_torchrun_needs_an_out_folder(tiny_data, tmp_path):
    done = torchrun(2, "train", "--data", tiny_data["train"], *TINY_TRAIN)
    assert done.returncode != 0 and "under torchrun give --out" in done.stderr


def test_torchrun_streams_prepared_data_with_empty_shards_and_a_disk_bank(tmp_path, cli):
    """3 examples, global batch 2, on 2 and on 4 processes: some processes own nothing in a
    batch, or nothing at all; data read from a prepared file, the bank on disk."""
    np.save(tmp_path / "three.npy", make_faces(3, 16, 1, seed=5)[:, 0])
    packed = tmp_path / "three.u8"
    assert cli("prepare", "--data", tmp_path / "three.npy", "--out", packed).code == 0
    options = ["--data", packed, "--latent-dim", 4, "--batch-size", 2, "--langevin-steps", 3,
               "--width", 8, "--epochs", 2, "--device", "cpu", "--fp64-gradients",
               "--generator", "convt"]
    assert cli("train", *options, "--out", tmp_path / "one").code == 0
    for nproc in (2, 4):
        out = tmp_path / f"n{nproc}"
        done = torchrun(nproc, "train", *options, "--latents-on", "disk", "--workers", 1,
                        "--out", out)
        assert done.returncode == 0, done.stderr[-3000:]
        assert max_difference(out, tmp_path / "one") == (0.0, 0.0)
        assert not list((out / "checkpoints").glob("bank-*"))


# -- --max-steps ----------------------------------------------------------------------------
def test_max_steps_stops_mid_epoch_and_resume_replays_the_rest(one_process, tiny_data, tmp_path,
                                                              cli):
    out = tmp_path / "steps"
    res = cli("train", "--data", tiny_data["train"], "--out", out, *RUN, "--max-steps", 4)
    assert res.code == 0, res
    assert RunDir(out).load_checkpoint()["step"] == 4
    res = cli("train", "--resume", "--out", out, "--max-steps", 7)
    assert res.code == 0 and RunDir(out).load_checkpoint()["step"] == 7, res
    res = cli("train", "--resume", "--out", out)
    assert res.code == 0, res
    assert max_difference(out, one_process) == (0.0, 0.0)
    assert metrics(out) == metrics(one_process)
    res = cli("train", "--resume", "--out", out)
    assert res.code == 0 and "nothing to train" in res.out


# -- prepared data, latents on disk ---------------------------------------------------------
@pytest.fixture(scope="module")
def picture_folder(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pictures")
    for i, face in enumerate(make_faces(96, 20, 3, seed=3)):
        Image.fromarray(face.transpose(1, 2, 0)).save(root / f"{i:03d}.png")
    return root


def test_prepare_then_train_equals_training_on_the_folder(picture_folder, tmp_path, cli):
    from latentgen.assembly.config import TrainConfig
    from latentgen.assembly.model import Model

    packed = tmp_path / "faces.u8"
    res = cli("prepare", "--modality", "image", "--data", picture_folder, "--out", packed,
              "--image-size", "16", "--json")
    assert res.code == 0, res
    info = json.loads(res.out)
    assert info["shape"] == [96, 3, 16, 16] and info["dtype"] == "uint8"
    side = json.loads((tmp_path / "faces.u8.json").read_text())
    assert side["modality_options"]["image_size"] == 16 and side["source"] == str(picture_folder)
    assert packed.stat().st_size == 96 * 3 * 16 * 16

    # the packed rows are the folder's pictures, whatever rows are asked for
    cfg = TrainConfig(data=str(picture_folder), modality_options={"image_size": 16})
    folder = Model.from_config(cfg).open_data(str(picture_folder))
    prepared = Model.from_config(TrainConfig(data=str(packed))).open_data(str(packed))
    assert prepared.streamed and len(prepared) == 96
    for index in (torch.tensor([5, 6, 7, 0, 95]), torch.randperm(96)[:40], torch.arange(96)):
        assert torch.equal(prepared.get(index), folder.get(index))
    assert torch.equal(prepared.storage[10:20], folder.storage[10:20])

    common = ["--latent-dim", "4", "--batch-size", "32", "--langevin-steps", "3", "--width",
              "8", "--epochs", "2", "--device", "cpu"]
    # one DataLoader worker streams the prepared file; the folder is read into memory
    assert cli("train", "--data", packed, "--out", tmp_path / "a", *common, "--workers",
               "1").code == 0
    assert cli("train", "--data", picture_folder, "--image-size", "16", "--out",
               tmp_path / "b", *common).code == 0
    assert max_difference(tmp_path / "a", tmp_path / "b") == (0.0, 0.0)
    assert 'data = "' + str(packed) in (tmp_path / "a" / "config.toml").read_text()
    res = cli("synthesize", tmp_path / "a", "--n", 4, "--out", tmp_path / "syn")
    assert res.code == 0, res


def test_prepare_refusals(picture_folder, tiny_data, tmp_path, cli):
    packed = tmp_path / "p.u8"
    assert cli("prepare", "--data", picture_folder, "--out", packed, "--image-size", "16"
               ).code == 0
    res = cli("prepare", "--data", picture_folder, "--out", packed)
    assert res.code == 2 and "already exists" in res.err
    res = cli("train", "--modality", "audio", "--data", packed, "--out", tmp_path / "r")
    assert res.code == 2 and "holds image data, not audio" in res.err
    with open(packed, "r+b") as fh:
        fh.truncate(1000)
    res = cli("train", "--data", packed, "--out", tmp_path / "r")
    assert res.code == 2 and "incomplete" in res.err and not (tmp_path / "r").exists()
    (tmp_path / "q.u8").write_bytes(b"")
    (tmp_path / "q.u8.json").write_text('{"format": "latentgen-prepared", "shape": 3}')
    res = cli("train", "--data", tmp_path / "q.u8", "--out", tmp_path / "r")
    assert res.code == 2 and "sidecar" in res.err
    (tmp_path / "z.u8").write_bytes(b"")
    (tmp_path / "z.u8.json").write_text(json.dumps({**json.loads(
        (tmp_path / "p.u8.json").read_text()), "shape": [0, 3, 16, 16]}))
    res = cli("train", "--data", tmp_path / "z.u8", "--out", tmp_path / "r")
    assert res.code == 2 and "empty array" in res.err
    res = cli("prepare", "--data", tmp_path / "missing", "--out", tmp_path / "m.u8")
    assert res.code == 2 and "does not exist" in res.err
    assert not (tmp_path / "m.u8").exists() and not list(tmp_path.glob(".m.u8*"))
    res = cli("prepare", "--data", picture_folder, "--out", tmp_path / "m.json")
    assert res.code == 2 and "sidecar" in res.err and not (tmp_path / "m.json").exists()
    res = cli("prepare", "--data", picture_folder, "--out", packed / "inside.u8")
    assert res.code == 2 and "cannot create its folder" in res.err


def test_latents_on_disk_train_the_same_model(one_process, tiny_data, tmp_path, cli):
    out = tmp_path / "disk"
    res = cli("train", "--data", tiny_data["train"], "--out", out, *RUN, "--latents-on",
              "disk", "--checkpoint-every", "2", "--max-steps", 5)
    assert res.code == 0, res
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    # the working rows (checkpoints/bank-rank0-of-1.npy) go once the checkpoint holds them
    assert names == ["last.latents-000000005.npy", "last.pt"]
    state = RunDir(out).load_checkpoint()
    assert tuple(state["latents"].shape) == (128, 4) and state["latents_file"]
    res = cli("train", "--resume", "--out", out)
    assert res.code == 0, res
    names = sorted(p.name for p in (out / "checkpoints").iterdir())
    # the kept epoch-2 checkpoint has its own bank file
    assert names == ["epoch_0002.latents.npy", "epoch_0002.pt", "last.latents-000000012.npy",
                     "last.pt"]
    assert "latents" not in torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    assert max_difference(out, one_process) == (0.0, 0.0)
    res = cli("reconstruct", out, "--n", 4, "--out", tmp_path / "rec")
    assert res.code == 0, res


def test_scale_option_errors(tiny_data, tmp_path, cli):
    base = ["train", "--data", tiny_data["train"], "--out", tmp_path / "r", *TINY_TRAIN]
    for extra, message in [(["--latents-on", "cloud"], "--latents-on must be"),
                           (["--max-steps", "0"], "--max-steps must be at least 1"),
                           (["--workers", "-1"], "--workers must be 0 or more"),
                           (["--fp64-gradients", "--precision", "bf16"], "needs --precision")]:
        res = cli(*base, *extra)
        assert res.code == 2 and message in res.err, (extra, res)
    assert not (tmp_path / "r").exists()


def test_prepared_data_brings_its_modality_and_options(tmp_path, cli):
    packed = tmp_path / "sounds.i16"
    res = cli("prepare", "--modality", "audio", "--out", packed, "--clip-seconds", "0.5",
              "--representation", "waveform")
    assert res.code == 0, res
    res = cli("train", "--data", packed, "--out", tmp_path / "r", "--max-steps", 1,
              "--latent-dim", 4, "--device", "cpu")
    assert res.code == 0, res
    config = (tmp_path / "r" / "config.toml").read_text()
    assert 'modality = "audio"' in config and "clip_seconds = 0.5" in config
    # the audio modality's own training default for the packed waveforms (step 0.1) applies
    assert 'representation = "waveform"' in config and "step_size = 0.1" in config


def test_batchnorm_generators_need_cuda_to_run_on_several_processes():
    from latentgen.errors import UserError
    from latentgen.runtime.distributed import sync_batchnorm

    net = torch.nn.Sequential(torch.nn.Linear(2, 4), torch.nn.BatchNorm1d(4))
    assert sync_batchnorm(net, Shard(0, 1), torch.device("cpu")) is net
    assert sync_batchnorm(torch.nn.Linear(2, 2), Shard(0, 2), torch.device("cpu")) is not None
    with pytest.raises(UserError, match="BatchNorm"):
        sync_batchnorm(net, Shard(0, 2), torch.device("cpu"))
