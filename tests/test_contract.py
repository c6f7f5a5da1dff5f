"""Contract every registered modality must meet (parametrized over the registry)."""

from __future__ import annotations

import pytest
import torch

from latentgen.plugins import get_registry

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
    assert x.min() >= lo and x.max() <= hi
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


def test_writer_round_trip(modality, tmp_path):
    opts = modality.make_options()
    data = modality.open_dataset(None, opts)
    x = data.get(torch.arange(3))
    paths = modality.write_examples(x, tmp_path, "ex", opts)
    # one file or more per example (a WAV and its spectrogram, say), every one on disk
    assert len(paths) >= 3 and len(paths) % 3 == 0 and all(p.exists() for p in paths)
    back = modality.read_examples(paths, opts)
    assert back.shape == x.shape
    lo, hi = modality.data_range
    assert (back - x).abs().max() <= (hi - lo) / 255 + 1e-6
    grid = modality.write_grid(x[:2].unsqueeze(0), tmp_path / "grid", opts)
    assert grid and all(p.exists() and p.stat().st_size > 0 for p in grid)
