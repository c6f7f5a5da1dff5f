"""Training on several processes, launched by ``torchrun`` (torch.distributed).

``torchrun --nproc-per-node N -m latentgen train ...`` starts N copies of the command; each
reads its rank from the environment torchrun sets (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
MASTER_PORT) and joins a process group: NCCL between GPUs, gloo on CPU.

How the work is split, and why a run does not depend on the number of processes:

- The global batches and their order come from ``EpochOrder`` (seed, epoch) alone.
- Example i belongs to rank ``i % world``. Each rank keeps the latent bank rows of its own
  examples (local row ``i // world``) and, from every global batch, infers the latents of its
  own examples only.
- Langevin noise is drawn for the whole global batch from the batch's generator, and each rank
  keeps its rows (``RowNoise``), so an example's noise is what one process would draw for it.
- The learning loss is the global batch mean: each rank sums its examples' energies, divides
  by the global batch size and multiplies by ``world`` because DDP averages gradients.
"""

from __future__ import annotations

import contextlib
import datetime
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from latentgen.errors import UserError

T = TypeVar("T")

#: how long a rank waits for the others (e.g. while rank 0 evaluates error curves)
TIMEOUT = datetime.timedelta(hours=2)


@dataclass(frozen=True)
class Shard:
    """Which examples a process owns: those with ``index % world == rank``."""

    rank: int = 0
    world: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def size(self, n: int) -> int:
        """How many of examples 0..n-1 this shard owns."""
        return len(range(self.rank, n, self.world))

    def owns(self, index: Tensor) -> Tensor:
        """Boolean mask of the entries of ``index`` this shard owns."""
        return index % self.world == self.rank

    def local(self, index: Tensor) -> Tensor:
        """Rows of this shard's arrays holding examples ``index`` (all owned)."""
        return index // self.world if self.world > 1 else index


def environment_world() -> tuple[int, int, int]:
    """(rank, world size, local rank) from torchrun's environment; (0, 1, 0) without it."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise UserError("WORLD_SIZE, RANK and LOCAL_RANK must be integers; launch with "
                        "torchrun, or unset them for one process") from None
    return rank, world, local


@contextlib.contextmanager
def session(device: torch.device) -> Iterator[tuple[Shard, torch.device]]:
    """Join the process group torchrun describes (if any) for the duration of the block.

    Yields this process's shard and its device: under torchrun on CUDA, GPU ``LOCAL_RANK``.
    """
    rank, world, local = environment_world()
    if world <= 1:
        yield Shard(), device
        return
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise UserError(f"LOCAL_RANK {local} but torch sees {torch.cuda.device_count()} "
                            "GPU(s); give torchrun --nproc-per-node at most the GPU count")
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    started = not dist.is_initialized()
    if started:
        dist.init_process_group(backend, timeout=TIMEOUT)
    try:
        yield Shard(dist.get_rank(), dist.get_world_size()), device
    finally:
        if started and dist.is_initialized():
            dist.destroy_process_group()


def data_parallel(net: nn.Module, shard: Shard, device: torch.device) -> nn.Module:
    """``net`` wrapped in DDP for the learning step (gradients averaged across ranks)."""
    if shard.world == 1:
        return net
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(net, device_ids=ids)


def sync_batchnorm(generator: nn.Module, shard: Shard, device: torch.device) -> nn.Module:
    """BatchNorm layers become SyncBatchNorm, so a batch's statistics span every rank (the
    same statistics one process computes over the global batch)."""
    has_bn = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in generator.modules())
    if shard.world == 1 or not has_bn:
        return generator
    if device.type != "cuda":
        raise UserError("the generator has BatchNorm layers, which torch synchronises across "
                        "processes only on GPUs; train it with one process on CPU, or on CUDA")
    return nn.SyncBatchNorm.convert_sync_batchnorm(generator)


def all_reduce_sum(values: Tensor, shard: Shard) -> Tensor:
    """Sum ``values`` over all ranks (in place) and return it."""
    if shard.world > 1:
        dist.all_reduce(values, op=dist.ReduceOp.SUM)
    return values


def from_first(make: Callable[[], T], shard: Shard) -> T:
    """``make()`` on the first rank, its result (any picklable object) on every rank: what
    must be the same everywhere though measured (forms, precision)."""
    if shard.world == 1:
        return make()
    box = [make() if shard.is_main else None]
    dist.broadcast_object_list(box, src=0)
    return box[0]  # type: ignore[return-value]


def barrier(shard: Shard) -> None:
    if shard.world > 1:
        dist.barrier()


