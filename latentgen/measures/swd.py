"""Multi-scale sliced Wasserstein distance between two sets of pictures (Karras et al. 2018,
"Progressive growing of GANs", appendix D): how far apart the distributions of local patches
are, level by level of a Laplacian pyramid.

For each picture and pyramid level, ``PATCHES`` random 7 x 7 patches (all channels) are
descriptors; each set's descriptors are normalised per channel and level; the distance of a
level is the sliced Wasserstein distance over ``REPEATS`` x ``DIRECTIONS`` random unit
directions (the mean gap between the sorted projections), times 1e3. Everything is seeded
and batched in torch: no Python loop runs per patch or per picture.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

PATCH = 7
PATCHES = 128
REPEATS = 4
DIRECTIONS = 128
#: the pyramid stops at the first level whose side is below this
MIN_SIDE = 16

_KERNEL = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0]) / 16.0


def _blur(x: Tensor) -> Tensor:
    """The 5 x 5 binomial blur of the Laplacian pyramid, per channel, reflect-padded."""
    c = x.shape[1]
    k = _KERNEL.to(x)
    x = F.pad(x, (2, 2, 2, 2), mode="reflect" if min(x.shape[-2:]) > 2 else "replicate")
    x = F.conv2d(x, k.view(1, 1, 1, 5).expand(c, 1, 1, 5), groups=c)
    return F.conv2d(x, k.view(1, 1, 5, 1).expand(c, 1, 5, 1), groups=c)


def laplacian_pyramid(x: Tensor, min_side: int = MIN_SIDE) -> list[Tensor]:
    """Band-pass levels of pictures ``x`` (N, C, H, W), finest first; the last level is the
    low-pass picture. Levels halve while the next side stays at least ``min_side``."""
    levels = []
    while min(x.shape[-2:]) // 2 >= min_side:
        low = _blur(x)[..., ::2, ::2]
        up = F.interpolate(low, size=x.shape[-2:], mode="bilinear", align_corners=False)
        levels.append(x - up)
        x = low
    levels.append(x)
    return levels


def patch_positions(shape: tuple[int, ...], n: int = PATCHES, size: int = PATCH,
                    generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """Top-left corners (rows, cols), each (N, n), of ``n`` random patches per picture of
    pictures of ``shape`` (N, C, H, W)."""
    b, _, h, w = shape
    ys = torch.randint(0, max(1, h - size + 1), (b, n), generator=generator)
    xs = torch.randint(0, max(1, w - size + 1), (b, n), generator=generator)
    return ys, xs


def patch_descriptors(x: Tensor, corners: tuple[Tensor, Tensor], size: int = PATCH) -> Tensor:
    """The patches of pictures ``x`` (N, C, H, W) at ``corners``, as (N * n, C * size^2)."""
    if min(x.shape[-2:]) < size:  # pictures smaller than a patch: pad them to one
        x = F.pad(x, (0, max(0, size - x.shape[-1]), 0, max(0, size - x.shape[-2])),
                  mode="replicate")
    b, c, h, w = x.shape
    ys, xs = (t[:b].to(x.device) for t in corners)
    n = ys.shape[1]
    offsets = torch.arange(size, device=x.device)
    rows = (ys[..., None] + offsets)[..., :, None].expand(b, n, size, size)
    cols = (xs[..., None] + offsets)[..., None, :].expand(b, n, size, size)
    flat = (rows * w + cols).reshape(b, 1, n * size * size).expand(b, c, -1)
    picked = x.reshape(b, c, h * w).gather(2, flat)  # (b, c, n * size * size)
    return picked.view(b, c, n, size * size).permute(0, 2, 1, 3).reshape(b * n, -1)


@dataclass(frozen=True)
class Distance:
    """A multi-scale sliced Wasserstein distance, x 1e3: per pyramid level (finest first) and
    their mean."""

    levels: list[float]
    mean: float


@dataclass
class _Level:
    """One pyramid level of a reference: patch corners, per-channel statistics, directions
    and the sorted projections on them."""

    corners: tuple[Tensor, Tensor]
    mean: Tensor
    std: Tensor
    dirs: list[Tensor]
    sorted: list[Tensor]


class SWDReference:
    """A reference set prepared once (pyramid, patches, per-channel statistics, directions and
    sorted projections), so that several sets (samples, a baseline, the floor) are compared
    with it at the cost of their own side only.

    Every compared set uses the reference's patch positions (picture i's patches sit where
    the reference picture i's do: a set compared with itself is at distance 0) and the
    reference's statistics (one affine map for both sides: a shift of brightness counts)."""

    def __init__(self, y: Tensor, seed: int = 0, patches: int = PATCHES,
                 repeats: int = REPEATS, directions: int = DIRECTIONS,
                 min_side: int = MIN_SIDE) -> None:
        g = torch.Generator().manual_seed(seed)
        self.n, self.shape, self.min_side = len(y), tuple(y.shape[1:]), min_side
        self.levels: list[_Level] = []
        for level in laplacian_pyramid(y.float(), min_side):
            corners = patch_positions(tuple(level.shape), patches, generator=g)
            desc = patch_descriptors(level, corners)
            d = desc.view(desc.shape[0], level.shape[1], -1)
            mean = d.mean(dim=(0, 2), keepdim=True)
            std = d.std(dim=(0, 2), keepdim=True).clamp_min(1e-8)
            dirs = [_unit_directions(desc.shape[1], directions, g) for _ in range(repeats)]
            norm = ((d - mean) / std).view_as(desc)
            self.levels.append(_Level(corners, mean, std, dirs,
                                      [_sorted_projections(norm, u) for u in dirs]))

    def distance(self, x: Tensor) -> Distance:
        """The distance of pictures ``x`` (as many as the reference, the same shape)."""
        if tuple(x.shape[1:]) != self.shape or len(x) != self.n:
            raise ValueError(f"{len(x)} pictures of shape {tuple(x.shape[1:])}; the reference "
                             f"holds {self.n} of shape {self.shape}")
        out = []
        for level, ref in zip(laplacian_pyramid(x.float(), self.min_side), self.levels):
            desc = patch_descriptors(level, ref.corners)
            d = desc.view(desc.shape[0], level.shape[1], -1)
            norm = ((d - ref.mean) / ref.std).view_as(desc)
            gaps = [float((_sorted_projections(norm, u) - s).abs().mean())
                    for u, s in zip(ref.dirs, ref.sorted)]
            out.append(1e3 * sum(gaps) / len(gaps))
        return Distance(out, sum(out) / len(out))


