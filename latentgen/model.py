"""From a resolved config to the pieces of a model, and back from a run directory."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from .config import TrainConfig
from .data import Examples
from .errors import UserError
from .generator import Generator
from .modality import Modality
from .observation import GaussianObservation
from .plugins import get_registry, owner_of
from .prepared import is_prepared, open_prepared, prepared_options
from .priors import Prior
from .rundir import RunDir
from .samplers import Sampler


def resolve_device(name: str) -> torch.device:
    if name not in ("auto", "cpu", "cuda") and not name.startswith("cuda:"):
        raise UserError(f"--device must be auto, cpu or cuda, got '{name}'")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"--device {name} asked for CUDA, but torch sees no CUDA device; "
                        "use --device cpu or auto")
    return torch.device(name)


@dataclass
class Model:
    """A generator with its prior and observation model, as a config describes them."""

    config: TrainConfig
    modality: Modality
    options: Any
    generator: Generator
    prior: Prior
    observation: GaussianObservation

    @classmethod
    def from_config(cls, config: TrainConfig) -> "Model":
        config.validate()
        reg = get_registry()
        modality = reg.modality(config.modality)
        if is_prepared(config.data):
            # packed with resolved options: those apply unless the user gave others
            packed_as, packed_options = prepared_options(config.data)  # type: ignore[arg-type]
            if packed_as != modality.name:
                raise UserError(f"--data {config.data} holds {packed_as} data, not "
                                f"{modality.name}; pass --modality {packed_as} or prepare the "
                                f"data for {modality.name}")
            options = modality.make_options({**packed_options, **config.modality_options})
        else:
            options = modality.resolve_options(modality.make_options(config.modality_options),
                                               config.data)
        generator = modality.build_generator(config.latent_dim, options)
        prior = reg.prior(config.prior)(generator.latent_shape)
        return cls(config, modality, options, generator, prior,
                   GaussianObservation(config.sigma))

    def sampler(self, name: str | None = None, step_size: float | None = None) -> Sampler:
        cls = get_registry().sampler(name or self.config.sampler)
        return cls(step_size if step_size is not None else self.config.step_size)

    def plugin_record(self) -> dict[str, str]:
        info = owner_of(self.config.modality)
        return {"name": info.name, "version": info.version, "modality": self.config.modality}

    def open_data(self, source: str | None, what: str = "--data") -> Examples:
        """Examples from ``source`` that this generator can reconstruct (shape checked)."""
        try:
            if is_prepared(source):
                data = open_prepared(source, self.modality)  # type: ignore[arg-type]
            else:
                data = self.modality.open_dataset(source, self.options)
        except UserError as exc:  # plugins name the path; the flag is known here
            raise UserError(f"{what}: {exc}") from None
        shape = tuple(self.generator.data_shape)
        if tuple(data.example_shape) != shape:
            raise UserError(f"{what} {source or '(embedded default)'} has examples of shape "
                            f"{tuple(data.example_shape)}, the generator makes {shape}; check "
                            "the modality options")
        return data

    def metric_mse(self, model_space_mse: float) -> float:
        return model_space_mse * self.modality.metric_scale


@dataclass
class TrainedRun:
    """A finished (or interrupted) run loaded from its directory alone."""

    run: RunDir
    model: Model
    latents: torch.Tensor
    epoch: int
    device: torch.device

    @classmethod
    def load(cls, path: str | Path, device: str = "auto") -> "TrainedRun":
        run = RunDir(path)
        dev = resolve_device(device)
        state = run.load_checkpoint()
        try:
            config = TrainConfig.from_dict(dict(state["config"]), source=str(run.last_checkpoint))
            model = Model.from_config(config)
            model.generator.load_state_dict(state["generator"])
            latents = state["latents"]
            if tuple(latents.shape[1:]) != tuple(model.generator.latent_shape):
                raise ValueError(f"latents of shape {tuple(latents.shape)}")
            epoch = int(state["epoch"])
        except UserError:
            raise
        except (KeyError, TypeError, IndexError, ValueError, RuntimeError) as exc:
            raise UserError(f"{run.last_checkpoint} is not a usable latentgen checkpoint "
                            f"({type(exc).__name__}: {exc}); give the folder of a training "
                            "run") from None
        model.generator.to(dev).eval()
        return cls(run, model, latents.to(dev), epoch, dev)

    def training_examples(self) -> Examples:
        """The run's training data, opened the way training opened it."""
        cfg = self.model.config
        data = self.model.open_data(cfg.data, "the run's training data (pass --data to use "
                                    "other data)")
        if len(data) != self.latents.shape[0]:
            raise UserError(f"the training data {cfg.data or '(embedded default)'} now holds "
                            f"{len(data)} examples but the run has {self.latents.shape[0]} "
                            "latents; pass --data to use other data")
        return data
