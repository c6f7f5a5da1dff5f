"""The model's parts: the generator interface and nets, priors, observation model, samplers.

The names below are stable for plugins: a modality plugin imports them from ``latentgen.model``.
"""

from typing import TYPE_CHECKING

from latentgen._exports import lazy_exports

_EXPORTS = {
    "Generator": "latentgen.model.generator",
    "UpsamplingGenerator": "latentgen.model.nets",
    "GENERATOR_DESIGNS": "latentgen.model.nets",
    "generate": "latentgen.model.nets",
    "halving_widths": "latentgen.model.nets",
    "GaussianObservation": "latentgen.model.observation",
    "Prior": "latentgen.model.priors",
    "StandardNormal": "latentgen.model.priors",
    "AdaptiveMAP": "latentgen.model.samplers",
    "GradientDescent": "latentgen.model.samplers",
    "Langevin": "latentgen.model.samplers",
    "Sampler": "latentgen.model.samplers",
    "UnadjustedLangevin": "latentgen.model.samplers",
    "normal_like": "latentgen.model.samplers",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

if TYPE_CHECKING:
    from latentgen.model.generator import Generator
    from latentgen.model.nets import (
        GENERATOR_DESIGNS,
        UpsamplingGenerator,
        generate,
        halving_widths,
    )
    from latentgen.model.observation import GaussianObservation
    from latentgen.model.priors import Prior, StandardNormal
    from latentgen.model.samplers import (
        AdaptiveMAP,
        GradientDescent,
        Langevin,
        Sampler,
        UnadjustedLangevin,
        normal_like,
    )
