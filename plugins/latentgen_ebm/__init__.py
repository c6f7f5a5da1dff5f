"""latentgen's latent-space energy-based prior (``--prior ebm``), registered through the
``register_priors`` hook like any third-party prior: p(Z) ~ exp(-E(Z)) N(0, I), E a small
MLP learned beside the generator (Pang, Han, Nijkamp, Zhu, Wu, NeurIPS 2020)."""

from __future__ import annotations

from collections.abc import Callable

from latentgen import hookimpl
from latentgen_ebm.energy import EnergyPrior

__all__ = ["EnergyPrior", "register_priors"]


@hookimpl
def register_priors(register: Callable) -> None:
    register("ebm", EnergyPrior)
