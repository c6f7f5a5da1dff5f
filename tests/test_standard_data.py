"""Standard data sets read from local disk in their own formats (MNIST IDX, CIFAR batches, SVHN
.mat, CelebA, Hugging Face save_to_disk and parquet, webdataset shards), with ?split=,
classes= and drop=. Every file here is written by the test in the real format."""

from __future__ import annotations

import gzip
import io
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from latentgen.data import labels_of, parse_source
from latentgen.data.prepared import open_prepared, prepare
from latentgen.errors import UserError
from latentgen.plugins.registry import get_registry

from .conftest import TINY_TRAIN


def _open(source, size=16, channels=1, modality="image", **options):
    mod = get_registry().modality(modality)
    opts = {"image_size": size, "channels": channels} if modality == "image" else options
    return mod.open_dataset(str(source), mod.make_options(opts))


def _one_line_error(source, match, **kw):
    with pytest.raises(UserError, match=match) as info:
        _open(source, **kw)
    assert "\n" not in str(info.value)
    return str(info.value)


def _png(value, size=(8, 8)):
    Image.new("RGB", size, (value, value, value)).save(buf := io.BytesIO(), "PNG")
    return buf.getvalue()


def _wav(n=400, rate=8000, level=0.5):
    import soundfile as sf

    sf.write(buf := io.BytesIO(), np.full(n, level, np.float32), rate, format="WAV")
    return buf.getvalue()


# -- query ---------------------------------------------------------------------------------
def test_query_syntax(tmp_path):
    spec = parse_source("cifar10:/d/c?split=test&drop=1,3")
    assert (spec.scheme, spec.path, spec.split, spec.drop, spec.classes) == \
        ("cifar10", "/d/c", "test", ("1", "3"), None)
    assert parse_source("/d/m?classes=0,2").classes == ("0", "2")
    assert parse_source("builtin:faces").scheme is None
    (odd := tmp_path / "what?.npy").write_bytes(b"")  # an existing path is taken whole
    assert parse_source(str(odd)).path == str(odd)
    for bad, match in [("/d?colour=red", "unknown query key 'colour'"),
                       ("/d?split=a&split=b", "given twice"),
                       ("/d?classes=1&drop=2", "not both"), ("/d?split=", "has no value"),
                       ("/d?classes=a b", "has the value")]:
        with pytest.raises(UserError, match=match):
            parse_source(bad)


# -- MNIST ---------------------------------------------------------------------------------
def _idx(arr: np.ndarray) -> bytes:
    return struct.pack(">HBB", 0, 8, arr.ndim) + struct.pack(">" + "I" * arr.ndim,
                                                             *arr.shape) + arr.tobytes()


