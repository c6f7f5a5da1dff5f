"""Learning from indirect observations y = A x (``--observe``): the operators, their least-norm
inverse, training and recovery through the CLI, and the PCA-on-y baseline."""

from __future__ import annotations

import json

import pytest
import torch

import latentgen
from latentgen.errors import UserError
from latentgen.model.operators import Blur, Downsample, RandomProjection, min_norm, parse_operator
from tests.conftest import TINY_TRAIN


@pytest.mark.parametrize("shape", [(1, 12), (3, 8, 8), (1, 4, 4, 4)])
def test_operators_are_linear_and_shaped(shape):
    g = torch.Generator().manual_seed(0)
    x1, x2 = torch.randn(5, *shape, generator=g), torch.randn(5, *shape, generator=g)
    for op in (RandomProjection(shape, 0.25, seed=1), Blur(shape, 1.0), Downsample(shape, 2)):
        torch.testing.assert_close(op(2 * x1 - x2), 2 * op(x1) - op(x2), atol=1e-5, rtol=1e-5)
        assert op(x1).shape == (5, *op.observed_shape)
    assert RandomProjection(shape, 0.25, seed=1).observed_shape == (
        round(0.25 * torch.Size(shape).numel()),)
    assert Downsample((3, 8, 8), 2).observed_shape == (3, 4, 4)
    assert Blur((3, 8, 8), 1.0).observed_shape == (3, 8, 8)


def test_the_random_projection_follows_its_seed():
    a, b = RandomProjection((1, 8, 8), 0.5, 3), RandomProjection((1, 8, 8), 0.5, 3)
    assert torch.equal(a.matrix, b.matrix)
    assert not torch.equal(a.matrix, RandomProjection((1, 8, 8), 0.5, 4).matrix)


def test_min_norm_inverts_what_can_be_inverted():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 1, 8, 8, generator=g)
    # downsampling: the least-norm x repeats each block's mean over the block
    op = Downsample((1, 8, 8), 2)
    got = min_norm(op, op(x))
    torch.testing.assert_close(op(got), op(x), atol=1e-5, rtol=1e-5)
    expected = torch.nn.functional.interpolate(op(x), scale_factor=2, mode="nearest")
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-5)
    # a random projection: consistent with y, and orthogonal to A's null space (least norm)
    op = RandomProjection((1, 8, 8), 0.25, 7)  # not x's seed: x must not lie in A's rows
    got = min_norm(op, op(x))
    torch.testing.assert_close(op(got), op(x), atol=1e-4, rtol=1e-4)
    # least norm: the projection of x on A's row space, so x - got is orthogonal to got
    assert (got.flatten(1).norm(dim=1) < x.flatten(1).norm(dim=1)).all()
    inner = ((x - got).flatten(1) * got.flatten(1)).sum(1)
    assert float(inner.abs().max()) < 1e-3 * float(x.flatten(1).norm(dim=1).max()) ** 2


@pytest.mark.parametrize("spec", ["random:0", "random:1.5", "blur:x", "downsample:1",
                                  "downsample:2.5", "mask:3", "random"])
def test_bad_operator_specs_are_one_line_errors(spec):
    with pytest.raises(UserError, match="`observe`") as info:
        parse_operator(spec, (1, 8, 8), 0)
    assert "\n" not in str(info.value)
    with pytest.raises(UserError, match="not a multiple of 3"):
        parse_operator("downsample:3", (1, 8, 8), 0)


@pytest.mark.parametrize("spec", ["random:0.25", "blur:1", "downsample:2"])
def test_a_model_learns_from_observations_and_recovers_the_data(spec, tiny_data, tmp_path,
                                                                cli):
    out = tmp_path / "run"
    res = cli("train", "--data", tiny_data["train"], "--out", out, *TINY_TRAIN, "--epochs",
              "3", "--observe", spec)
    assert res.code == 0, res
    run = latentgen.load_run(out, "cpu")
    assert run.model.observation.operator is not None
    res = cli("evaluate", out, "--test-data", tiny_data["test"], "--infer-steps", "50",
              "--json")
    assert res.code == 0, res
    found = json.loads(res.out)
    assert found["test"]["mse"] > 0 and found["pca"]["test"] > 0
    rec = run.reconstruct(str(tiny_data["test"]), n=4, infer_steps=20)
    assert rec.reconstructions.shape == rec.originals.shape  # x, not y, comes back
    res = cli("evaluate", out, "--test-data", tiny_data["test"], "--mask", "block:4")
    assert res.code != 0 and "leave --mask out" in res.err


def test_observe_and_mask_do_not_combine(tiny_data, tmp_path, cli):
    res = cli("train", "--data", tiny_data["train"], "--out", tmp_path / "run", *TINY_TRAIN,
              "--observe", "blur:1", "--mask", "block:4")
    assert res.code != 0 and "do not combine" in res.err
    assert len(res.err.strip().splitlines()) == 1
