"""FID comparable with papers: the ``fid_inception`` extractor (pytorch-fid's TF-Inception,
here with a stand-in weights file of random numbers: nothing is downloaded), the cache of
real data's statistics, FID from statistics, and the labels that say which FID is which."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from latentgen.errors import UserError
from latentgen.measures import features as fe
from latentgen.plugins import fid_inception

pytest.importorskip("pytorch_fid")


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    """A weights file shaped as pt_inception-2015-12-05-6726825d.pth, of random numbers."""
    return fid_inception.standin_weights(tmp_path_factory.mktemp("weights") / "standin.pth")


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Every test caches in its own folder, never in the user's."""
    monkeypatch.setenv(fe.CACHE_VARIABLE, str(tmp_path / "fid-cache"))


def _pictures(n: int, channels: int, side: int = 24, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.tanh(F.avg_pool2d(torch.randn(n, channels, side, side, generator=g) * 3,
                                   3, 1, 1))


def test_the_features_are_pytorch_fids_of_the_saved_pngs(standin, tmp_path, monkeypatch):
    """What pytorch-fid computes from PNG files, fid_inception computes from the tensors:
    the same uint8 quantisation, gray as RGB, resize and scaling, pool3 features."""
    from pytorch_fid import fid_score
    from pytorch_fid import inception as pf

    from latentgen.data import encode_uint8

    ours = fid_inception.fid_inception_extractor(weights=standin)
    net = fid_inception.fid_shaped_network()
    net.load_state_dict(torch.load(standin, weights_only=True))
    monkeypatch.setattr(pf, "fid_inception_v3", lambda: net)
    model = pf.InceptionV3([3])  # pytorch-fid's defaults: resize and normalise the input
    for channels in (3, 1):
        pictures = _pictures(3, channels, seed=channels)
        files = []
        for i, pic in enumerate(encode_uint8(pictures)):
            files.append(tmp_path / f"{channels}_{i}.png")
            array = pic.permute(1, 2, 0).numpy()
            Image.fromarray(array[..., 0] if channels == 1 else array).save(files[-1])
        expected = fid_score.get_activations(files, model, batch_size=3, num_workers=0)
        torch.testing.assert_close(ours(pictures).double(), torch.from_numpy(expected),
                                   atol=1e-4, rtol=1e-4)
    assert ours.fid_comparable and ours(torch.zeros(2, 3, 8, 8)).shape == (2, 2048)


def test_missing_weights_name_the_file_and_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(UserError) as err:
        fid_inception.fid_inception_extractor()
    message = str(err.value)
    assert fid_inception.FID_WEIGHTS_FILE in message and str(tmp_path / "hub") in message
    assert "\n" not in message and "http" not in message
    with pytest.raises(UserError, match="does not exist"):
        fid_inception.fid_inception_extractor(weights=tmp_path / "none.pth")
    wrong = tmp_path / "wrong.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, wrong)
    with pytest.raises(UserError, match="is not pytorch-fid's"):
        fid_inception.fid_inception_extractor(weights=wrong)


def test_without_pytorch_fid_it_says_what_to_install(standin, monkeypatch):
    monkeypatch.setitem(sys.modules, "pytorch_fid", None)
    monkeypatch.setitem(sys.modules, "pytorch_fid.inception", None)
    with pytest.raises(UserError) as err:
        fid_inception.fid_inception_extractor(weights=standin)
    assert "latentgen[fid]" in str(err.value) and "\n" not in str(err.value)


def test_the_command_tells_a_missing_file_or_library_in_one_line(trained_run, tmp_path, cli,
                                                                 monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    args = ["evaluate", trained_run, "--synthesis", "--no-reconstruction", "--n", "2",
            "--extractor", "fid_inception"]
    res = cli(*args)
    assert res.code == 2 and fid_inception.FID_WEIGHTS_FILE in res.err, res
    assert len(res.err.strip().splitlines()) == 1
    monkeypatch.setitem(sys.modules, "pytorch_fid", None)
    monkeypatch.setitem(sys.modules, "pytorch_fid.inception", None)
    res = cli(*args)
    assert res.code == 2 and "pip install 'latentgen[fid]'" in res.err, res
    assert len(res.err.strip().splitlines()) == 1


def test_frechet_distance_from_statistics_is_pytorch_fids():
    from pytorch_fid.fid_score import calculate_frechet_distance

    rng = np.random.default_rng(0)
    for dim in (8, 64):
        mu1, mu2 = rng.normal(size=dim), rng.normal(size=dim)
        a, b = rng.normal(size=(dim, 2 * dim)), rng.normal(size=(dim, dim // 2))
        sigma1, sigma2 = a @ a.T / dim, b @ b.T / dim + 0.01 * np.eye(dim)  # one near-singular
        expected = calculate_frechet_distance(mu1, sigma1, mu2, sigma2)
        got = fe.frechet_distance_stats(*(torch.from_numpy(x) for x in
                                          (mu1, sigma1, mu2, sigma2)))
        assert got == pytest.approx(expected, rel=1e-6, abs=1e-8)
    x, y = torch.randn(300, 16), torch.randn(200, 16) + 0.3
    expected = calculate_frechet_distance(
        x.double().mean(0).numpy(), np.cov(x.numpy(), rowvar=False),
        y.double().mean(0).numpy(), np.cov(y.numpy(), rowvar=False))
    assert fe.frechet_distance(x, y) == pytest.approx(expected, rel=1e-6)
    assert fe.frechet_distance(fe.FeatureStats.of(x), y) == fe.frechet_distance(x, y)


class _Counting:
    """A cacheable extractor for tests: 4 x 4 pooled pictures, counting the pictures it saw."""

    cache_key = "counting-v1"

    def __init__(self) -> None:
        self.value_range = (-1.0, 1.0)
        self.seen = 0

    def __call__(self, pictures: torch.Tensor) -> torch.Tensor:
        self.seen += len(pictures)
        return F.adaptive_avg_pool2d(pictures.float(), 4).flatten(1)


def test_reference_statistics_are_computed_once_and_reused(tmp_path):
    net, reference, samples = _Counting(), _pictures(100, 3), _pictures(40, 3, seed=5)
    first = fe.fid(samples, reference, extractor=net, label="cifar/train")
    assert net.seen == 140
    files = list((tmp_path / "fid-cache").glob("*.npz"))
    assert len(files) == 1 and "cifar-train" in files[0].name and "100x3x24x24" in files[0].name
    with np.load(files[0]) as f:  # pytorch-fid reads it as precomputed statistics
        assert f["mu"].shape == (48,) and f["sigma"].shape == (48, 48)
    assert fe.fid(samples, reference, extractor=net, label="cifar/train") == first
    assert net.seen == 180  # only the samples again
    fe.fid(samples, reference[:99], extractor=net)  # another selection: its own entry
    assert net.seen == 180 + 40 + 99 and len(list((tmp_path / "fid-cache").glob("*"))) == 2
    with fe.fid_cache("off"):
        fe.fid(samples, reference, extractor=net)
    assert net.seen == 319 + 140
    with fe.fid_cache(tmp_path / "other"):
        fe.fid(samples, reference, extractor=net)
    assert len(list((tmp_path / "other").glob("*.npz"))) == 1


def test_a_pytorch_fid_statistics_file_is_a_reference(tmp_path):
    net, reference, samples = _Counting(), _pictures(100, 3), _pictures(40, 3, seed=5)
    stats = fe.FeatureStats.of(fe.features(net, reference))
    np.savez(tmp_path / "ref.npz", mu=stats.mu.numpy(), sigma=stats.sigma.numpy())
    assert fe.fid(samples, tmp_path / "ref.npz", extractor=net) == pytest.approx(
        fe.fid(samples, reference, extractor=net), rel=1e-9)
    np.savez(tmp_path / "bad.npz", m=np.zeros(3))
    with pytest.raises(UserError, match="no 'mu' and 'sigma'"):
        fe.FeatureStats.load(tmp_path / "bad.npz")
    (tmp_path / "junk.npz").write_text("junk")
    (tmp_path / "cut.npz").write_bytes((tmp_path / "ref.npz").read_bytes()[:200])
    for bad in ("junk.npz", "cut.npz", "none.npz"):
        with pytest.raises(UserError, match="cannot read feature statistics"):
            fe.FeatureStats.load(tmp_path / bad)
    out = fe.feature_distances(net, fe.FeatureStats.load(tmp_path / "ref.npz"),
                               {"model": samples})
    assert out["fid"] > 0 and out["kid"] != out["kid"]  # KID needs features: NaN


def test_evaluate_with_fid_inception_says_it_is_comparable(standin, trained_run, tmp_path, cli):
    args = ["evaluate", trained_run, "--synthesis", "--no-reconstruction", "--n", "2",
            "--extractor", "fid_inception", "--extractor-weights", standin,
            "--fid-cache", tmp_path / "cache"]
    res = cli(*args)
    assert res.code == 0, res
    assert "FID" in res.out and "comparable with published FID" in res.out
    assert "not comparable" not in res.out
    cached = sorted(p.name for p in (tmp_path / "cache").glob("*.npz"))
    assert len(cached) == 2 and cached[0].startswith("floor-")  # the floor and the reference
    found = json.loads(cli(*args, "--json").out)["synthesis"]
    assert found["extractor"] == "fid_inception" and found["fid_comparable"] is True
    assert found["fid"] >= 0 and found["n"] == 2


def test_other_extractors_are_labelled_not_comparable(trained_run, cli):
    from latentgen import hookimpl
    from latentgen.plugins import registry

    class Plugin:
        @staticmethod
        @hookimpl
        def register_extractors(register):
            register("pooled", lambda device=None, weights=None: _Counting())

    registry.register_plugin(Plugin, name="pooled")
    try:
        args = ["evaluate", trained_run, "--synthesis", "--no-reconstruction", "--n", "8",
                "--extractor", "pooled"]
        assert "not comparable with published FID" in cli(*args).out
        assert json.loads(cli(*args, "--json").out)["synthesis"]["fid_comparable"] is False
    finally:
        registry.unregister_plugin("pooled")
    from latentgen.plugins.inception import InceptionFeatures

    assert InceptionFeatures.fid_comparable is False


def test_few_examples_take_the_short_way_to_the_same_fid():
    g = torch.Generator().manual_seed(1)
    few, many = torch.randn(20, 64, generator=g), torch.randn(500, 64, generator=g) * 1.5
    stats = fe.FeatureStats.of(few)
    long_way = fe.frechet_distance(fe.FeatureStats(stats.mu, stats.sigma, stats.n), many)
    # (the F x F way adds sqrt of round-off from its zero eigenvalues: equal to ~1e-8)
    assert fe.frechet_distance(stats, many) == pytest.approx(long_way, rel=1e-6)
