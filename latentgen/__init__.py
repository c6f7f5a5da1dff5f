"""latentgen: generative ConvNets with continuous latent factors, learned by alternating
back-propagation (Langevin inference of each example's latents, then a gradient step on the
generator).

The public API is the names in ``__all__``; they load on first use, so ``import latentgen``
(and ``latentgen --help``) does not import torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from latentgen._exports import lazy_exports
from latentgen.version import __version__

#: public name -> the module that defines it
_EXPORTS = {
    "train": "latentgen.api",
    "load_run": "latentgen.api",
    "resolve_config": "latentgen.api",
    "Run": "latentgen.evaluation.run",
    "TrainConfig": "latentgen.training.config",
    "Observer": "latentgen.training.observers",
    "UserError": "latentgen.errors",
    "Examples": "latentgen.data.examples",
    "Generator": "latentgen.model.generator",
    "UpsamplingGenerator": "latentgen.model.nets",
    "Prior": "latentgen.model.priors",
    "StandardNormal": "latentgen.model.priors",
    "PriorSettings": "latentgen.model.priors",
    "Sampler": "latentgen.model.samplers",
    "Langevin": "latentgen.model.samplers",
    "GradientDescent": "latentgen.model.samplers",
    "Modality": "latentgen.plugins.modality",
    "option": "latentgen.plugins.options",
    "hookimpl": "latentgen.plugins.hookspecs",
}

__all__ = sorted([*_EXPORTS, "__version__"])
__getattr__, __dir__ = lazy_exports(globals(), _EXPORTS)

if TYPE_CHECKING:  # for type checkers and IDEs; at run time the names load lazily
    from latentgen.api import load_run, resolve_config, train
    from latentgen.data.examples import Examples
    from latentgen.errors import UserError
    from latentgen.evaluation.run import Run
    from latentgen.model.generator import Generator
    from latentgen.model.nets import UpsamplingGenerator
    from latentgen.model.priors import Prior, PriorSettings, StandardNormal
    from latentgen.model.samplers import GradientDescent, Langevin, Sampler
    from latentgen.plugins.hookspecs import hookimpl
    from latentgen.plugins.modality import Modality
    from latentgen.plugins.options import option
    from latentgen.training.config import TrainConfig
    from latentgen.training.observers import Observer
