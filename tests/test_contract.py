"""Contract every registered modality must meet (parametrized over the registry)."""

from __future__ import annotations

import pytest
import torch

from latentgen import UserError
from latentgen.plugins.registry import get_registry

MODALITIES = sorted(get_registry().modalities)


@pytest.fixture(params=MODALITIES)
def modality(request):
    return get_registry().modality(request.param)


def test_registry_holds_the_builtin_modalities():
    assert "image" in MODALITIES


def test_generator_shapes_gradients_no_nan(modality):
    opts = modality.make_options()
    gen = modality.build_generator(8, opts)
    z = torch.randn(3, *gen.latent_shape)
    x = gen(z)
    assert x.shape == (3, *gen.data_shape)
    assert torch.isfinite(x).all()
    lo, hi = modality.data_range
    room = getattr(gen, "headroom", 1.0)  # a little room beyond the range, clipped on output
    assert 1.0 <= room <= 1.25
    assert x.min() >= lo * room and x.max() <= hi * room
    x.pow(2).sum().backward()
    for name, p in gen.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, f"{name} got no gradient"


def test_default_data_matches_generator(modality):
    opts = modality.make_options()
    data = modality.open_dataset(None, opts)
    gen = modality.build_generator(8, opts)
    assert len(data) > 0
    assert data.example_shape == gen.data_shape
    batch = data.get(torch.arange(min(4, len(data))))
    assert torch.isfinite(batch).all()
    lo, hi = modality.data_range
    assert batch.min() >= lo and batch.max() <= hi


@pytest.mark.parametrize("fmt", [None, "each"])
def test_writer_round_trip(modality, fmt, tmp_path):
    if fmt == "each" and not modality.formats:
        pytest.skip(f"{modality.name} writes one format; the default case covers it")
    opts = modality.make_options()
    data = modality.open_dataset(None, opts)
    x = data.get(torch.arange(3))
    lo, hi = modality.data_range
    for f in ([None] if fmt is None else list(modality.formats)):
        out = tmp_path / str(f)
        paths = modality.save_examples(x, out, "ex", opts, fmt=f)
        # one file or more per example (a WAV and its spectrogram, say), every one on disk
        assert len(paths) >= 3 and len(paths) % 3 == 0 and all(p.exists() for p in paths)
        back = modality.read_examples(paths, opts)
        assert back.shape == x.shape
        err = (back - x).abs()
        if modality.lossy_writers:  # e.g. H.264: judged on the mean, within 2 % of the range
            assert err.mean() <= 0.02 * (hi - lo)
        else:
            assert err.max() <= (hi - lo) / 255 + 1e-6
        grid = modality.save_grid(x[:2].unsqueeze(0), out / "grid", opts, fmt=f)
        assert grid and all(p.exists() and p.stat().st_size > 0 for p in grid)


def test_formats_are_checked(modality):
    for fmt in modality.formats:
        modality.check_format(fmt)
    with pytest.raises(UserError, match="--format"):
        modality.check_format("no-such-format")
