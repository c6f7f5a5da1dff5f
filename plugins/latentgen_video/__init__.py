"""latentgen's video modality, registered through the `latentgen` entry-point group like any
third-party plugin."""

from __future__ import annotations

from typing import Callable

from latentgen import hookimpl

from .modality import VideoModality

__version__ = VideoModality.version


@hookimpl
def register_modalities(register: Callable) -> None:
    register(VideoModality())
