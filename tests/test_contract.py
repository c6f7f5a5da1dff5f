"""Contract every registered modality must meet (parametrized over the registry).

The checks live in ``latentgen.testing`` so that third-party plugins run the same ones; the
test functions keep their names and arguments (tests/test_plugins.py calls them directly).
"""

from __future__ import annotations

import pytest

from latentgen import testing
from latentgen.plugins.registry import get_registry

MODALITIES = sorted(get_registry().modalities)


@pytest.fixture(params=MODALITIES)
def modality(request):
    return get_registry().modality(request.param)


def test_registry_holds_the_builtin_modalities():
    assert "image" in MODALITIES


def test_generator_shapes_gradients_no_nan(modality):
    testing.check_generator(modality)


def test_default_data_matches_generator(modality):
    testing.check_default_data(modality)


@pytest.mark.parametrize("fmt", [None, "each"])
def test_writer_round_trip(modality, fmt, tmp_path):
    if fmt == "each" and not modality.formats:
        pytest.skip(f"{modality.name} writes one format; the default case covers it")
    testing.check_writer_round_trip(modality, tmp_path,
                                    formats=[None] if fmt is None else modality.formats)


def test_formats_are_checked(modality):
    testing.check_formats(modality)


def test_default_data_can_be_prepared(modality, tmp_path):
    testing.check_prepare(modality, tmp_path)
