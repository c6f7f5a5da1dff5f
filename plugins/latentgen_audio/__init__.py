"""latentgen's audio modality, registered through the `latentgen` entry-point group like any
third-party plugin."""

from __future__ import annotations

from typing import Callable

from latentgen import hookimpl

from .modality import AudioModality

__version__ = AudioModality.version


@hookimpl
def register_modalities(register: Callable) -> None:
    register(AudioModality())