def _mnist(root: Path, n_train=30, n_test=10) -> tuple[np.ndarray, np.ndarray]:
    """torchvision's layout: ROOT/MNIST/raw/ with gzipped IDX files and their labels."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    labels = {"train": np.arange(n_train, dtype=np.uint8) % 10,
              "t10k": (np.arange(n_test, dtype=np.uint8) * 3) % 10}
    for split, lab in labels.items():
        pictures = rng.integers(0, 256, (len(lab), 28, 28), dtype=np.uint8)
        pictures[:, 0, 0] = lab * 20  # tells which example lands where
        for kind, arr in (("images-idx3", pictures), ("labels-idx1", lab)):
            with gzip.open(raw / f"{split}-{kind}-ubyte.gz", "wb") as fh:
                fh.write(_idx(arr))
    return labels["train"], labels["t10k"]


def test_mnist_idx_splits_labels_and_classes(tmp_path):
    train, test = _mnist(tmp_path)
    data = _open(tmp_path, 28)
    assert len(data) == 30 and np.array_equal(data.labels, train)  # train by default
    assert np.array_equal(_open(f"{tmp_path}?split=test", 28).labels, test)
    kept = _open(f"mnist:{tmp_path}?split=train&drop=1", 28)
    assert len(kept) == 27 and 1 not in kept.labels
    # the pictures follow their labels: pixel (0, 0) was written as label * 20
    corner = ((kept.get(torch.arange(len(kept)))[:, 0, 0, 0] + 1) * 127.5).round()
    assert torch.equal(corner, torch.from_numpy(kept.labels * 20.0).float())
    assert list(labels_of(f"{tmp_path}?split=test&classes=0,3")) == [0, 3]
    one = tmp_path / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz"
    assert np.array_equal(_open(one, 28).labels, test)  # labels found beside the file
    _one_line_error(f"{one}?split=test", "is one split")
    _one_line_error(f"{tmp_path}?split=valid", "no split 'valid'; it has")
    _one_line_error(f"{tmp_path}?classes=12", "class 12 is not among the labels")


# -- CIFAR ---------------------------------------------------------------------------------
def _cifar10(root: Path, per_batch=4) -> Path:
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(1)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for b, name in enumerate(names):
        labels = [(b * per_batch + i) % 10 for i in range(per_batch)]
        data = rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8)
        data[:, 0] = np.array(labels) * 20  # red channel, pixel (0, 0)
        (folder / name).write_bytes(pickle.dumps({b"batch_label": name.encode(),
                                                  b"labels": labels, b"data": data}))
    names = b"airplane automobile bird cat deer dog frog horse ship truck".split()
    (folder / "batches.meta").write_bytes(pickle.dumps({b"label_names": names}))
    return folder


def test_cifar10_batches(tmp_path):
    folder = _cifar10(tmp_path)
    data = _open(folder, 32, 3)
    assert len(data) == 20 and data.example_shape == (3, 32, 32)
    red = ((data.get(torch.arange(20))[:, 0, 0, 0] + 1) * 127.5).round()
    assert torch.equal(red, torch.from_numpy(data.labels * 20.0).float())
    assert len(_open(f"{tmp_path}?split=test", 32, 3)) == 4  # torchvision's root folder
    no_cats = _open(f"cifar10:{folder}?drop=cat", 16, 3)
    assert 3 not in no_cats.labels and len(no_cats) == 18
    assert set(_open(f"{folder}?classes=cat,1", 16).labels) == {1, 3}
    mod = get_registry().modality("image")
    assert mod.resolve_options(mod.make_options({}), str(folder)).image_size == 32


def test_cifar100_and_hostile_pickles(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for split, n in (("train", 6), ("test", 3)):
        (folder / split).write_bytes(pickle.dumps({b"data": np.zeros((n, 3072), np.uint8),
                                                   b"fine_labels": list(range(n))}))
    (folder / "meta").write_bytes(pickle.dumps({b"fine_label_names": [b"apple", b"fish"]}))
    assert list(_open(f"{folder}?drop=apple").labels) == [1, 2, 3, 4, 5]
    assert len(_open(f"cifar100:{folder}?split=test")) == 3

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    (folder / "train").write_bytes(pickle.dumps({b"data": Evil()}))
    _one_line_error(folder, r"cannot read CIFAR batch .*train")


# -- SVHN ----------------------------------------------------------------------------------
def _svhn(path: Path, n: int) -> np.ndarray:
    from scipy.io import savemat

    x = np.zeros((32, 32, 3, n), np.uint8)
    y = (np.arange(n) % 10 + 1).reshape(n, 1)  # 1..10, 10 meaning the digit 0
    x[0, 5, 0, :] = 200  # row 0, column 5, red: shows the axes come out right
    savemat(path, {"X": x, "y": y})
    return y.ravel() % 10


def test_svhn_mat(tmp_path):
    digits = _svhn(tmp_path / "train_32x32.mat", 12)
    _svhn(tmp_path / "test_32x32.mat", 5)
    data = _open(tmp_path / "train_32x32.mat", 32, 3)
    assert np.array_equal(data.labels, digits) and 0 in data.labels and 10 not in data.labels
    x = data.get(torch.arange(1))[0]
    assert x[0, 0, 5] > 0.5 and x[0, 5, 0] < -0.9
    assert len(_open(f"{tmp_path}?split=test")) == 5
    assert len(_open(f"svhn:{tmp_path}?classes=0")) == 1
    _one_line_error(f"{tmp_path}?split=valid", "no split 'valid'")


# -- CelebA --------------------------------------------------------------------------------
def test_celeba_centre_crop_and_partition(tmp_path):
    folder = tmp_path / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    face = np.zeros((218, 178, 3), np.uint8)
    face[39:179, 19:159] = 255  # the centre 140 x 140 box torchvision's CenterCrop cuts
    for i in range(1, 5):
        Image.fromarray(face).save(folder / f"{i:06d}.jpg", quality=95)
    no_split = _open(tmp_path, 16, 3)
    assert len(no_split) == 4 and no_split.labels is None
    assert no_split.get(torch.arange(4)).min() > 0.8  # only the white box is left
    _one_line_error(f"{tmp_path}?split=test", "list_eval_partition.txt")
    (tmp_path / "celeba" / "list_eval_partition.txt").write_text(
        "000001.jpg 0\n000002.jpg 0\n000003.jpg 1\n000004.jpg 2\n")
    assert len(_open(tmp_path)) == 2
    assert _open(f"celeba:{folder}?split=valid").names == [str(folder / "000003.jpg")]
    mod = get_registry().modality("image")
    assert mod.resolve_options(mod.make_options({}), str(folder)).image_size == 64
    _one_line_error(f"{folder}?classes=1", "has no class labels")


# -- Hugging Face --------------------------------------------------------------------------
@pytest.fixture(scope="module")
def hf_set(tmp_path_factory) -> Path:
    import datasets

    root = tmp_path_factory.mktemp("hf")
    features = datasets.Features({"img": datasets.Image(),
                                  "label": datasets.ClassLabel(names=["a", "b", "c"]),
                                  "note": datasets.Value("string")})
    rows = {"img": [{"bytes": _png(40 * i), "path": None} for i in range(6)],
            "label": [0, 1, 2, 0, 1, 2], "note": ["x"] * 6}
    train = datasets.Dataset.from_dict(rows, features=features)
    datasets.DatasetDict({"train": train, "test": train.select([0, 1])}).save_to_disk(
        str(root / "dict"))
    train.to_parquet(str(root / "train.parquet"))
    sound = datasets.Dataset.from_dict(
        {"audio": [{"bytes": _wav(level=0.1 * (i + 1)), "path": None} for i in range(3)],
         "label": [0, 1, 1]},
        features=datasets.Features({"audio": {"bytes": datasets.Value("binary"),
                                              "path": datasets.Value("string")},
                                    "label": datasets.ClassLabel(names=["low", "high"])}))
    sound.cast_column("audio", datasets.Audio(decode=False)).save_to_disk(str(root / "sound"))
    return root


def test_hf_save_to_disk_and_parquet(hf_set):
    data = _open(hf_set / "dict", 8, 3)
    assert len(data) == 6 and list(data.labels) == [0, 1, 2, 0, 1, 2]
    level = ((data.get(torch.arange(6))[:, 0].mean((1, 2)) + 1) * 127.5).round()
    assert level.tolist() == [0, 40, 80, 120, 160, 200]
    assert list(_open(f"{hf_set / 'dict'}?split=test").labels) == [0, 1]
    assert list(_open(f"hf:{hf_set / 'dict'}?classes=c,a").labels) == [0, 2, 0, 2]
    assert list(labels_of(f"{hf_set / 'dict' / 'train'}?drop=b")) == [0, 2, 0, 2]
    table = _open(f"{hf_set / 'train.parquet'}?column=img&label=label&drop=0")
    assert list(table.labels) == [1, 2, 1, 2]
    _one_line_error(f"{hf_set / 'train.parquet'}?column=note", "holds str, not an encoded")
    _one_line_error(f"{hf_set / 'dict'}?split=valid", "no split 'valid'; it has train, test")
    _one_line_error(f"{hf_set / 'train.parquet'}?split=test", "is one split")


def test_hf_audio_column_labels_each_clip(hf_set):
    data = _open(f"{hf_set / 'sound'}?classes=high", modality="audio", sample_rate=8000,
                 clip_seconds=0.025, representation="waveform")
    assert len(data) == 4 and list(data.labels) == [1, 1, 1, 1]  # 2 clips per sound
    logmel = _open(hf_set / "sound", modality="audio", sample_rate=8000, clip_seconds=0.025)
    assert list(logmel.labels) == [0, 0, 1, 1, 1, 1]
    _one_line_error(hf_set / "dict", "no audio column", modality="audio", sample_rate=8000)


def test_parquet_of_decoded_samples(tmp_path):
    """An audio column of decoded samples ({array, sampling_rate}), as datasets decodes it,
    at another rate: resampled to the run's."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    audio = [{"array": [0.5] * 800, "sampling_rate": 16000}] * 2
    pq.write_table(pa.table({"audio": audio, "label": [3, 4]}), tmp_path / "s.parquet")
    data = _open(tmp_path / "s.parquet", modality="audio", sample_rate=8000,
                 clip_seconds=0.05, representation="waveform", normalize=False)
    assert len(data) == 2 and list(data.labels) == [3, 4]
    assert abs(float(data.get(torch.arange(2))[:, 0, 100:300].mean()) - 0.5) < 0.01


