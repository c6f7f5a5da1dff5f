"""Synthesis measures: the multi-scale sliced Wasserstein distance, the probabilistic PCA
baseline, each modality's feature pictures, and `evaluate --synthesis`."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from latentgen.data.examples import Examples
from latentgen.measures.swd import SWDReference, laplacian_pyramid, swd
from latentgen.measures.synthesis import fit_ppca
from latentgen.plugins.registry import get_registry


def _pictures(n: int = 96, side: int = 32, seed: int = 0) -> torch.Tensor:
    """Smooth random pictures in [-1, 1] (blurred noise: structure at several scales)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, side, side, generator=g)
    return torch.tanh(F.avg_pool2d(x, 5, 1, 2) * 2)


def test_a_set_is_at_distance_zero_from_itself():
    x = _pictures()
    assert swd(x, x).mean == 0.0
    assert SWDReference(x).distance(x.clone()).levels == [0.0] * len(laplacian_pyramid(x))


@pytest.mark.parametrize("change", ["shift", "blur"])
def test_the_distance_grows_with_a_shift_or_a_blur(change):
    x = _pictures()
    ref = SWDReference(x)
    if change == "shift":
        versions = [x + s for s in (0.05, 0.1, 0.2, 0.4)]
    else:
        versions = [F.avg_pool2d(x, k, 1, k // 2, count_include_pad=False) for k in (3, 5, 7, 9)]
    distances = [ref.distance(v).mean for v in versions]
    assert all(a < b for a, b in zip([0.0, *distances], distances)), distances


def test_other_data_is_farther_than_more_of_the_same(tiny_data):
    test = torch.from_numpy(np.load(tiny_data["test"])).float()[:, None] / 127.5 - 1
    train = torch.from_numpy(np.load(tiny_data["train"])).float()[:, None] / 127.5 - 1
    other = torch.from_numpy(np.load(tiny_data["negative"])).float()[:, None] / 127.5 - 1
    n = min(len(test), len(other))
    ref = SWDReference(test[:n])
    assert ref.distance(train[:n]).mean < ref.distance(other[:n]).mean


def test_the_pyramid_goes_down_to_16_pixels():
    assert [lv.shape[-1] for lv in laplacian_pyramid(torch.zeros(1, 1, 64, 64))] == [64, 32, 16]
    assert [lv.shape[-1] for lv in laplacian_pyramid(torch.zeros(1, 1, 16, 16))] == [16]


def test_probabilistic_pca_reproduces_the_covariance_in_its_subspace():
    g = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(20, 3, generator=g, dtype=torch.float64))[0].T
    scales = torch.tensor([3.0, 2.0, 1.0], dtype=torch.float64)
    y = ((torch.randn(4000, 3, generator=g, dtype=torch.float64) * scales) @ basis
         + 0.1 * torch.randn(4000, 20, generator=g, dtype=torch.float64))
    data = Examples(y.float().view(4000, 1, 20), lambda b: b, "gaussian")
    ppca = fit_ppca(data, 3, torch.device("cpu"))
    assert ppca.noise == pytest.approx(0.01, rel=0.1)
    comp = ppca.components.double()
    data_cov = torch.cov(((y - y.mean(0)) @ comp.T).T)
    for noise in (False, True):
        x = ppca.sample(20000, generator=torch.Generator().manual_seed(1),
                        noise=noise).double().flatten(1)
        sample_cov = torch.cov(((x - ppca.mean) @ comp.T).T)
        torch.testing.assert_close(sample_cov, data_cov, atol=0.15, rtol=0.05)
        outside = (x - ppca.mean) - ((x - ppca.mean) @ comp.T) @ comp
        # probabilistic PCA's isotropic noise (0.1 per entry) only with noise=True
        assert outside.std().item() == (pytest.approx(0.1, rel=0.1) if noise
                                        else pytest.approx(0.0, abs=1e-5))


def test_the_synthesis_baseline_is_the_noise_free_linear_model(trained_run, monkeypatch):
    """rel compares f(Z), which has no observation noise, with PCA's samples: those must be
    mean + W z too, with nothing outside the components' span (noise there would handicap
    the baseline and flatter every rel)."""
    import latentgen
    from latentgen.measures import synthesis

    seen: list[torch.Tensor] = []
    fitted: list[synthesis.PPCA] = []
    real_pictures, real_fit = synthesis._pictures, synthesis.fit_ppca

    def fit_unclipped(*args, **kwargs):  # clipping to the data range would leave the span
        fitted.append(real_fit(*args, **{**kwargs, "clip": None}))
        return fitted[-1]

    monkeypatch.setattr(synthesis, "fit_ppca", fit_unclipped)
    monkeypatch.setattr(synthesis, "_pictures", lambda run, x, options=None:
                        (seen.append(x), real_pictures(run, x, options))[1])
    latentgen.load_run(trained_run).synthesis_quality("train", n=64)
    baseline = seen[2].double().flatten(1)  # reference, model, pca, floor: in that order
    comp, mean = fitted[0].components.double(), fitted[0].mean.double()
    inside = ((baseline - mean) @ comp.T) @ comp + mean
    assert fitted[0].noise > 1e-4  # the data has variance outside the span to leave out
    torch.testing.assert_close(baseline, inside, atol=1e-4, rtol=0)


def test_feature_pictures_have_the_documented_shapes():
    reg = get_registry()
    audio, video, image = (reg.modality(m) for m in ("audio", "video", "image"))
    sound = torch.zeros(4, 1, 16000)
    mel = audio.feature_pictures(sound, audio.make_options({"representation": "waveform"}))
    assert mel.shape == (4, 1, 64, 101)  # (N, 1, mel bands, frames)
    pictures_of_sound = torch.zeros(4, 1, 64, 101)  # a log-mel run's own: the same pictures
    assert audio.feature_pictures(pictures_of_sound, audio.make_options({})).shape == mel.shape
    clips = torch.zeros(2, 3, 8, 16, 16)
    assert video.feature_pictures(clips, video.make_options({})).shape == (2 * 7, 6, 16, 16)
    pictures = torch.zeros(5, 3, 16, 16)
    assert image.feature_pictures(pictures, image.make_options({})) is pictures
    # the default for sequences a plugin does not describe: rows of a square picture
    assert image.__class__.__bases__[0].feature_pictures(image, torch.zeros(3, 2, 100),
                                                         None).shape == (3, 2, 10, 10)


def test_evaluate_synthesis_gives_every_field(trained_run, tiny_data, cli):
    res = cli("evaluate", trained_run, "--synthesis", "--n", "64", "--test-data",
              tiny_data["test"], "--json")
    assert res.code == 0, res
    found = json.loads(res.out)["synthesis"]
    for key in ("swd", "swd_levels", "swd_pca", "swd_floor", "rel", "n", "reference"):
        assert key in found, key
    assert found["reference"] == "test" and found["n"] == 32  # the test set holds 32
    assert found["swd_floor"] < found["swd_pca"]
    res = cli("evaluate", trained_run, "--synthesis", "--n", "64", "--reference", "train")
    assert res.code == 0 and "floor (training examples)" in res.out and "rel" in res.out, res


def test_reference_test_without_test_data_is_one_line(trained_run, cli):
    res = cli("evaluate", trained_run, "--synthesis", "--reference", "test")
    assert res.code == 2 and "--reference test needs held-out data" in res.err, res


def test_the_python_api_measures_synthesis(trained_run):
    import latentgen

    run = latentgen.load_run(trained_run, device="cpu")
    a = run.synthesis_quality("train", n=40, seed=3)
    b = run.synthesis_quality("train", n=40, seed=3)
    assert a["n"] == 40
    for key in ("swd", "swd_pca", "swd_floor"):  # seeded (rel may be NaN, unequal to itself)
        assert a[key] == b[key] > 0, key


def test_synthesis_alone_leaves_the_reconstruction_errors_out(trained_run, cli):
    res = cli("evaluate", trained_run, "--synthesis", "--no-reconstruction", "--n", "32",
              "--json")
    assert res.code == 0, res
    assert sorted(json.loads(res.out)) == ["latents", "synthesis"]


# -- FID and KID, with a pluggable feature extractor ----------------------------------------
class _StandIn:
    """A feature extractor for tests (no weights): 4 x 4 average-pooled pictures."""

    __version__ = "test"

    @staticmethod
    def factory(device=None, weights=None):
        return lambda pictures: F.adaptive_avg_pool2d(pictures.float(), 4).flatten(1)

    from latentgen import hookimpl as _hookimpl

    @staticmethod
    @_hookimpl
    def register_extractors(register):
        register("standin", _StandIn.factory)


@pytest.fixture
def standin():
    from latentgen.plugins import registry

    registry.register_plugin(_StandIn, name="standin")
    yield
    registry.unregister_plugin("standin")


def test_fid_and_kid_are_near_zero_for_one_distribution_and_grow_with_a_shift():
    from latentgen.measures.features import frechet_distance, kernel_inception_distance

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(2000, 8, generator=g), torch.randn(2000, 8, generator=g)
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    fids = [frechet_distance(a, b + s) for s in (0.0, 0.5, 1.0)]
    assert fids[0] < 0.05 and fids[0] < fids[1] < fids[2]
    kid, se = kernel_inception_distance(a, b, subsets=20, size=500)
    assert abs(kid) < 3 * se + 1e-3
    assert kernel_inception_distance(a, b + 1.0, subsets=20, size=500)[0] > 10 * se


def test_evaluate_synthesis_with_a_plugged_in_extractor(standin, trained_run, cli):
    res = cli("evaluate", trained_run, "--synthesis", "--no-reconstruction", "--n", "48",
              "--extractor", "standin", "--json")
    assert res.code == 0, res
    found = json.loads(res.out)["synthesis"]
    for key in ("fid", "kid", "kid_se", "fid_pca", "kid_pca", "fid_floor", "kid_floor"):
        assert key in found, key
    assert found["extractor"] == "standin"
    assert cli("plugins").out.count("standin") >= 2  # the plugin and what it registers


def test_inception_without_its_weights_says_so_in_one_line(trained_run, tmp_path, cli,
                                                           monkeypatch):
    from torchvision.models import Inception_V3_Weights

    def offline(*args, **kwargs):
        raise OSError("no network")

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "cache"))
    monkeypatch.setattr(type(Inception_V3_Weights.IMAGENET1K_V1), "get_state_dict", offline)
    res = cli("evaluate", trained_run, "--synthesis", "--no-reconstruction", "--n", "8",
              "--extractor", "inception")
    assert res.code == 2 and "needs torchvision's Inception-v3 weights" in res.err, res
    assert len(res.err.strip().splitlines()) == 1
    res = cli("evaluate", trained_run, "--synthesis", "--no-reconstruction", "--n", "8",
              "--extractor", "inception", "--extractor-weights", tmp_path / "none.pth")
    assert res.code == 2 and "does not exist" in res.err, res


