"""The seed's experiments: masks, PCA baseline, regimes, interpolation paths, curves, report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

from latentgen.data.examples import Examples
from latentgen.data.masks import BlockMasks, PixelMasks, parse_masks
from latentgen.measures import baselines as evaluation
from latentgen.measures.baselines import fit_pca, regime
from latentgen.measures.interpolation import latent_path
from latentgen.model.observation import GaussianObservation
from latentgen.outputs.curves import final_regime
from latentgen.plugins.registry import get_registry

from .conftest import TINY_TRAIN


def _image():
    mod = get_registry().modality("image")
    return mod, mod.make_options({"image_size": 16, "channels": 1})


# -- masks ---------------------------------------------------------------------------------
def test_block_masks_hide_one_square_per_example_and_depend_on_index_only():
    masks = BlockMasks("block:5", 5, (1, 16, 16), seed=3)
    m = masks.for_indices(torch.tensor([4, 9, 2]))
    assert m.shape == (3, 1, 16, 16)
    assert ((1 - m).flatten(1).sum(1) == 25).all()
    # the same example gets the same hole whatever batch it is in
    assert torch.equal(masks.for_indices(torch.tensor([9]))[0], m[1])
    assert not torch.equal(m[0], m[1])


def test_pixel_masks_drop_the_asked_fraction():
    m = PixelMasks("pixels:0.3", 0.3, (3, 16, 16), seed=0).for_indices(torch.arange(50))
    assert m.shape == (50, 1, 16, 16)
    assert abs(float(1 - m.mean()) - 0.3) < 0.03


def test_mask_files_in_every_documented_shape(tmp_path):
    mod, opts = _image()
    one = np.ones((16, 16), np.uint8)
    one[:4] = 0
    np.save(tmp_path / "one.npy", one)
    per = np.ones((6, 1, 16, 16), bool)
    per[2, 0, 5, 5] = False
    np.save(tmp_path / "per.npy", per)
    m1 = parse_masks(str(tmp_path / "one.npy"), mod, opts, (1, 16, 16))
    assert m1.for_indices(torch.arange(3)).shape == (3, 1, 16, 16)
    assert float(m1.for_indices(torch.tensor([1]))[0, 0, :4].sum()) == 0
    m2 = parse_masks(str(tmp_path / "per.npy"), mod, opts, (1, 16, 16))
    assert float(m2.for_indices(torch.tensor([2]))[0, 0, 5, 5]) == 0
    with pytest.raises(Exception, match="holds 6 masks"):
        m2.check(10, "--data")


@pytest.mark.parametrize("spec, message", [("block:0", "K must be between"),
                                           ("block:x", "whole number"),
                                           ("pixels:1.5", "between 0 and 1"),
                                           ("nothing-here", "not block:K")])
def test_bad_mask_specs_are_one_line_errors(spec, message):
    mod, opts = _image()
    with pytest.raises(Exception, match=message):
        parse_masks(spec, mod, opts, (1, 16, 16))


def test_missing_entries_do_not_enter_the_energy():
    obs = GaussianObservation(0.5)
    y, x = torch.randn(2, 1, 4, 4), torch.randn(2, 1, 4, 4)
    mask = torch.ones(2, 1, 4, 4)
    mask[:, :, :2] = 0
    y2 = y.clone()
    y2[:, :, :2] += 100.0
    assert torch.allclose(obs.energy(y, x, mask), obs.energy(y2, x, mask))


# -- PCA and regimes -----------------------------------------------------------------------
def _low_rank(n: int, dim: int, rank: int, seed: int = 0) -> Examples:
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, rank, generator=g) @ torch.randn(rank, dim, generator=g)
    x = x + 0.05 * torch.randn(n, dim, generator=g)
    return Examples(x.view(n, 1, dim), lambda b: b.float(), "synthetic")


def test_pca_matches_numpy_svd():
    data = _low_rank(200, 48, 6)
    pca = fit_pca(data, 4, torch.device("cpu"))
    x = data.storage.view(200, 48).numpy().astype(np.float64)
    xc = x - x.mean(0)
    vt = np.linalg.svd(xc, full_matrices=False)[2][:4]
    expect = ((xc - xc @ vt.T @ vt) ** 2).mean(1)
    got = pca.per_example_mse(data, torch.device("cpu")).numpy()
    assert np.allclose(got, expect, rtol=1e-4, atol=1e-8)
    assert pca.exact


def test_pca_through_the_gram_matrix_agrees(monkeypatch):
    data = _low_rank(60, 300, 5, seed=1)  # fewer examples than entries: the Gram route
    gram = fit_pca(data, 5, torch.device("cpu"))
    monkeypatch.setattr(evaluation, "GRAM_PCA_MAX_EXAMPLES", 10)  # forces the covariance
    exact = fit_pca(data, 5, torch.device("cpu")).per_example_mse(data, torch.device("cpu"))
    assert torch.allclose(gram.per_example_mse(data, torch.device("cpu")), exact, rtol=1e-3)


@pytest.mark.parametrize("errs, verdict", [((0.010, 0.012, 0.011), "under-fitting"),
                                           ((0.002, 0.030, 0.035), "over-fitting"),
                                           ((0.002, 0.004, 0.050), "good fit")])
def test_regime_rule(errs, verdict):
    assert regime(*errs) == verdict


@pytest.mark.parametrize("errs, pca_test, verdict", [
    ((0.002, 0.005, 0.050), 0.004, "over-fitting"),   # held out above PCA's: over-fitting
    ((0.002, 0.005, 0.050), 0.006, "good fit"),       # ... below it, and near train: good
    ((0.002, 0.007, 0.050), 0.010, "over-fitting"),   # over 3 x train, though below PCA's
    ((0.002, 0.005, 0.050), float("nan"), "good fit"),  # PCA unknown: the other tests
])
def test_regime_rule_with_pca(errs, pca_test, verdict):
    assert regime(*errs, pca_test=pca_test) == verdict


def test_final_regime_uses_the_pca_column():
    rows = [{"epoch": "1", "eval_train_mse": "0.002", "test_mse": "0.005",
             "negative_mse": "0.05", "pca_test_mse": "0.004"}]
    assert final_regime(rows)[0] == "over-fitting"
    rows[0]["pca_test_mse"] = "0.006"
    assert final_regime(rows)[0] == "good fit"


def test_final_regime_reads_the_last_complete_row():
    rows = [{"epoch": "1", "eval_train_mse": "0.01", "test_mse": "0.011", "negative_mse": "0.012"},
            {"epoch": "2", "eval_train_mse": "0.002", "test_mse": "0.004", "negative_mse": "0.05"},
            {"epoch": "3", "eval_train_mse": "", "test_mse": "", "negative_mse": ""}]
    verdict, errs = final_regime(rows)
    assert verdict == "good fit" and errs["test"] == 0.004


# -- interpolation paths -------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["linear", "spherical"])
def test_latent_paths_join_the_endpoints(mode):
    za, zb = torch.randn(3, 8), torch.randn(3, 8)
    path = latent_path(za, zb, 6, mode)
    assert path.shape == (3, 7, 8)
    assert torch.allclose(path[:, 0], za, atol=1e-6) and torch.allclose(path[:, -1], zb, atol=1e-6)


def test_slerp_keeps_the_norm_and_falls_back_to_a_line():
    za = torch.nn.functional.normalize(torch.randn(2, 16), dim=1) * 4
    zb = torch.nn.functional.normalize(torch.randn(2, 16), dim=1) * 4
    path = latent_path(za, zb, 10, "spherical")
    assert torch.allclose(path.norm(dim=-1), torch.full((2, 11), 4.0), atol=1e-4)
    same = latent_path(za, za.clone(), 4, "spherical")
    assert torch.isfinite(same).all() and torch.allclose(same[:, 2], za, atol=1e-5)


# -- from the command line -----------------------------------------------------------------
@pytest.fixture(scope="module")
def curves_run(tiny_data, tmp_path_factory):
    from latentgen_cli.app import main

    out = tmp_path_factory.mktemp("curves") / "run"
    try:
        main(["train", "--data", str(tiny_data["train"]), "--test-data", str(tiny_data["test"]),
              "--negative-data", str(tiny_data["negative"]), "--eval-every", "2",
              "--eval-steps", "20", "--out", str(out), "--epochs", "3", *TINY_TRAIN])
    except SystemExit as exc:
        assert not exc.code
    return out


def test_training_tracks_train_test_negative_curves(curves_run):
    from latentgen.assembly.rundir import RunDir

    rows = RunDir(curves_run).read_metrics()
    assert [r["test_mse"] != "" for r in rows] == [False, True, True]  # epochs 2 and 3 (last)
    for r in rows[1:]:
        for col in ("eval_train_mse", "test_mse", "negative_mse"):
            assert 0 < float(r[col]) < 1
    with Image.open(curves_run / "curves.png") as img:
        assert img.size[0] > 300 and img.getextrema() != ((255, 255),) * 3
    from latentgen.outputs.curves import curve_series

    # the chart draws the three evaluated errors and the running training error of each epoch
    series = curve_series(rows)
    assert set(series) == {"train", "test", "negative", "train (running)"}
    assert [x for x, _ in series["test"]] == [2.0, 3.0]
    assert len(series["train (running)"]) == 3


def test_held_out_latents_are_kept_between_evaluations(curves_run, tiny_data, tmp_path,
                                                       monkeypatch):
    """The first evaluation infers from the mode with eval_steps, every later one goes on from
    the latents the previous one found with eval_warm_steps; a resumed run goes on from the
    kept ones; each evaluation's seconds are recorded."""
    import latentgen
    from latentgen.assembly.rundir import RunDir
    from latentgen.training import curves

    rows = RunDir(curves_run).read_metrics()
    assert [r["eval_seconds"] != "" for r in rows] == [False, True, True]
    assert all(float(r["eval_seconds"]) > 0 for r in rows[1:])
    kept = torch.load(curves_run / "checkpoints" / curves.WARM_LATENTS, weights_only=True)
    assert kept["epoch"] == 3 and set(kept["latents"]) == {"test", "negative"}

    calls = []
    real = curves.infer_latents

    def recording(model, device, data, steps, *args, start=None, **kwargs):
        calls.append((len(data), steps, None if start is None else start.clone()))
        return real(model, device, data, steps, *args, start=start, **kwargs)

    monkeypatch.setattr(curves, "infer_latents", recording)
    out = tmp_path / "warm"
    common = dict(data=str(tiny_data["train"]), test_data=str(tiny_data["test"]),
                  eval_every=1, eval_steps=7, eval_warm_steps=3, out=out, latent_dim=4,
                  batch_size=32, langevin_steps=2, device="cpu", image_size=16, channels=1,
                  width=8)
    latentgen.train(epochs=2, **common)
    n_test = len(np.load(tiny_data["test"]))
    held = [c for c in calls if c[0] == n_test]
    train_refine = [c for c in calls if c[0] != n_test]
    assert [(c[1], c[2] is None) for c in held] == [(7, True), (3, False)]
    assert all(c[1] == 3 and c[2] is not None for c in train_refine)  # min(10, warm steps)
    last = torch.load(out / "checkpoints" / curves.WARM_LATENTS, weights_only=True)
    assert last["epoch"] == 2
    calls.clear()
    latentgen.train(out=out, resume=True, epochs=3)
    held = [c for c in calls if c[0] == n_test]
    assert len(held) == 1 and held[0][1] == 3  # warm, from the kept latents of epoch 2
    torch.testing.assert_close(held[0][2].cpu(), last["latents"]["test"])


