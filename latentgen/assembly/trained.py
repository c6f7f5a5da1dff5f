"""A trained model as the measures and writers see it: the assembled model, the device it runs
on and the latent bank of its training data, with the data sources they take.

``latentgen.Run`` (a run directory's model) is one; the error curves make one from the model
being trained. Everything computed from a trained model takes this, not the run directory.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from latentgen.assembly.model import Model
from latentgen.assembly.rundir import RunDir
from latentgen.data.examples import Examples
from latentgen.errors import UserError
from latentgen.model.nets import generate
from latentgen.model.priors import Prior
from latentgen.runtime.seeding import derived_generator

#: what the verbs take as data: a path (what ``--data`` takes), a tensor of model-space
#: examples, a ``torch.utils.data.Dataset`` of them, opened ``Examples``, or None: the
#: training data with its banked latents
Source = str | Path | torch.Tensor | Dataset | Examples | None


def _model_space(batch: torch.Tensor) -> torch.Tensor:
    """The decode of examples given as tensors: they are model-space floats already."""
    return batch.float()


class Trained:
    """A model (``Model``: config, modality, generator, prior, observation) on ``device`` with
    the latents of its training data (``latents``, one per example, on ``device``).
    ``epoch``: epochs it was trained for; ``training_data``: the training examples when they
    are open already (during training); ``run_dir``: the run directory it was loaded from."""

    def __init__(self, model: Model, latents: torch.Tensor, device: torch.device,
                 epoch: int = 0, training_data: Examples | None = None,
                 run_dir: RunDir | None = None) -> None:
        self.model, self.latents, self.device = model, latents, device
        self.epoch, self.run_dir = epoch, run_dir
        self._training_data = training_data

    def training_examples(self) -> Examples:
        """The training data, opened the way training opened it."""
        if self._training_data is not None:
            return self._training_data
        cfg = self.model.config
        data = self.model.open_data(cfg.data, "the run's training data (give `data` to use "
                                    "other data)")
        if len(data) != self.latents.shape[0]:
            raise UserError(f"the training data {cfg.data or '(embedded default)'} now holds "
                            f"{len(data)} examples but the run has {self.latents.shape[0]} "
                            "latents; give `data` to use other data")
        return data

    def open_source(self, source: Source, what: str
                    ) -> tuple[Examples, torch.Tensor | None]:
        """Examples from ``source`` (``what`` names it in errors), with the banked latents
        when it is None (the training data)."""
        if source is None:
            return self.training_examples(), self.latents
        if isinstance(source, Examples):  # opened already (``Run.examples``)
            return source, None
        if isinstance(source, (str, Path)):
            return self.model.open_data(str(source), what), None
        if isinstance(source, torch.Tensor):
            x = source.detach().cpu()
        elif isinstance(source, Dataset):
            items = [source[i] for i in range(len(source))]  # type: ignore[arg-type]
            if not items:
                raise UserError(f"{what}: the dataset holds no examples")
            x = torch.stack([torch.as_tensor(it[0] if isinstance(it, (tuple, list)) else it)
                             for it in items])
        else:
            raise UserError(f"{what}: give a path, a tensor or a torch Dataset, not "
                            f"{type(source).__name__}")
        shape = tuple(self.model.generator.data_shape)
        if tuple(x.shape) == shape:
            x = x.unsqueeze(0)  # one example
        if tuple(x.shape[1:]) != shape or len(x) == 0:
            raise UserError(f"{what}: examples of shape {tuple(x.shape[1:])}, the generator "
                            f"makes {shape}; give model-space tensors of that shape")
        return Examples(x.float(), _model_space, f"<{type(source).__name__}>"), None

    def at_scale(self, scale: int) -> tuple[Any, Prior]:
        """The modality options of data ``scale`` times larger and the prior over the latent
        field that renders it (``Modality.scaled``); the model's own at scale 1."""
        model = self.model
        if scale < 1:
            raise UserError(f"`scale` must be at least 1, got {scale}")
        if scale == 1:
            return model.options, model.prior
        options, shape = model.modality.scaled(model.options,
                                               tuple(model.prior.latent_shape), scale)
        return options, model.prior.resized(shape)

    def synthesis_batches(self, n: int, seed: int = 0, batch_size: int = 256,
                          scale: int = 1) -> Iterator[torch.Tensor]:
        """Z ~ prior, f(Z), in batches of ``batch_size`` (on the CPU): memory stays flat for
        any n. ``scale`` > 1 draws latent fields that much larger (a fully convolutional
        generator then renders data that much larger)."""
        if n < 1 or batch_size < 1:
            raise UserError(f"`n` and `batch_size` must be at least 1, got {n} and "
                            f"{batch_size}")
        prior = self.at_scale(scale)[1]
        rng = derived_generator(seed, "synthesize")
        for start in range(0, n, batch_size):
            z = prior.sample(min(batch_size, n - start), generator=rng).to(self.device)
            yield generate(self.model.generator, z).cpu()
