"""The waves modality against latentgen's modality contract (``latentgen.testing``), and the
plugin's own behaviour."""

from __future__ import annotations

import pytest

from latentgen import UserError
from latentgen.testing import (
    check_default_data,
    check_generator,
    check_modality,
    check_prepare,
    check_writer_round_trip,
)


def test_waves_meets_the_modality_contract(waves, tmp_path):
    # generator, embedded default data, formats, writers, `latentgen prepare`
    check_modality(waves, tmp_path)


@pytest.mark.parametrize("length", [16, 32, 128])
def test_every_length_meets_the_contract(waves, length, tmp_path):
    options = {"length": length, "count": 8}  # as `--length N --count 8` gives them
    check_generator(waves, options)
    check_default_data(waves, options)
    check_writer_round_trip(waves, tmp_path, options=options)
    check_prepare(waves, tmp_path, options)


def test_bad_options_are_refused_by_their_declarations(waves):
    with pytest.raises(UserError, match=r"^`length` must be 16, 32, 64 or 128, got 40$"):
        waves.make_options({"length": 40})
    with pytest.raises(UserError, match=r"^`count` must be at least 1, got 0$"):
        waves.make_options({"count": 0})