# -- webdataset ----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shards(tmp_path_factory) -> Path:
    import webdataset as wds

    root = tmp_path_factory.mktemp("wds")
    for s in range(3):
        with wds.TarWriter(str(root / f"data-{s:06d}.tar")) as sink:
            for i in range(4):
                n = 4 * s + i
                sink.write({"__key__": f"{n:06d}", "png": _png(10 * n), "cls": n % 3,
                            "wav": _wav(level=0.1 + 0.05 * n)})
    return root


def test_webdataset_shards_patterns_and_classes(shards):
    pattern = str(shards / "data-{000000..000002}.tar")
    data = _open(pattern, 8)
    assert len(data) == 12 and list(data.labels) == [n % 3 for n in range(12)]
    level = ((data.get(torch.arange(12))[:, 0].mean((1, 2)) + 1) * 127.5).round()
    assert level.tolist() == [10 * n for n in range(12)]
    assert data.names[5] == f"{shards / 'data-000001.tar'}#000005"
    assert len(_open(shards / "data-000001.tar")) == 4
    assert len(_open(f"wds:{shards}?drop=0")) == 8
    assert list(labels_of(str(shards / "data-{000000,000002}.tar") + "?classes=1")) == [1, 1]
    sounds = _open(pattern, modality="audio", sample_rate=8000, clip_seconds=0.05,
                   representation="waveform")
    assert len(sounds) == 12 and list(sounds.labels) == list(data.labels)
    _one_line_error(str(shards / "data-{000000..000005}.tar"), "data-000003.tar does not exist")
    _one_line_error(f"{pattern}?split=test", "is one split")