def test_the_chart_is_redrawn_at_evaluations_and_the_end_not_every_epoch(tiny_data, tmp_path,
                                                                          monkeypatch):
    import latentgen
    from latentgen.training import curves

    drawn = []
    real = curves.write_chart

    def recording(path, png):
        if path.name == "curves.png":
            drawn.append(len(drawn))
        return real(path, png)

    monkeypatch.setattr(curves, "write_chart", recording)
    monkeypatch.setattr(curves, "REDRAW_SECONDS", 1e9)
    latentgen.train(data=str(tiny_data["train"]), test_data=str(tiny_data["test"]),
                    eval_every=3, eval_steps=2, eval_warm_steps=2, epochs=4,
                    out=tmp_path / "r", latent_dim=4, batch_size=32, langevin_steps=1,
                    device="cpu", image_size=16, channels=1, width=8)
    assert len(drawn) == 3  # the first epoch, the evaluation at 3, the last (4); not 2
    monkeypatch.setattr(curves, "REDRAW_SECONDS", 0.0)
    drawn.clear()
    latentgen.train(out=tmp_path / "r", resume=True, epochs=6)
    assert len(drawn) == 2  # every epoch once no time need pass


def test_training_prints_the_regime_and_rule(tiny_data, cli, tmp_path):
    res = cli("train", "--data", tiny_data["train"], "--test-data", tiny_data["test"],
              "--negative-data", tiny_data["negative"], "--eval-steps", "5",
              "--out", tmp_path / "r", "--epochs", "1", *TINY_TRAIN)
    assert res.code == 0, res
    assert "curves show" in res.out and "rule:" in res.out
    assert "the curves' evaluations took" in res.out


