"""The texture model: random crops of a few pictures, a spatial latent field for pictures, and
synthesis (and its measures) at a larger scale."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image

import latentgen
from latentgen.errors import UserError
from latentgen.plugins.registry import get_registry
from latentgen_image.textures import cobblestones

TINY_TEXTURE = ["--modality", "image", "--image-size", "16", "--channels", "1", "--crops", "24",
                "--latent-field", "--latent-dim", "4", "--width", "8", "--batch-size", "8",
                "--device", "cpu"]


def _image(**values):
    mod = get_registry().modality("image")
    return mod, mod.resolve_options(mod.make_options(values), None)


def test_crops_come_from_the_picture_and_do_not_change(tmp_path):
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 256, (40, 56), dtype=np.uint8)
    Image.fromarray(picture).save(tmp_path / "t.png")
    mod, opts = _image(image_size=16, channels=1, crops=6)
    a = mod.open_dataset(str(tmp_path / "t.png"), opts)
    b = mod.open_dataset(str(tmp_path / "t.png"), opts)
    assert a.storage.shape == (6, 1, 16, 16) and torch.equal(a.storage, b.storage)
    for crop in a.storage[:, 0].numpy():
        assert any(np.array_equal(crop, picture[t:t + 16, s:s + 16])
                   for t in range(25) for s in range(41))
    assert len({c.tobytes() for c in a.storage.numpy()}) > 1


def test_crop_refusals_are_one_line(tmp_path):
    Image.fromarray(np.zeros((10, 30), dtype=np.uint8)).save(tmp_path / "small.png")
    mod, opts = _image(image_size=16, channels=1, crops=2)
    with pytest.raises(UserError, match="smaller than the 16 px crops"):
        mod.open_dataset(str(tmp_path / "small.png"), opts)
    with pytest.raises(UserError, match="does not exist"):
        mod.open_dataset(str(tmp_path / "nothing.png"), opts)
    mod, opts = _image(image_size=16, channels=1)
    with pytest.raises(UserError, match="`crops` N"):
        mod.open_dataset("builtin:texture", opts)
    with pytest.raises(UserError, match="`crops` must be 0"):
        mod.make_options({"crops": -1})


def test_the_embedded_texture_is_drawn_from_its_seed():
    a, b = cobblestones(128, 3, seed=0), cobblestones(128, 3, seed=1)
    assert a.shape == (3, 128, 128) and a.dtype == np.uint8
    assert np.array_equal(a, cobblestones(128, 3, seed=0)) and not np.array_equal(a, b)
    assert a.std() > 20  # stones and mortar, not a flat picture
    mod, opts = _image(channels=1, crops=5)
    assert opts.image_size == 64  # the texture crop size when none is given
    data = mod.open_dataset(None, opts)
    assert data.storage.shape == (5, 1, 64, 64) and data.source == "builtin:texture"


@pytest.mark.parametrize("size", [16, 28, 64])
def test_a_latent_field_makes_the_generator_fully_convolutional(size):
    mod, opts = _image(image_size=size, channels=3, latent_field=True, width=8)
    gen = mod.build_generator(5, opts)
    d, h, w = gen.latent_shape
    assert d == 5 and h == w and gen.data_shape == (3, size, size)
    assert gen(torch.randn(2, *gen.latent_shape)).shape == (2, 3, size, size)
    # twice the field: twice the picture, from the same weights
    assert gen(torch.randn(2, d, 2 * h, 3 * w)).shape == (2, 3, 2 * size, 3 * size)


def test_texture_training_synthesizes_and_measures_larger_pictures(tmp_path, cli):
    out = tmp_path / "run"
    res = cli("train", "--out", out, *TINY_TEXTURE, "--epochs", "2")
    assert res.code == 0, res
    run = latentgen.load_run(out, "cpu")
    assert run.prior.latent_shape == (4, 4, 4)
    x = run.synthesize(3, scale=4)
    assert x.shape == (3, 1, 64, 64) and torch.isfinite(x).all()
    res = cli("synthesize", out, "--n", "2", "--scale", "3", "--out", tmp_path / "big")
    assert res.code == 0, res
    with Image.open(tmp_path / "big" / "sample_00000.png") as img:
        assert img.size == (48, 48)
    res = cli("evaluate", out, "--synthesis", "--no-reconstruction", "--scale", "2",
              "--reference", "builtin:texture-test", "--n", "16", "--json")
    assert res.code == 0, res
    found = json.loads(res.out)["synthesis"]
    assert found["scale"] == 2 and found["n"] == 16
    assert all(np.isfinite([found["swd"], found["swd_pca"], found["swd_floor"]]))


def test_scale_needs_a_latent_field(trained_run, tmp_path, cli):
    res = cli("synthesize", trained_run, "--n", "2", "--scale", "2", "--out", tmp_path / "s")
    assert res.code != 0 and "--latent-field" in res.err
    assert len(res.err.strip().splitlines()) == 1 and not (tmp_path / "s").exists()
    res = cli("synthesize", trained_run, "--n", "2", "--scale", "0", "--out", tmp_path / "s")
    assert res.code != 0 and "--scale must be at least 1" in res.err



def test_measuring_at_scale_refuses_a_prepared_file_in_one_line(tmp_path, cli):
    packed = tmp_path / "crops.lgd"
    res = cli("prepare", "--out", packed, "--modality", "image", "--image-size", "16",
              "--channels", "1", "--crops", "24", "--latent-field")
    assert res.code == 0, res
    out = tmp_path / "run"
    res = cli("train", "--out", out, *TINY_TEXTURE, "--data", packed, "--epochs", "1")
    assert res.code == 0, res
    res = cli("evaluate", out, "--synthesis", "--no-reconstruction", "--scale", "2",
              "--reference", "builtin:texture-test", "--n", "8")
    assert res.code != 0 and "prepared file" in res.err
    assert len(res.err.strip().splitlines()) == 1
    assert cli("synthesize", out, "--n", "1", "--scale", "2", "--out", tmp_path / "s").code == 0


def _bricks(height: int = 192, width: int = 256, seed: int = 0) -> np.ndarray:
    """Courses of bricks (16 x 48 px, each course shifted by half a brick) in grey mortar,
    with grain: a regular texture."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    course = yy // 16
    xs = xx + (course % 2) * 24
    mortar = (yy % 16 < 3) | (xs % 48 < 3)
    pic = np.where(mortar, 200.0, 110.0) + rng.normal(0, 12, (height, width))
    return np.clip(pic, 0, 255).astype(np.uint8)


