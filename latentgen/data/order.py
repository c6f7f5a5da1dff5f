"""The order in which an epoch visits the training examples, computed batch by batch.

The order is a pseudo-random permutation of 0..n-1 that depends only on (seed, epoch): a
Feistel network on the smallest even number of bits that covers n, with "cycle walking" (an
output >= n is permuted again until it falls below n), which keeps it a bijection on 0..n-1.
Nothing of size n is ever materialised: batch b is the permutation applied to positions
b*B .. (b+1)*B-1. A ``torch.randperm`` of n int64 would cost 8 bytes per example, twice what a
d = 1 latent bank costs; with datasets of millions of examples the order would outgrow the
bank it serves.

Because the order depends on neither the process count nor the shard, every process of a
distributed run sees the same global batches (``Shard`` picks its own examples out of them).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from latentgen.runtime.seeding import derive_seed

ROUNDS = 6
_M32 = 0xFFFFFFFF
# odd multipliers below 2**31, so (32-bit value) * multiplier stays below 2**63 in int64
_MUL1, _MUL2 = 0x5BD1E995, 0x27D4EB2F


def _mix(x: Tensor, key: int, mask: int) -> Tensor:
    """A round function: 32-bit multiply / xor-shift hashing of ``x`` under ``key``."""
    h = (x ^ key) & _M32
    h = (h * _MUL1) & _M32
    h = h ^ (h >> 16)
    h = (h * _MUL2) & _M32
    h = h ^ (h >> 13)
    return h & mask


class EpochOrder:
    """Batches of example indices for one epoch: ``order[b]`` is batch ``b`` (int64)."""

    def __init__(self, n: int, batch_size: int, seed: int, epoch: int) -> None:
        if n < 1 or batch_size < 1:
            raise ValueError(f"need n >= 1 and batch_size >= 1, got {n} and {batch_size}")
        self.n = n
        self.batch_size = batch_size
        bits = max(2, math.ceil(math.log2(n)))
        self.half = (bits + 1) // 2
        self.keys = [derive_seed(seed, "order", epoch, r) & _M32 for r in range(ROUNDS)]

    def __len__(self) -> int:
        return -(-self.n // self.batch_size)

    def __getitem__(self, b: int) -> Tensor:
        if not 0 <= b < len(self):
            raise IndexError(f"batch {b} of {len(self)}")
        start = b * self.batch_size
        return self.permute(torch.arange(start, min(self.n, start + self.batch_size)))

    def __iter__(self):  # type: ignore[no-untyped-def]
        return (self[b] for b in range(len(self)))

    def permute(self, positions: Tensor) -> Tensor:
        """The examples at ``positions`` (0..n-1) of this epoch's order."""
        out = self._feistel(positions.to(torch.int64))
        outside = out >= self.n
        while bool(outside.any()):  # cycle walking: at most a few rounds (2**bits < 4n)
            out[outside] = self._feistel(out[outside])
            outside = out >= self.n
        return out

    def _feistel(self, x: Tensor) -> Tensor:
        mask = (1 << self.half) - 1
        left, right = x >> self.half, x & mask
        for key in self.keys:
            left, right = right, left ^ _mix(right, key, mask)
        return (left << self.half) | right