def test_masked_training_reconstruct_and_evaluate(tiny_data, cli, tmp_path):
    run = tmp_path / "masked"
    res = cli("train", "--data", tiny_data["train"], "--mask", "block:6", "--out", run,
              "--epochs", "2", *TINY_TRAIN)
    assert res.code == 0, res
    assert 'mask = "block:6"' in (run / "config.toml").read_text()
    res = cli("reconstruct", run, "--mask", "block:6", "--n", "6", "--infer-steps", "20",
              "--out", tmp_path / "rec")
    assert res.code == 0, res
    for kind in ("original", "occluded", "recovered"):
        assert len(list((tmp_path / "rec").glob(f"{kind}_*.png"))) == 6
    occluded = np.asarray(Image.open(tmp_path / "rec" / "occluded_00000.png"))
    assert (occluded == 128).sum() >= 36  # the grey 6x6 hole
    res = cli("evaluate", run, "--test-data", tiny_data["test"], "--mask", "block:6",
              "--infer-steps", "20", "--json")
    assert res.code == 0, res
    result = json.loads(res.out)
    for name in ("train", "test"):
        assert result[name]["recovery_mse"] > 0 and result[name]["mean_fill_mse"] > 0


def test_bad_mask_on_the_command_line(trained_run, cli, tmp_path):
    res = cli("reconstruct", trained_run, "--mask", "block:99", "--out", tmp_path / "x")
    assert res.code == 2 and "K must be between" in res.err
    assert not (tmp_path / "x").exists()


