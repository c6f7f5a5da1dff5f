"""Examples held in memory, fetched in index batches and turned into model-space floats."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import numpy as np
import torch
from torch import Tensor

from latentgen.errors import UserError

#: where ``allocate`` puts arrays (``latentgen prepare`` points it at its output file)
_ALLOCATOR: ContextVar[Callable[[tuple[int, ...], Any], np.ndarray] | None] = ContextVar(
    "latentgen_allocator", default=None)
#: (rank, world) of a process that fills only its share of ``allocate``'s array, the rest
#: being filled by the other processes of a ``latentgen prepare`` under torchrun
_PART: ContextVar[tuple[int, int]] = ContextVar("latentgen_part", default=(0, 1))


def allocate(shape: tuple[int, ...], dtype: Any) -> np.ndarray:
    """An uninitialised array for a dataset's stored examples. Plugins that fill their storage
    through it (rather than stacking a list) can be packed by ``latentgen prepare`` without
    holding the dataset in memory: there the array maps the output file."""
    factory = _ALLOCATOR.get()
    return factory(shape, dtype) if factory is not None else np.empty(shape, dtype)


@contextmanager
def allocating_with(factory: Callable[[tuple[int, ...], Any], np.ndarray],
                    part: tuple[int, int] = (0, 1)) -> Iterator[None]:
    """``allocate`` returns ``factory``'s arrays in the block; ``part`` (rank, world): this
    process fills only its share of them (``filling_part``)."""
    token, part_token = _ALLOCATOR.set(factory), _PART.set(part)
    try:
        yield
    finally:
        _PART.reset(part_token)
        _ALLOCATOR.reset(token)


def filling_part() -> tuple[int, int]:
    """(rank, world): the share of an ``allocate``d array this process fills; (0, 1), all of
    it, except in the processes of ``latentgen prepare`` under torchrun, which write one file
    together."""
    return _PART.get()


def require_finite(values: np.ndarray | Tensor, source: str) -> None:
    """Raise ``UserError`` naming ``source`` when float ``values`` hold NaN or infinity (which
    slip past range checks: NaN compares false with every bound)."""
    if isinstance(values, np.ndarray):
        if not np.issubdtype(values.dtype, np.floating):
            return
        bad = int(values.size - np.count_nonzero(np.isfinite(values)))
    else:
        if not values.is_floating_point():
            return
        bad = int(values.numel() - torch.isfinite(values).sum())
    if bad:
        raise UserError(f"{source} holds {bad} NaN or infinite value{'s' if bad > 1 else ''}; "
                        "replace them (or drop those examples) and try again")


class Examples:
    """A dataset of N examples stored compactly (e.g. uint8) and decoded per batch.

    ``decode`` maps a stored batch to float model-space data; keeping images as uint8 until
    the batch is needed cuts memory four-fold.
    """

    def __init__(self, storage: Tensor, decode: Callable[[Tensor], Tensor], source: str,
                 names: list[str] | None = None, streamed: bool = False,
                 labels: np.ndarray | None = None) -> None:
        if storage.shape[0] == 0:
            raise ValueError("no examples")
        if isinstance(storage, Tensor):  # streamed rows were checked when they were packed
            require_finite(storage, source)
        self.storage = storage
        self.decode = decode
        self.source = source
        self.names = names
        #: whether ``storage`` reads rows from a file as they are used (``latentgen prepare``)
        #: rather than holding the data
        self.streamed = streamed
        #: the class label of each example (int64), where the source has them
        #: (``latentgen.data.labels_of``): e.g. which held-out examples are of class k
        self.labels = labels
        if labels is not None and len(labels) != storage.shape[0]:
            raise ValueError(f"{len(labels)} labels for {storage.shape[0]} examples")

    def __len__(self) -> int:
        return self.storage.shape[0]

    @property
    def example_shape(self) -> tuple[int, ...]:
        return tuple(self.get(torch.tensor([0])).shape[1:])

    def get(self, index: Tensor, device: torch.device | str = "cpu") -> Tensor:
        batch = self.storage[index.cpu()]
        return self.decode(batch.to(device, non_blocking=True))

    def subset(self, index: Tensor) -> Examples:
        names = [self.names[i] for i in index.tolist()] if self.names else None
        labels = self.labels[index.cpu().numpy()] if self.labels is not None else None
        return Examples(self.storage[index], self.decode, self.source, names, labels=labels)
