"""Masks for incomplete data: which entries of each example are observed (1) or missing (0).

The observation model leaves missing entries out of the squared error, so training learns
from occluded examples only and inference fills the holes from what the generator learned.

A mask spec is one of:

    block:K     a K-wide block along every axis after the channel axis, at a random place per
                example: a K x K square for images, K samples for sound, a K^3 cube for video
    pixels:P    a fraction P (0 < P < 1) of the positions missing, all channels of a position
                together
    FILE/FOLDER a .npy/.npz array of 0/1 (or bool) of the data shape, with or without the channel
                axis, one for all examples or one per example (N, ...); anything else is opened
                by the modality like data, and entries above the middle of the range are observed

Random masks depend only on (seed, example index), never on the batch an example lands in,
so an example keeps the same holes in every epoch and in every command.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from latentgen.data.mask_specs import MASK_HELP
from latentgen.errors import UserError
from latentgen.runtime.seeding import derived_generator


class Masks:
    """Observed-entry masks for examples, looked up by dataset index."""

    spec: str

    def for_indices(self, index: Tensor, device: torch.device | str = "cpu") -> Tensor:
        """Float 0/1 masks of shape (len(index), C or 1, *spatial), broadcastable to the data."""
        raise NotImplementedError

    def fits(self, n_examples: int) -> bool:
        """Whether the masks cover a set of ``n_examples`` examples."""
        return True

    def check(self, n_examples: int, what: str) -> None:
        """Raise ``UserError`` when the masks cannot cover ``n_examples`` examples."""


class BlockMasks(Masks):
    def __init__(self, spec: str, k: int, data_shape: tuple[int, ...], seed: int) -> None:
        spatial = data_shape[1:]
        if not 1 <= k < min(spatial):  # a block as large as the example would hide all of it
            raise UserError(f"`mask` {spec}: K must be between 1 and {min(spatial) - 1} (the "
                            f"data is {'x'.join(map(str, spatial))})")
        self.spec, self.k, self.spatial, self.seed = spec, k, spatial, seed

    def for_indices(self, index: Tensor, device: torch.device | str = "cpu") -> Tensor:
        out = torch.ones((len(index), 1, *self.spatial))
        for row, i in enumerate(index.tolist()):
            g = derived_generator(self.seed, "mask-block", i)
            where: tuple[slice, ...] = tuple(slice(s, s + self.k) for s in
                          (int(torch.randint(0, n - self.k + 1, (1,), generator=g))
                           for n in self.spatial))
            hole: tuple[int | slice, ...] = (row, 0, *where)
            out[hole] = 0.0
        return out.to(device)


class PixelMasks(Masks):
    def __init__(self, spec: str, p: float, data_shape: tuple[int, ...], seed: int) -> None:
        if not 0 < p < 1:
            raise UserError(f"`mask` {spec}: P must be a fraction between 0 and 1, e.g. "
                            "pixels:0.5")
        self.spec, self.p, self.spatial, self.seed = spec, p, data_shape[1:], seed

    def for_indices(self, index: Tensor, device: torch.device | str = "cpu") -> Tensor:
        rows = [torch.rand(self.spatial, generator=derived_generator(self.seed, "mask-pixels", i))
                for i in index.tolist()]
        return (torch.stack(rows) >= self.p).float().unsqueeze(1).to(device)


class StoredMasks(Masks):
    """Masks read from a file: one for every example, or one per example."""

    def __init__(self, spec: str, masks: Tensor) -> None:
        empty = (masks.flatten(1).sum(1) == 0).nonzero().flatten().tolist()
        if empty:
            raise UserError(f"`mask` {spec}: mask {empty[0]} hides every entry; an example "
                            "needs some observed entries")
        self.spec, self.masks = spec, masks  # (M, C or 1, *spatial), float 0/1

    def for_indices(self, index: Tensor, device: torch.device | str = "cpu") -> Tensor:
        if self.masks.shape[0] == 1:
            return self.masks.expand(len(index), *self.masks.shape[1:]).to(device)
        return self.masks[index.cpu()].to(device)

    def fits(self, n_examples: int) -> bool:
        return self.masks.shape[0] in (1, n_examples)

    def check(self, n_examples: int, what: str) -> None:
        m = self.masks.shape[0]
        if m not in (1, n_examples):
            raise UserError(f"`mask` {self.spec} holds {m} masks but {what} has {n_examples} "
                            "examples; give one mask for all or one per example")


def parse_masks(spec: str, modality: Any, opts: Any, data_shape: tuple[int, ...],
                seed: int = 0) -> Masks:
    """The masks a ``--mask`` spec names, for examples of ``data_shape`` (C, *spatial)."""
    kind, _, arg = spec.partition(":")
    if kind == "block" and arg:
        try:
            return BlockMasks(spec, int(arg), data_shape, seed)
        except ValueError:
            raise UserError(f"`mask` {spec}: K must be a whole number, e.g. block:12") from None
    if kind == "pixels" and arg:
        try:
            return PixelMasks(spec, float(arg), data_shape, seed)
        except ValueError:
            raise UserError(f"`mask` {spec}: P must be a number, e.g. pixels:0.5") from None
    path = Path(spec)
    if not path.exists():
        raise UserError(f"`mask` {spec}: not block:K, pixels:P or an existing file/folder; "
                        f"give {MASK_HELP}")
    if path.suffix.lower() in (".npy", ".npz"):
        return StoredMasks(spec, _array_masks(spec, path, data_shape))
    try:
        data = modality.open_dataset(str(path), opts)
    except UserError as exc:
        raise UserError(f"`mask`: {exc}") from None
    if tuple(data.example_shape) != tuple(data_shape):
        raise UserError(f"`mask` {spec}: masks of shape {tuple(data.example_shape)}, the data "
                        f"has {tuple(data_shape)}")
    lo, hi = modality.data_range
    values = data.get(torch.arange(len(data)))
    return StoredMasks(spec, (values > (lo + hi) / 2).float())


def _array_masks(spec: str, path: Path, data_shape: tuple[int, ...]) -> Tensor:
    try:
        arr = np.load(path, allow_pickle=False)
        if isinstance(arr, np.lib.npyio.NpzFile):
            with arr:
                arr = arr[list(arr.keys())[0]]
    except Exception as exc:
        raise UserError(f"`mask` {spec}: cannot read the array ({exc}); check the file") from None
    if not np.isin(np.unique(arr), [0, 1]).all():
        raise UserError(f"`mask` {spec}: mask arrays hold 0 (missing) and 1 (observed) only")
    m = torch.from_numpy(np.ascontiguousarray(arr)).float()
    shape, spatial = tuple(data_shape), tuple(data_shape[1:])
    if tuple(m.shape) == shape:
        return m.unsqueeze(0)
    if tuple(m.shape) == spatial:
        return m.view(1, 1, *spatial)
    if tuple(m.shape[1:]) == shape:
        return m
    if tuple(m.shape[1:]) == spatial:
        return m.unsqueeze(1)
    raise UserError(f"`mask` {spec}: array of shape {tuple(m.shape)} fits neither {shape} nor "
                    f"{spatial}, alone or with a leading example axis")
