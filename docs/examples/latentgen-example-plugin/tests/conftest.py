"""Make the plugin importable and registered for its tests.

Installed (``pip install -e '.[test]'``), latentgen finds the plugin through its entry point;
from a plain checkout the plugin is registered in-process for each test instead.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from latentgen.testing import registered

PLUGIN_ROOT = Path(__file__).resolve().parents[1]
if str(PLUGIN_ROOT) not in sys.path:  # so a checkout runs its tests without installing
    sys.path.insert(0, str(PLUGIN_ROOT))

import latentgen_waves  # noqa: E402  (importable through the path above)


@pytest.fixture
def waves():
    """The registered 'waves' modality."""
    with registered(latentgen_waves, "waves") as registry:
        yield registry.modality("waves")
