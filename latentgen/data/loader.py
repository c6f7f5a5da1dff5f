"""Feeding an epoch's batches to the engine: gathered from memory in the training process, or
read by DataLoader worker processes from a prepared dataset file (``latentgen prepare``), so
that reading the next batches overlaps with computing on this one."""

from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from latentgen.data.examples import Examples
from latentgen.data.order import EpochOrder
from latentgen.runtime.distributed import Shard


class EpochPlan:
    """What one process does in each global batch of an epoch (picklable, for workers)."""

    def __init__(self, order: EpochOrder, shard: Shard) -> None:
        self.order = order
        self.shard = shard

    def __len__(self) -> int:
        return len(self.order)

    def batch(self, b: int) -> tuple[Tensor, Tensor, int]:
        """(examples of global batch ``b`` this shard owns, their positions in the batch,
        the global batch size)."""
        everyone = self.order[b]
        mine = self.shard.owns(everyone)
        return everyone[mine], mine.nonzero().squeeze(1), len(everyone)


class _StoredBatches(Dataset):
    """Batch ``i`` (counted from ``start``) of a plan, as stored (e.g. uint8), read by a worker."""

    def __init__(self, storage: Tensor, plan: EpochPlan, start: int) -> None:
        self.storage = storage
        self.plan = plan
        self.start = start

    def __len__(self) -> int:
        return len(self.plan) - self.start

    def __getitem__(self, i: int) -> Tensor:
        index, _, _ = self.plan.batch(self.start + i)
        return self.storage[index]


def stored_batches(data: Examples, plan: EpochPlan, start: int, workers: int,
                   pin_memory: bool = False) -> Iterator[Tensor]:
    """The stored form of batches ``start``, ``start + 1``, ... of ``plan``, in order."""
    if workers == 0:
        for b in range(start, len(plan)):
            yield data.storage[plan.batch(b)[0].to(data.storage.device)]
        return
    # batch_size=None: each item already is a batch; workers build batches ahead of use
    yield from DataLoader(_StoredBatches(data.storage, plan, start), batch_size=None,
                          shuffle=False, num_workers=workers, pin_memory=pin_memory,
                          prefetch_factor=4)


def default_workers(data: Examples) -> int:
    """Loader workers when ``--workers`` is not given: one for data read from a file as it is
    used (it reads ahead while the generator computes), none for data already in memory."""
    return 1 if getattr(data, "streamed", False) else 0


def to_device(batch: Tensor, device: torch.device) -> Tensor:
    return batch.to(device, non_blocking=batch.is_pinned())
