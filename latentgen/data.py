"""Examples held in memory, fetched in index batches and turned into model-space floats."""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


class Examples:
    """A dataset of N examples stored compactly (e.g. uint8) and decoded per batch.

    ``decode`` maps a stored batch to float model-space data; keeping images as uint8 until
    the batch is needed cuts memory four-fold.
    """

    def __init__(self, storage: Tensor, decode: Callable[[Tensor], Tensor], source: str,
                 names: list[str] | None = None) -> None:
        if storage.shape[0] == 0:
            raise ValueError("no examples")
        self.storage = storage
        self.decode = decode
        self.source = source
        self.names = names

    def __len__(self) -> int:
        return self.storage.shape[0]

    @property
    def example_shape(self) -> tuple[int, ...]:
        return tuple(self.get(torch.tensor([0])).shape[1:])

    def get(self, index: Tensor, device: torch.device | str = "cpu") -> Tensor:
        batch = self.storage[index.cpu()]
        return self.decode(batch.to(device, non_blocking=True))

    def subset(self, index: Tensor) -> "Examples":
        names = [self.names[i] for i in index.tolist()] if self.names else None
        return Examples(self.storage[index], self.decode, self.source, names)
