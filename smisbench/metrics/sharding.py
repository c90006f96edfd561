"""Sharded evaluation: which share of the work this process does, and the collectives that join the shares.

Launched by ``torchrun`` (``RANK``/``WORLD_SIZE``/``LOCAL_RANK`` in the environment), an evaluation
command joins one process group (:func:`joined`: NCCL on CUDA, each rank on ``cuda:LOCAL_RANK``;
gloo on CPU) through the training code's own setup (``smisbench.training.distributed``). The split:

* the shared pass over the dataset goes in batches of ``protocol.batch_size`` cut exactly as one
  process cuts them, and batch ``k`` belongs to rank ``k % N`` (:meth:`World.owns`): a generated
  image depends on the batch it was made in only at float rounding, so keeping the batches keeps
  the numbers bit for bit;
* per-map work (mCSD/mOCD, LPIPS diversity) goes by map: map ``i`` belongs to rank ``i % N``; each
  map's codes and pairs come from its own seeds (``smis_diversity.derive_seed``), whatever N;
* the metrics join their shares in :meth:`Metric.finish`: features and per-map terms are gathered
  and put back in item order (:func:`merge_indexed`), confusion matrices summed (:func:`all_reduce_sum_`),
  one-off work (FPS, a cache write) done on rank 0 (:func:`on_main`, :func:`main_first`).

So every rank ends with the numbers one process gets, on the same hardware and threads per process.
Every helper here is a no-op in one process, so the metrics call them unconditionally.
"""

from __future__ import annotations

import contextlib
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable, Iterator, TypeVar

import torch

from smisbench.errors import SmisbenchError

T = TypeVar("T")
TIMEOUT_ENV = "SMISBENCH_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 24 * 3600.0  # ranks wait while rank 0 trains a spec's model or a segmenter


@dataclass(frozen=True)
class World:
    """This process's place in the evaluation: rank, number of ranks, and the backend joining them."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0
    backend: str | None = None  # None: one process

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def owns(self, index: int) -> bool:
        """Whether item (or batch) ``index`` is this rank's share: round robin, ``index % size``."""
        return index % self.size == self.rank

    def describe(self) -> dict[str, Any]:
        return {"world_size": self.size, "backend": self.backend}


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() and dist.is_initialized() else None


def world() -> World:
    """The process group this process is in (a single-process world when there is none)."""
    dist = _dist()
    if dist is None or dist.get_world_size() == 1:
        return World()
    return World(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), dist.get_backend())


def is_main() -> bool:
    return world().is_main


def owns(index: int) -> bool:
    return world().owns(index)


def timeout_s() -> float:
    """How long a rank waits in a collective (``$SMISBENCH_DIST_TIMEOUT_S``, default one day)."""
    text = os.environ.get(TIMEOUT_ENV)
    if not text:
        return DEFAULT_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if value <= 0:
        raise SmisbenchError(f"{TIMEOUT_ENV}={text!r} is not a positive number of seconds",
                             f"set {TIMEOUT_ENV} to e.g. 86400, or unset it")
    return value


@contextlib.contextmanager
def joined(device: str) -> Iterator[World]:
    """Join torchrun's process group for one command (a no-op without torchrun); leave it at the end.

    ``device`` is the command's device name: ``cuda`` or ``cuda:K`` put each rank on its own GPU
    (``cuda:LOCAL_RANK``) with NCCL, anything else runs on the CPU with gloo.
    """
    from smisbench.training import distributed

    if not distributed.launched_by_torchrun() or _dist() is not None:
        yield world()
        return
    choice = "cuda" if str(device).startswith("cuda") else "cpu"
    context = distributed.setup(choice, timeout_s())
    failed = False
    try:
        yield world()
    except BaseException:
        failed = True
        raise
    finally:
        if failed:  # another rank may never reach a barrier now: leave without one
            import torch.distributed as dist

            dist.destroy_process_group()
        else:
            distributed.shutdown(context, [])


# ----------------------------------------------------------------------------- collectives
def barrier() -> None:
    dist = _dist()
    if dist is not None:
        dist.barrier()


def gather_objects(obj: T) -> list[T]:
    """Every rank's ``obj``, in rank order, on every rank (``[obj]`` in one process)."""
    dist = _dist()
    if dist is None:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` on every rank (the argument is ignored elsewhere)."""
    dist = _dist()
    if dist is None:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def merge_indexed(local: dict[int, T]) -> dict[int, T]:
    """Every rank's ``{index: value}`` in one dict in index order, on every rank.

    Two ranks holding the same index would mean the split was not a partition: that is refused.
    """
    if _dist() is None:
        return dict(sorted(local.items()))
    merged: dict[int, T] = {}
    for rank, part in enumerate(gather_objects(local)):
        clash = sorted(set(part) & set(merged))
        if clash:
            raise SmisbenchError(f"item {clash[0]} was computed by two ranks (rank {rank} and an earlier one)",
                                 "every rank must run the same command with the same protocol")
        merged.update(part)
    return dict(sorted(merged.items()))


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place (through this rank's GPU under NCCL); returns it."""
    dist = _dist()
    if dist is None:
        return tensor
    if dist.get_backend() == "nccl" and tensor.device.type != "cuda":
        moved = tensor.to(f"cuda:{torch.cuda.current_device()}")
        dist.all_reduce(moved, op=dist.ReduceOp.SUM)
        tensor.copy_(moved.cpu())
    else:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def all_max(value: float) -> float:
    """The largest ``value`` of all ranks, on every rank (NaN counts as largest)."""
    values = gather_objects(float(value))
    return float("nan") if any(v != v for v in values) else max(values)


def on_main(fn: Callable[[], T]) -> T:
    """``fn()`` run on rank 0 alone; its result (or its error) on every rank.

    For work done once (a timing that other processes would disturb, a computation on the gathered whole).
    """
    w = world()
    if not w.distributed:
        return fn()
    outcome: tuple[str, Any] = ("", None)
    if w.is_main:
        try:
            outcome = ("ok", fn())
        except Exception as err:  # shared, so every rank fails the same way instead of waiting
            outcome = ("error", err)
    outcome = broadcast_object(outcome)
    if outcome[0] == "error":
        raise outcome[1]
    return outcome[1]


def main_first(fn: Callable[[], T]) -> T:
    """``fn()`` on rank 0, then on the other ranks: rank 0 makes a cached file (a trained segmenter)
    that the others then find, instead of every rank making it at once."""
    w = world()
    if not w.distributed:
        return fn()
    if w.is_main:
        try:
            return fn()
        finally:
            barrier()
    barrier()
    return fn()


def describe_error(err: BaseException) -> str:
    """One line for another rank's report of a failure."""
    return str(err).splitlines()[0] if str(err) else type(err).__name__


def warn(text: str) -> None:
    """A line on this rank's stderr, named by rank (only rank 0 prints anything else)."""
    w = world()
    print(f"smisbench rank {w.rank}/{w.size}: {text}", file=sys.stderr)