def _unit_directions(dim: int, count: int, generator: torch.Generator) -> Tensor:
    dirs = torch.randn(count, dim, generator=generator)
    return dirs / dirs.norm(dim=1, keepdim=True)


def _sorted_projections(desc: Tensor, dirs: Tensor) -> Tensor:
    """(directions, rows): each direction's projections in order. Sorting is most of the
    cost: numpy sorts rows in place faster than torch.sort on the CPU, and releases the GIL,
    so the rows are split over as many threads as torch uses."""
    proj = (dirs.to(desc) @ desc.T).cpu().contiguous()
    rows = proj.numpy()
    chunks = [c for c in np.array_split(rows, max(1, torch.get_num_threads())) if len(c)]
    with ThreadPoolExecutor(len(chunks)) as pool:
        list(pool.map(lambda c: c.sort(axis=1), chunks))  # views: sorts ``proj`` in place
    return proj


def swd(x: Tensor, y: Tensor, seed: int = 0, patches: int = PATCHES,
        min_side: int = MIN_SIDE) -> Distance:
    """The multi-scale sliced Wasserstein distance of pictures ``x`` from the reference ``y``
    (each (N, C, H, W); the first min(N) of each)."""
    n = min(len(x), len(y))
    return SWDReference(y[:n], seed, patches, min_side=min_side).distance(x[:n])
