"""The latent bank: the persistent Z_i of every training example, indexed by dataset index.

ABP's Langevin chains are persistent: each epoch continues example i's chain from where the
previous epoch left it, so the bank is part of the model's state and lives in every checkpoint.

Where the rows live (``--latents-on``): on the training device (default), in host memory, or
in a ``.npy`` file on disk (read and written a batch of rows at a time), for banks larger than
memory. In a distributed run
each process holds only the rows of its shard (``Shard``: example i is row i // world of rank
i % world); ``gather`` assembles the full bank for a checkpoint, ``load_full`` takes a shard
back out of one, whatever the number of processes that wrote it.
"""

from __future__ import annotations

import ctypes
import mmap
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor

from latentgen.data.rowfile import RowFile
from latentgen.model.priors import LatentMoments, Prior
from latentgen.runtime.distributed import Shard, all_reduce_sum
from latentgen.runtime.files import reserve, write_error
from latentgen.runtime.seeding import derived_generator

#: rows gathered or copied at a time (bounds the memory those steps take)
CHUNK = 16384
#: rows of the initial prior draws made from one generator (a chunk is drawn in place with
#: one process, and into a temporary chunk with several)
DRAW_CHUNK = 4096


class LatentBank:
    """The rows of this shard's examples (all N examples with one process)."""

    def __init__(self, latents: Tensor, n: int | None = None, shard: Shard = Shard(),
                 path: Path | None = None) -> None:
        self.latents = latents
        self.n = latents.shape[0] if n is None else n
        self.shard = shard
        #: the .npy file holding the rows, for a bank on disk
        self.path = path

    @classmethod
    def from_prior(cls, prior: Prior, n: int, seed: int, device: torch.device | str = "cpu",
                   shard: Shard = Shard(), disk_path: Path | None = None) -> LatentBank:
        """Chains start at prior draws that depend only on the seed: rows are drawn DRAW_CHUNK
        at a time, each chunk from its own generator, so neither the device nor the number of
        processes changes them. One process in memory draws straight into the bank; otherwise
        one reused chunk buffer takes each draw (fresh temporary chunks fragment the heap:
        measured, the process grew by 17 bytes per example beyond the bank)."""
        bank = cls.empty(prior.latent_shape, n, device, shard, disk_path)
        in_place = shard.world == 1 and disk_path is None
        buffer = None if in_place else torch.empty((min(DRAW_CHUNK, n), *prior.latent_shape))
        for c0 in range(0, n, DRAW_CHUNK):
            rng = derived_generator(seed, "bank", c0)
            if buffer is None:
                prior.sample_into(bank.latents[c0:c0 + DRAW_CHUNK], generator=rng)
            else:
                chunk = buffer[:min(DRAW_CHUNK, n - c0)]
                prior.sample_into(chunk, generator=rng)
                bank._put_chunk(c0, chunk)
        bank.flush()
        return bank

    @classmethod
    def empty(cls, latent_shape: tuple[int, ...], n: int, device: torch.device | str = "cpu",
              shard: Shard = Shard(), disk_path: Path | None = None) -> LatentBank:
        shape = (shard.size(n), *latent_shape)
        if disk_path is None and torch.device(device).type == "cpu":
            return cls(_host_rows(shape), n, shard)
        if disk_path is None:
            return cls(torch.empty(shape, device=device), n, shard)
        disk_path.parent.mkdir(parents=True, exist_ok=True)
        # a .npy file (numpy.load(..., mmap_mode="r") maps it), created sparse
        try:
            np.lib.format.open_memmap(disk_path, mode="w+", dtype=np.float32,
                                      shape=shape).flush()
            reserve(disk_path)
        except BaseException as exc:
            disk_path.unlink(missing_ok=True)  # a full disk leaves no sparse file behind
            if isinstance(exc, OSError):
                raise write_error(exc, disk_path) from None
            raise
        return open_disk_bank(disk_path, n, shard)

    def _put_chunk(self, c0: int, z: Tensor) -> None:
        """Keep this shard's rows of examples c0 .. c0 + len(z) - 1."""
        first = (self.shard.rank - c0) % self.shard.world
        own = z[first::self.shard.world]
        start = (c0 + first) // self.shard.world
        self.latents[start:start + len(own)] = own.to(self.latents.device)

    def __len__(self) -> int:
        return self.n

    @property
    def latent_shape(self) -> tuple[int, ...]:
        return tuple(self.latents.shape[1:])

    def read(self, index: Tensor) -> Tensor:
        """Latents of examples ``index`` (all owned by this shard)."""
        return self.latents[self.shard.local(index).to(self.latents.device)]

    def write(self, index: Tensor, z: Tensor) -> None:
        rows = self.shard.local(index).to(self.latents.device)
        self.latents[rows] = z.to(self.latents.device, self.latents.dtype)

    def flush(self) -> None:
        """Push a disk bank's rows to the disk."""
        if isinstance(self.latents, RowFile):
            self.latents.flush()

    # -- whole bank ------------------------------------------------------------------------
    def gather(self, sink: Callable[[int, Tensor], object] | None) -> None:
        """Hand the full bank, in order, to rank 0's ``sink(first_index, rows)`` in blocks of
        about CHUNK rows (CPU float32); every rank must call this (others pass None)."""
        if self.shard.world == 1:
            for a in range(0, self.n, CHUNK):
                sink(a, self.latents[a:a + CHUNK].cpu())  # type: ignore[misc]
            return
        world = self.shard.world
        rows = -(-self.n // world)
        step = max(1, CHUNK // world)
        for a in range(0, rows, step):
            b = min(rows, a + step)
            mine = torch.zeros((b - a, *self.latent_shape), device=self._comm_device())
            have = self.latents[a:b]
            mine[:len(have)] = have.to(mine.device)
            parts = [torch.empty_like(mine) for _ in range(world)]
            dist.all_gather(parts, mine)
            if sink is not None:
                # row j * world + r of the stack is local row a + j of rank r: example
                # (a + j) * world + r, so the block is examples a * world .. b * world - 1
                block = torch.stack(parts, 1).reshape(-1, *self.latent_shape).cpu()
                sink(a * world, block[:max(0, min(self.n, b * world) - a * world)])

    def full(self) -> Tensor | None:
        """The full bank on the host (rank 0; None elsewhere). One process on the CPU gets the
        bank itself, not a copy."""
        if self.shard.world == 1 and isinstance(self.latents, Tensor) \
                and self.latents.device.type == "cpu":
            return self.latents
        out = torch.empty((self.n, *self.latent_shape)) if self.shard.is_main else None

        def sink(first: int, rows: Tensor) -> None:
            out[first:first + len(rows)] = rows  # type: ignore[index]

        self.gather(sink if out is not None else None)
        return out

    def moments(self, positions: Tensor | None = None) -> LatentMoments:
        """Moments of the whole bank (every rank calls this and gets the same sums): what a
        prior that learns from the bank is fit to; ``positions``: a boolean mask over the
        latent field's positions (flattened) to pool only those."""
        d = self.latent_shape[0]
        local = LatentMoments(0.0, torch.zeros(d, dtype=torch.float64),
                              torch.zeros(d, d, dtype=torch.float64))
        for c0 in range(0, len(self.latents), CHUNK):
            local = local + LatentMoments.of(torch.as_tensor(self.latents[c0:c0 + CHUNK]).cpu(),
                                             positions)
        if self.shard.world == 1:
            return local
        dev = self._comm_device()
        packed = torch.cat([torch.tensor([local.count], dtype=torch.float64), local.total,
                            local.outer.flatten()]).to(dev)
        packed = all_reduce_sum(packed, self.shard).cpu()
        return LatentMoments(float(packed[0]), packed[1:1 + d], packed[1 + d:].view(d, d))

    def load_full(self, latents: Tensor) -> None:
        """Take this shard's rows out of a full bank (any number of processes wrote it).

        A bank mapped from a checkpoint file (``torch.load(mmap=True)``) is handed back to the
        kernel chunk by chunk as it is copied: otherwise every page read stays mapped, and
        resuming would hold the stored bank beside the new one (measured: 517 instead of 260
        bytes per example at d = 64)."""
        if tuple(latents.shape) != (self.n, *self.latent_shape):
            raise ValueError(f"latent bank shape {tuple(latents.shape)} does not match "
                             f"{(self.n, *self.latent_shape)}")
        for c0 in range(0, self.n, CHUNK):
            chunk = latents[c0:c0 + CHUNK]
            self._put_chunk(c0, chunk)
            _page_out(chunk)
        self.flush()

    def _comm_device(self) -> torch.device:
        if dist.is_initialized() and dist.get_backend() == "nccl":
            return torch.device("cuda", torch.cuda.current_device())
        return torch.device("cpu")


def _page_out(t: Tensor) -> None:
    """Ask the kernel to reclaim the pages under a CPU tensor we are done reading
    (``MADV_PAGEOUT``, Linux 5.4+). Safe for any memory: file-backed pages are re-read if
    touched again, anonymous ones kept or swapped, never lost. A no-op elsewhere."""
    if not isinstance(t, Tensor) or t.device.type != "cpu" or t.numel() == 0:
        return
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        page = mmap.PAGESIZE
        start = -(-t.data_ptr() // page) * page  # whole pages inside the tensor only
        end = (t.data_ptr() + t.numel() * t.element_size()) // page * page
        if end > start:
            libc.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start),
                         ctypes.c_int(21))  # MADV_PAGEOUT
    except (OSError, AttributeError):
        pass


def _host_rows(shape: tuple[int, ...]) -> Tensor:
    """float32 rows in an anonymous mapping of their own, not on the malloc heap: the process
    keeps freed heap memory for reuse (``performance.tune_host_allocator``), and a bank of
    hundreds of MB placed among those blocks would leave the heap larger than the bank;
    mapped alone it costs exactly its pages and goes back to the system when dropped."""
    count = int(np.prod(shape))
    if count == 0:
        return torch.empty(shape)
    buffer = mmap.mmap(-1, count * 4)
    return torch.frombuffer(buffer, dtype=torch.float32, count=count).view(shape)


def open_disk_bank(path: Path, n: int, shard: Shard) -> LatentBank:
    """A bank in a .npy file: rows are read and written as batches use them (``RowFile``:
    the process holds a batch of rows, not the file)."""
    array = np.load(path, mmap_mode="r")
    shape, offset = array.shape, array.offset
    del array
    rows = RowFile(path, np.dtype(np.float32), shape, offset=offset, writable=True)
    return LatentBank(rows, n, shard, path)  # type: ignore[arg-type]
