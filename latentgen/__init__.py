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
    "prepare": "latentgen.api",
    "bench": "latentgen.api",
    "report": "latentgen.api",
    "Run": "latentgen.run",
    "Trained": "latentgen.assembly.trained",
    "TrainConfig": "latentgen.assembly.config",
    "UserError": "latentgen.errors",
    # observers of training
    "Observer": "latentgen.training.observers",
    "TrainingContext": "latentgen.training.observers",
    "StartEvent": "latentgen.training.observers",
    "BatchEvent": "latentgen.training.observers",
    "EpochEvent": "latentgen.training.observers",
    "CheckpointEvent": "latentgen.training.observers",
    "EndEvent": "latentgen.training.observers",
    "SamplesEvent": "latentgen.training.observers",
    # measures
    "Request": "latentgen.measures.registry",
    "Table": "latentgen.measures.registry",
    "Line": "latentgen.measures.registry",
    "register_measure": "latentgen.measures.registry",
    "measure_names": "latentgen.measures.catalog",
    "present": "latentgen.measures.catalog",
    "final_regime": "latentgen.outputs.curves",
    "evaluation_share": "latentgen.outputs.curves",
    "DEFAULTS": "latentgen.measures.defaults",
    "REGIME_RULE": "latentgen.measures.baselines",
    "BENCH_DEFAULTS": "latentgen.benchmark",
    "Report": "latentgen.outputs.report",
    "score_rule": "latentgen.measures.anomaly",
    "fid_cache": "latentgen.measures.features",
    "MASK_HELP": "latentgen.data.mask_specs",
    "output_folder": "latentgen.outputs.files",
    "export_run": "latentgen.outputs.export",
    "push_export": "latentgen.outputs.export",
    "tune_host_allocator": "latentgen.runtime.allocator",
    "write_error": "latentgen.runtime.files",
    # -- declarations (exports) --
    # one declaration for training settings and modality options, and the plugin registry
    # as the command line reads them
    "Declaration": "latentgen.plugins.declare",
    "declarations": "latentgen.plugins.declare",
    "SETTING_PANELS": "latentgen.plugins.declare",
    "Registry": "latentgen.plugins.registered",
    "get_registry": "latentgen.plugins.registry",
    "reserve_declared": "latentgen.plugins.registry",
    "only_plugins": "latentgen.plugins.registry",
    # -- end declarations --
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
    from latentgen.api import bench, load_run, prepare, report, resolve_config, train
    from latentgen.assembly.config import TrainConfig
    from latentgen.assembly.trained import Trained
    from latentgen.benchmark import BENCH_DEFAULTS
    from latentgen.data.examples import Examples
    from latentgen.data.mask_specs import MASK_HELP
    from latentgen.errors import UserError
    from latentgen.measures.anomaly import score_rule
    from latentgen.measures.baselines import REGIME_RULE
    from latentgen.measures.catalog import measure_names, present
    from latentgen.measures.defaults import DEFAULTS
    from latentgen.measures.features import fid_cache
    from latentgen.measures.registry import Line, Request, Table, register_measure
    from latentgen.model.generator import Generator
    from latentgen.model.nets import UpsamplingGenerator
    from latentgen.model.priors import Prior, PriorSettings, StandardNormal
    from latentgen.model.samplers import GradientDescent, Langevin, Sampler
    from latentgen.outputs.curves import evaluation_share, final_regime
    from latentgen.outputs.export import export_run, push_export
    from latentgen.outputs.files import output_folder
    from latentgen.outputs.report import Report
    from latentgen.plugins.hookspecs import hookimpl
    from latentgen.plugins.modality import Modality
    from latentgen.plugins.options import option
    from latentgen.run import Run
    from latentgen.runtime.allocator import tune_host_allocator
    from latentgen.runtime.files import write_error
    from latentgen.training.observers import (
        BatchEvent,
        CheckpointEvent,
        EndEvent,
        EpochEvent,
        Observer,
        SamplesEvent,
        StartEvent,
        TrainingContext,
    )
    # -- declarations (type checking) --
    # isort: split
    from latentgen.plugins.declare import SETTING_PANELS, Declaration, declarations
    from latentgen.plugins.registered import Registry
    from latentgen.plugins.registry import get_registry, only_plugins, reserve_declared
    # -- end declarations (type checking) --
