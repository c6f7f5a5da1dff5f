"""latentgen's audio modality, registered through the `latentgen` entry-point group like any
third-party plugin."""

from __future__ import annotations

from collections.abc import Callable

from latentgen import __version__ as __version__  # built in: latentgen's own version
from latentgen import hookimpl

from .modality import AudioModality


@hookimpl
def register_modalities(register: Callable) -> None:
    register(AudioModality())