def test_webdataset_rank_split(shards):
    from latentgen.data import open_standard

    found = open_standard(str(shards / "data-{000000..000002}.tar"), "image")
    assert found is not None and found.records is not None
    rows = {part: [r.row for r in found.records(part)] for part in ((0, 2), (1, 2))}
    assert rows[(0, 2)] == [0, 1, 2, 3, 8, 9, 10, 11]  # shards 0 and 2
    assert rows[(1, 2)] == [4, 5, 6, 7]  # shard 1
    dropped = open_standard(f"{shards}?drop=0", "image")
    assert [r.row for r in dropped.records((1, 2))] == [2, 3, 4]  # rows of the selection


def _model(size: int) -> SimpleNamespace:
    """What ``prepare`` needs of a model: its modality, options and ``open_data``."""
    mod = get_registry().modality("image")
    opts = mod.make_options({"image_size": size, "channels": 1})
    return SimpleNamespace(modality=mod, options=opts, open_data=lambda s: _open(s, size))


def test_prepare_streams_shards_and_keeps_labels(shards, tmp_path):
    source = str(shards / "data-{000000..000002}.tar") + "?drop=2"
    result = prepare(_model(8), source, tmp_path / "s.u8")
    assert result["examples"] == 8 and result["source"].endswith(".tar?drop=2")
    packed, direct = open_prepared(str(tmp_path / "s.u8"), _model(8).modality), _open(source, 8)
    assert np.array_equal(packed.labels, direct.labels)
    assert torch.equal(packed.get(torch.arange(8)), direct.get(torch.arange(8)))
    assert list(direct.subset(torch.tensor([2, 0])).labels) == list(direct.labels[[2, 0]])