def test_spherical_interpolation_grid(trained_run, cli, tmp_path):
    res = cli("interpolate", trained_run, "--mode", "spherical", "--pairs", "3", "--steps", "4",
              "--out", tmp_path / "s")
    assert res.code == 0, res
    with Image.open(tmp_path / "s" / "grid.png") as grid:
        assert grid.size == (2 * (7 * 18 + 2), 2 * (3 * 18 + 2))  # 3 pairs x (2 + 5) columns
    assert cli("interpolate", trained_run, "--mode", "curvy", "--out", tmp_path / "t").code == 2


def test_image_size_follows_the_data(tmp_path, cli):
    from .conftest import make_faces

    arr = make_faces(40, 28, 1)[:, 0]
    np.save(tmp_path / "d28.npy", arr)
    args = [a for a in TINY_TRAIN]
    i = args.index("--image-size")
    del args[i:i + 2]
    res = cli("train", "--data", tmp_path / "d28.npy", "--out", tmp_path / "r", "--epochs", "1",
              *args)
    assert res.code == 0, res
    assert "image_size = 28" in (tmp_path / "r" / "config.toml").read_text()
    res = cli("train", "--data", tmp_path / "d28.npy", "--out", tmp_path / "r2", "--epochs", "1",
              "--image-size", "30", *args)
    assert res.code == 2 and "nearest are 28 and 32" in res.err


def test_masks_in_reconstruct_follow_the_run_seed(tiny_data, cli, tmp_path):
    from latentgen.data.masks import BlockMasks

    run = tmp_path / "seeded"
    assert cli("train", "--data", tiny_data["train"], "--mask", "block:6", "--seed", "3",
               "--out", run, "--epochs", "1", *TINY_TRAIN).code == 0
    res = cli("reconstruct", run, "--mask", "block:6", "--n", "2", "--infer-steps", "5",
              "--out", tmp_path / "rec")
    assert res.code == 0, res
    hole = BlockMasks("block:6", 6, (1, 16, 16), seed=3).for_indices(torch.tensor([1]))[0, 0]
    occluded = np.asarray(Image.open(tmp_path / "rec" / "occluded_00001.png"))
    assert ((occluded == 128) >= (hole.numpy() == 0)).all()  # grey wherever training hid


def test_per_example_mask_files_measure_the_sets_they_fit(trained_run, tiny_data, cli, tmp_path):
    masks = np.ones((32, 16, 16), np.uint8)  # one per test example
    masks[:, 4:10, 4:10] = 0
    np.save(tmp_path / "m.npy", masks)
    res = cli("evaluate", trained_run, "--test-data", tiny_data["test"], "--mask",
              tmp_path / "m.npy",
              "--infer-steps", "5", "--json")
    assert res.code == 0, res
    result = json.loads(res.out)
    assert "test" in result and "train" not in result and result["test"]["recovery_mse"] > 0


def test_whole_example_masks_are_refused(trained_run, cli, tmp_path):
    np.save(tmp_path / "zero.npy", np.zeros((16, 16), np.uint8))
    for spec in ("block:16", tmp_path / "zero.npy"):
        res = cli("evaluate", trained_run, "--mask", spec)
        assert res.code == 2 and ("K must be between 1 and 15" in res.err
                                  or "hides every entry" in res.err), res


def test_regime_of_non_numbers_is_undetermined():
    assert regime(float("nan"), 0.1, 0.2) == "undetermined"


def test_training_from_the_same_seed_gives_the_same_weights(tiny_data, cli, tmp_path):
    from latentgen.run import Run as TrainedRun

    for name in ("a", "b"):
        torch.manual_seed(len(name) * 11 + ord(name))  # a different global state each time
        assert cli("train", "--data", tiny_data["train"], "--out", tmp_path / name,
                   "--epochs", "1", *TINY_TRAIN).code == 0
    a, b = (TrainedRun.load(tmp_path / n, "cpu").model.generator.state_dict() for n in "ab")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_report_out_below_a_file_is_a_clear_error(trained_run, cli, tmp_path):
    (tmp_path / "afile").write_text("x")
    res = cli("report", trained_run, "--out", tmp_path / "afile" / "r.html")
    assert res.code == 2 and "cannot write there" in res.err