def test_inception_reads_weights_from_a_path(tmp_path):
    from torchvision.models import inception_v3

    from latentgen.plugins.inception import inception_extractor

    net = inception_v3(weights=None, aux_logits=True, init_weights=False)
    torch.save(net.state_dict(), tmp_path / "w.pth")  # a stand-in for the ImageNet file
    extractor = inception_extractor("cpu", tmp_path / "w.pth")
    assert extractor(torch.zeros(2, 1, 16, 16)).shape == (2, 2048)


def test_synthesis_every_adds_the_measures_to_the_metrics_and_keeps_resume_exact(tiny_data,
                                                                                tmp_path):
    import csv

    import latentgen

    tiny = dict(data=str(tiny_data["train"]), image_size=16, channels=1, latent_dim=4,
                batch_size=32, langevin_steps=5, width=8, device="cpu", synthesis_every=1,
                lr_end=1.0)  # constant: resumed with more --epochs, a decay would stretch
    latentgen.train(out=tmp_path / "straight", epochs=2, **tiny)
    latentgen.train(out=tmp_path / "split", epochs=1, **tiny)
    latentgen.train(out=tmp_path / "split", resume=True, epochs=2)
    with open(tmp_path / "straight" / "metrics.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert all(float(r["swd"]) > 0 and float(r["swd_floor"]) > 0 for r in rows)
    assert (tmp_path / "straight" / "synthesis.png").exists()
    a = torch.load(tmp_path / "straight/checkpoints/last.pt", weights_only=True)
    b = torch.load(tmp_path / "split/checkpoints/last.pt", weights_only=True)
    for key in a["generator"]:
        assert torch.equal(a["generator"][key], b["generator"][key]), key
    assert torch.equal(a["latents"], b["latents"])
