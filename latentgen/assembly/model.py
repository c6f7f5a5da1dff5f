"""From a resolved config to the pieces of a model: modality, options, generator, prior,
observation model and samplers, and the data the generator can reconstruct."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from latentgen.assembly.config import TrainConfig
from latentgen.data.examples import Examples
from latentgen.data.prepared import is_prepared, open_prepared, prepared_options, read_sidecar
from latentgen.errors import UserError
from latentgen.model.generator import Generator
from latentgen.model.observation import GaussianObservation
from latentgen.model.operators import parse_operator
from latentgen.model.priors import Prior, PriorSettings, make_prior
from latentgen.model.samplers import Sampler
from latentgen.plugins.modality import Modality
from latentgen.plugins.registry import get_registry, owner_of
from latentgen.runtime.files import WriteError
from latentgen.runtime.seeding import derive_seed


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
    def from_config(cls, config: TrainConfig) -> Model:
        config.validate()
        reg = get_registry()
        modality = reg.modality(config.modality)
        if is_prepared(config.data):
            # packed with resolved options: those apply unless the user gave others
            packed_as, packed_options = prepared_options(config.data)  # type: ignore[arg-type]
            if packed_as != modality.name:
                raise UserError(f"`data` {config.data} holds {packed_as} data, not "
                                f"{modality.name}; pass `modality` {packed_as} or prepare the "
                                f"data for {modality.name}")
            options = modality.make_options({**modality.legacy_options, **packed_options,
                                             **config.modality_options})
        else:
            options = modality.resolve_options(modality.make_options(config.modality_options),
                                               config.data)
        generator = modality.build_generator(config.latent_dim, options)
        prior = make_prior(reg.prior(config.prior), tuple(generator.latent_shape),
                           PriorSettings(steps=config.prior_steps,
                                         step_size=config.prior_step_size,
                                         width=config.prior_width, depth=config.prior_depth))
        if generator.latent_roles(tuple(generator.latent_shape)) is not None:
            prior.assign_roles(generator.latent_roles)
        operator = (parse_operator(config.observe, tuple(generator.data_shape),
                                   derive_seed(config.seed, "observe"))
                    if config.observe else None)
        return cls(config, modality, options, generator, prior,
                   GaussianObservation(config.sigma, config.learn_sigma, operator))

    def sampler(self, name: str | None = None, step_size: float | None = None) -> Sampler:
        """A sampler by name (the run's own by default); without ``step_size``, the run's step
        size scaled as sigma has been learned (``GaussianObservation.scale``)."""
        cls = get_registry().sampler(name or self.config.sampler)
        return cls(step_size if step_size is not None
                   else self.config.step_size * self.observation.scale)

    def plugin_record(self) -> dict[str, str]:
        info = owner_of(self.config.modality)
        return {"name": info.name, "version": info.version, "modality": self.config.modality}

    def open_data(self, source: str | None, what: str = "`data`", options: Any = None
                  ) -> Examples:
        """Examples from ``source`` that this generator can reconstruct (shape checked); with
        ``options`` (``Modality.scaled``'s), opened with those instead, shape unchecked."""
        try:
            if options is not None:
                if is_prepared(source):
                    packed = list(read_sidecar(source)["shape"][1:])  # type: ignore[arg-type]
                    raise UserError(f"{source} is a prepared file of examples of shape {packed}, "
                                    "which cannot be opened at a larger size; measure at scale "
                                    "on a run trained from the source files")
                return self.modality.open_dataset(source, options)
            if is_prepared(source):
                data = open_prepared(source, self.modality)  # type: ignore[arg-type]
            else:
                data = self.modality.open_dataset(source, self.options)
        except WriteError:
            raise  # `latentgen prepare` writing its --out, not a fault of the data
        except UserError as exc:  # plugins name the path; the flag is known here
            raise UserError(f"{what}: {exc}") from None
        shape = tuple(self.generator.data_shape)
        if tuple(data.example_shape) != shape:
            raise UserError(f"{what} {source or '(embedded default)'} has examples of shape "
                            f"{tuple(data.example_shape)}, the generator makes {shape}; check "
                            "the modality options")
        return data

    def options_dict(self) -> dict[str, Any]:
        """The resolved modality options, as the run's config stores them."""
        return dataclasses.asdict(self.options)

    @property
    def metric_scale(self) -> float:
        """Factor turning a model-space MSE into one on the scale ``metric_units`` names."""
        return self.modality.metric_scale_for(self.options)

    @property
    def metric_units(self) -> str:
        return self.modality.metric_units_for(self.options)

    def metric_mse(self, model_space_mse: float) -> float:
        return model_space_mse * self.metric_scale