def test_torchrun_processes_prepare_one_file_together(shards, tmp_path):
    """Two processes each decode their own shards into one file: the bytes one process
    writes; a corrupt record in one process's shards stops both, one line each."""
    source = str(shards / "data-{000000..000002}.tar") + "?drop=1"
    options = ["--modality", "image", "--image-size", "8", "--channels", "1"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}

    def torchrun(data: str, out: Path) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                               "--nproc-per-node=2", "-m", "latentgen", "prepare", "--data",
                               data, *options, "--out", str(out)],
                              capture_output=True, text=True, env=env, timeout=300)

    done = torchrun(source, tmp_path / "two.u8")
    assert done.returncode == 0, done.stderr[-2000:]
    prepare(_model(8), source, tmp_path / "one.u8")
    assert (tmp_path / "two.u8").read_bytes() == (tmp_path / "one.u8").read_bytes()
    assert np.array_equal(np.load(tmp_path / "two.u8.labels.npy"),
                          np.load(tmp_path / "one.u8.labels.npy"))
    import webdataset as wds

    for s in (0, 2):
        (tmp_path / f"bad-{s}.tar").write_bytes((shards / f"data-00000{s}.tar").read_bytes())
    with wds.TarWriter(str(tmp_path / "bad-1.tar")) as sink:  # rank 1's shard
        sink.write({"__key__": "x", "png": b"not a png", "cls": 0})
    failed = torchrun(str(tmp_path / "bad-{0..2}.tar"), tmp_path / "bad.u8")
    errors = sorted(line for line in failed.stderr.splitlines() if line.startswith("error"))
    assert len(errors) == 2 and "bad-1.tar#x" in errors[1], failed.stderr[-2000:]
    assert "another process" in errors[0] and not list(tmp_path.glob("*bad.u8*"))


# -- errors --------------------------------------------------------------------------------
def test_missing_extras_name_what_to_install(tmp_path, hf_set, monkeypatch):
    _svhn(tmp_path / "train_32x32.mat", 2)
    monkeypatch.setitem(sys.modules, "scipy.io", None)
    _one_line_error(tmp_path / "train_32x32.mat", r"needs scipy: pip install 'latentgen\[svhn\]'")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    _one_line_error(hf_set / "train.parquet", r"needs pyarrow: pip install 'latentgen\[hf\]'")


def test_corrupt_files_are_one_line_naming_the_file(tmp_path, shards):
    (tmp_path / "bad.mat").write_bytes(b"MATLAB 5.0 but not really")
    _one_line_error(tmp_path / "bad.mat", "bad.mat")
    (tmp_path / "bad.parquet").write_bytes(b"PAR1 nope")
    _one_line_error(tmp_path / "bad.parquet", "cannot read .*bad.parquet")
    cut = tmp_path / "cut.tar"
    cut.write_bytes((shards / "data-000000.tar").read_bytes()[:1500])
    _one_line_error(cut, "cut.tar")
    cifar = _cifar10(tmp_path / "c")
    (cifar / "data_batch_3").write_bytes(b"\x80\x04junk")
    _one_line_error(cifar, "cannot read CIFAR batch .*data_batch_3")
    mnist = tmp_path / "m"
    _mnist(mnist)
    with gzip.open(mnist / "MNIST" / "raw" / "train-labels-idx1-ubyte.gz", "wb") as fh:
        fh.write(_idx(np.zeros(3, np.uint8)))
    _one_line_error(mnist, "holds 3 labels for the 30 images")
    np.save(tmp_path / "plain.npy", np.zeros((2, 8, 8), np.uint8))
    _one_line_error(f"{tmp_path / 'plain.npy'}?classes=1", "does not have; the query applies")


# -- the command line ----------------------------------------------------------------------
def test_cli_trains_on_a_class_held_out_and_refuses_bad_queries(tmp_path, cli):
    folder = _cifar10(tmp_path)
    out = tmp_path / "run"
    res = cli("train", *TINY_TRAIN, "--data", f"{folder}?split=train&drop=1",
              "--test-data", f"{folder}?split=test&classes=1", "--epochs", "1", "--out", out)
    assert res.code == 0, res
    assert "?split=train&drop=1" in (out / "config.toml").read_text()
    res = cli("train", *TINY_TRAIN, "--data", f"{folder}?split=valid", "--epochs", "1",
              "--out", tmp_path / "r2")
    lines = [line for line in res.err.strip().splitlines() if line.strip()]
    assert res.code == 2 and len(lines) == 1 and "no split 'valid'" in lines[0], res
