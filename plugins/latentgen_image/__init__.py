"""latentgen's image modality: DCGAN-style 2D generators, image datasets, PNG writers.

Registered through the ``latentgen`` entry-point group, exactly like a third-party plugin.
"""

from __future__ import annotations

from collections.abc import Callable

from latentgen import __version__ as __version__  # built in: latentgen's own version
from latentgen import hookimpl

from .modality import ImageModality


@hookimpl
def register_modalities(register: Callable) -> None:
    register(ImageModality())
