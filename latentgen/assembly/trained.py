"""A trained model as the measures and writers see it: the assembled model, the device it runs
on and the latent bank of its training data, with the data sources they take.

``latentgen.Run`` (a run directory's model) is one; the error curves make one from the model
being trained. Everything computed from a trained model takes this, not the run directory.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
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
                          scale: int = 1, batches: Iterable[int] | None = None
                          ) -> Iterator[torch.Tensor]:
        """Z ~ prior, f(Z), in batches of ``batch_size`` (on the CPU): memory stays flat for
        any n. ``scale`` > 1 draws latent fields that much larger (a fully convolutional
        generator then renders data that much larger). ``batches``: only these batch numbers
        (batch j holds examples ``j * batch_size`` up to ``(j + 1) * batch_size``), in that
        order: a shard of a job, or what a restarted job still lacks.

        Example i's latent depends on ``seed``, ``n`` and ``i`` only, never on ``batch_size``
        or on which batches are asked for (``synthesis_latents``)."""
        if n < 1 or batch_size < 1:
            raise UserError(f"`n` and `batch_size` must be at least 1, got {n} and "
                            f"{batch_size}")
        prior = self.at_scale(scale)[1]
        count = -(-n // batch_size)
        cache: dict[int, torch.Tensor] = {}
        for j in range(count) if batches is None else batches:
            if not 0 <= j < count:
                raise UserError(f"batch {j} is outside the {count} batches of the job")
            start = j * batch_size
            z = synthesis_latents(prior, n, seed, start, min(n, start + batch_size), cache)
            yield generate(self.model.generator, z.to(self.device)).cpu()


#: examples per block of latents: block b (examples ``b * SYNTHESIS_BLOCK`` on) is drawn from
#: a generator of its own, so any range of examples is drawn without drawing those before it
SYNTHESIS_BLOCK = 256


def synthesis_latents(prior: Prior, n: int, seed: int, start: int, stop: int,
                      cache: dict[int, torch.Tensor] | None = None) -> torch.Tensor:
    """The latents of examples ``start`` to ``stop`` of an ``n``-example synthesis job (on the
    CPU). Block b's ``min(SYNTHESIS_BLOCK, n - b * SYNTHESIS_BLOCK)`` latents are one draw from
    ``derived_generator(seed, "synthesize", b)`` (block 0: ``(seed, "synthesize")``, the
    stream of earlier versions, so jobs of up to 256 examples keep their samples); ``cache``
    keeps the last block drawn between calls."""
    cache = {} if cache is None else cache
    parts = []
    for b in range(start // SYNTHESIS_BLOCK, (stop - 1) // SYNTHESIS_BLOCK + 1):
        if b not in cache:
            keys: tuple[object, ...] = ("synthesize",) if b == 0 else ("synthesize", b)
            first = b * SYNTHESIS_BLOCK
            cache.clear()
            cache[b] = prior.sample(min(SYNTHESIS_BLOCK, n - first),
                                    generator=derived_generator(seed, *keys))
        lo = max(start, b * SYNTHESIS_BLOCK) - b * SYNTHESIS_BLOCK
        hi = min(stop, (b + 1) * SYNTHESIS_BLOCK) - b * SYNTHESIS_BLOCK
        parts.append(cache[b][lo:hi])
    return parts[0] if len(parts) == 1 else torch.cat(parts)
