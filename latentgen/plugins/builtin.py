"""The core's own plugin: the N(0, I) and learned Gaussian priors, the built-in samplers and
the feature extractors: ``fid_inception`` (comparable with published FID) and ``inception``
(torchvision's, not comparable)."""

from __future__ import annotations

from collections.abc import Callable

from latentgen.model.priors import LearnedGaussian, StandardNormal
from latentgen.model.samplers import AdaptiveMAP, GradientDescent, Langevin, UnadjustedLangevin
from latentgen.plugins.fid_inception import fid_inception_extractor
from latentgen.plugins.hookspecs import hookimpl
from latentgen.plugins.inception import inception_extractor


@hookimpl
def register_priors(register: Callable) -> None:
    register("normal", StandardNormal)
    register("gaussian", LearnedGaussian)


@hookimpl
def register_samplers(register: Callable) -> None:
    register("langevin", Langevin)
    register("ula", UnadjustedLangevin)
    register("gd", GradientDescent)
    register("map", AdaptiveMAP)


@hookimpl
def register_extractors(register: Callable) -> None:
    register("inception", inception_extractor)
    register("fid_inception", fid_inception_extractor)
