"""Single- and multi-process training context: device, process group, DDP, sharding, clean shutdown.

Launched by ``torchrun`` (RANK/WORLD_SIZE/LOCAL_RANK in the environment) the trainer joins a
process group: NCCL on CUDA, gloo on CPU. SyncBatchNorm is used only with NCCL, because
PyTorch refuses SyncBatchNorm on CPU; gloo runs keep per-process BatchNorm. Only rank 0
writes files. At the end the DDP wrappers are deleted and garbage-collected before the
process group is destroyed, which avoids gloo's abort at interpreter shutdown.
"""

from __future__ import annotations

import datetime
import gc
import os
from dataclasses import dataclass
from typing import Iterable

import torch
import torch.distributed as dist
from torch import nn

from smisbench.errors import SmisbenchError


@dataclass
class DistContext:
    """Where this process runs and which share of the work it does."""

    device: torch.device
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: a single process, no process group

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.distributed:
            dist.barrier()


def pick_device(choice: str = "auto", local_rank: int = 0) -> torch.device:
    """CUDA (this process's GPU) when present or asked for, else CPU."""
    if choice not in ("auto", "cpu", "cuda"):
        raise SmisbenchError(f"unknown device {choice!r}", "use auto, cpu or cuda")
    if choice == "cuda" or (choice == "auto" and torch.cuda.is_available()):
        if not torch.cuda.is_available():
            raise SmisbenchError("--device cuda was asked for but CUDA is not available", "use --device cpu or auto")
        torch.cuda.set_device(local_rank % torch.cuda.device_count())
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def setup(device_choice: str = "auto", timeout_s: float = 1800.0) -> DistContext:
    """Join torchrun's process group if there is one; otherwise a single-process context."""
    if not launched_by_torchrun():
        return DistContext(pick_device(device_choice))
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(device_choice, local_rank)
    backend = "nccl" if device.type == "cuda" else "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend, rank=rank, world_size=world,
                                timeout=datetime.timedelta(seconds=timeout_s),
                                device_id=device if backend == "nccl" else None)
    return DistContext(device, rank, world, local_rank, backend)


def use_sync_batchnorm(ctx: DistContext, model: nn.Module, wanted: bool = True) -> nn.Module:
    """BatchNorm -> SyncBatchNorm in NCCL process groups only (CPU SyncBN is refused by PyTorch).

    Keyed on the backend alone, as the trainer's ``sync_batchnorm`` record is: an NCCL group of one
    process (the single-GPU check in tests/test_cuda.py) trains the converted modules too, which
    then normalise as plain BatchNorm (PyTorch's SyncBatchNorm at world size 1).
    """
    if ctx.backend == "nccl" and wanted:
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)
    return model


def wrapper(ctx: DistContext):
    """``wrap(module, find_unused) -> DDP(module)`` for objectives that train through DDP's hooks."""

    def wrap(module: nn.Module, find_unused: bool = False) -> nn.Module:
        ids = [ctx.device.index] if ctx.device.type == "cuda" else None
        return nn.parallel.DistributedDataParallel(module, device_ids=ids, find_unused_parameters=find_unused)

    return wrap


def broadcast_parameters(ctx: DistContext, modules: Iterable[nn.Module]) -> None:
    """Give every rank rank 0's parameters and buffers (what DDP does at construction)."""
    if not ctx.distributed:
        return
    for module in modules:
        for tensor in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(tensor.data, src=0)


def average_gradients(ctx: DistContext, parameters: Iterable[nn.Parameter]) -> None:
    """All-reduce (mean) the gradients of ``parameters`` in one flat buffer.

    For objectives that call their networks outside DDP's forward (several generator passes per
    step): the result equals DDP's averaged gradients.
    """
    if not ctx.distributed:
        return
    grads = [p.grad for p in parameters if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat)
    flat /= ctx.world_size
    offset = 0
    for g in grads:
        g.copy_(flat[offset: offset + g.numel()].view_as(g))
        offset += g.numel()


def mean_over_ranks(ctx: DistContext, values: dict[str, float]) -> dict[str, float]:
    """Average logged numbers over ranks (every rank must call it with the same keys)."""
    if not ctx.distributed or not values:
        return values
    keys = sorted(values)
    tensor = torch.tensor([values[k] for k in keys], dtype=torch.float64, device=ctx.device)
    dist.all_reduce(tensor)
    tensor /= ctx.world_size
    return dict(zip(keys, tensor.tolist()))


def gather_objects(ctx: DistContext, obj: object) -> list[object]:
    """Every rank's ``obj`` (on every rank), e.g. RNG states for a checkpoint."""
    if not ctx.distributed:
        return [obj]
    out: list[object] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def any_rank(ctx: DistContext, flag: bool) -> bool:
    """True on every rank if ``flag`` is true on any rank (e.g. a stop request seen by one process)."""
    return any_ranks(ctx, flag)[0]


def any_ranks(ctx: DistContext, *flags: bool) -> tuple[bool, ...]:
    """Each flag true on every rank if it is true on any rank; one all-reduce for all of them."""
    if not ctx.distributed:
        return tuple(bool(f) for f in flags)
    tensor = torch.tensor([1.0 if f else 0.0 for f in flags], device=ctx.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tuple(bool(v > 0) for v in tensor.tolist())


def shutdown(ctx: DistContext, holders: list) -> None:
    """Delete DDP wrappers, collect garbage, then destroy the process group (gloo aborts otherwise)."""
    holders.clear()
    gc.collect()
    if ctx.distributed and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
