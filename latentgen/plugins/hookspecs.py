"""Hook specifications: the whole contract between latentgen and its plugins.

Every hook receives a ``register`` callback instead of returning a list, so the core can check
names and clashes and attribute each registration to the plugin that made it.
"""

from __future__ import annotations

from collections.abc import Callable

import pluggy

hookspec = pluggy.HookspecMarker("latentgen")
hookimpl = pluggy.HookimplMarker("latentgen")


@hookspec
def register_modalities(register: Callable) -> None:
    """Register data modalities: call ``register(modality)`` with a ``latentgen.Modality``."""


@hookspec
def register_priors(register: Callable) -> None:
    """Register latent priors: call ``register(name, factory)``; factory(latent_shape) -> Prior."""


@hookspec
def register_samplers(register: Callable) -> None:
    """Register posterior samplers: call ``register(name, cls)``; cls(step_size) -> Sampler."""


@hookspec
def register_extractors(register: Callable) -> None:
    """Register feature extractors for FID and KID: call ``register(name, factory)``;
    factory(device, weights) -> a callable taking feature pictures (N, C, H, W) and giving
    features (N, F). ``weights`` is a path the user gave (``--extractor-weights``) or None.
    ``evaluate --synthesis --extractor NAME`` uses one."""


@hookspec
def register_observers(register: Callable) -> None:
    """Register training observers: call ``register(name, factory)``;
    factory(run_dir, config) -> latentgen.Observer. ``--observer NAME`` turns one on."""