def test_regularity_tells_repeating_textures_from_irregular_ones():
    from latentgen_image.textures import REGULAR, regularity

    noise = np.random.default_rng(1).integers(0, 256, (1, 192, 256)).astype(np.uint8)
    assert regularity([_bricks()[None]], reach=64) > REGULAR
    assert regularity([cobblestones(channels=1)], reach=64) < REGULAR
    assert regularity([noise], reach=64) < 0.1
    assert regularity([np.full((1, 64, 64), 7, np.uint8)], reach=64) == 0.0  # flat


def test_a_regular_texture_gets_a_small_latent_unless_one_is_given(tmp_path):
    from latentgen_image.textures import REGULAR_LATENT_DIM

    Image.fromarray(_bricks()).save(tmp_path / "bricks.png")
    texture = {"modality": "image", "crops": 8, "latent_field": True, "channels": 1}
    bricks = latentgen.resolve_config(data=str(tmp_path / "bricks.png"), **texture)
    assert bricks.latent_dim == REGULAR_LATENT_DIM
    cobbles = latentgen.resolve_config(**texture)  # the embedded cobblestones: irregular
    assert cobbles.latent_dim == latentgen.resolve_config(modality="image").latent_dim
    given = latentgen.resolve_config(data=str(tmp_path / "bricks.png"), latent_dim=8, **texture)
    assert given.latent_dim == 8
    whole = latentgen.resolve_config(data=str(tmp_path / "bricks.png"), modality="image")
    assert whole.latent_dim != REGULAR_LATENT_DIM  # not a texture model: the default
