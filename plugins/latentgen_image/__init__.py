"""latentgen's image modality: DCGAN-style 2D generators, image datasets, PNG writers.

Registered through the ``latentgen`` entry-point group, exactly like a third-party plugin.
"""

from __future__ import annotations

from typing import Callable

from latentgen import hookimpl

from .modality import ImageModality

__version__ = "0.1.0"


@hookimpl
def register_modalities(register: Callable) -> None:
    register(ImageModality())
