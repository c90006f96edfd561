"""``smisbench run`` under torchrun: rank 0 runs the spec and alone touches the store; the others follow it.

Rank 0 keys, claims and records the cells exactly as one process does (leases included, so several
torchrun jobs can share one store too). Before it computes a cell it sends the cell to the other
ranks; every rank then runs the same executor on it, and the evaluation inside splits the label
maps and images over the ranks (``smisbench.metrics.sharding``). Only rank 0's outcome is stored.

After each cell the ranks report to rank 0 whether they got through it: a rank that failed where
rank 0 did not makes the cell a failed one (recorded, retried by the next run) instead of a result
of part of the work. A model the spec trains is trained by rank 0 while it keys the cell, before
the others start it; they load the finished file (the artifact folder must be readable by every rank).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, TypeVar

from smisbench.benchmark.runner import CellOutcome, ExecutionContext, Executor
from smisbench.errors import SmisbenchError
from smisbench.metrics import sharding

CELL, STOP = "cell", "stop"
T = TypeVar("T")


def _settle(error: BaseException | None) -> list[str | None]:
    """Every rank's failure (None: got through), on every rank."""
    return sharding.gather_objects(None if error is None else sharding.describe_error(error))


def leading(executor: Executor) -> Executor:
    """Rank 0's executor: send each cell to the other ranks, compute it with them, check they all got through."""
    def run(cell: Any, ctx: ExecutionContext) -> CellOutcome:
        sharding.broadcast_object((CELL, cell, str(ctx.artifacts_dir)))
        error: BaseException | None = None
        try:
            outcome = executor(cell, ctx)
        except Exception as err:
            error = err
        reports = _settle(error)
        if error is not None:
            raise error
        failed = [(rank, text) for rank, text in enumerate(reports) if text is not None]
        if failed:
            rank, text = failed[0]
            raise SmisbenchError(f"rank {rank} of {len(reports)} failed on this cell: {text}",
                                 "see that rank's error output above; run the same command again")
        return outcome

    identify = getattr(executor, "identify", None)
    if identify is not None:  # rank 0 keys the cells (and trains what the spec trains) alone
        run.identify = identify  # type: ignore[attr-defined]
    return run


def stop_followers() -> None:
    """Tell the other ranks the run is over (rank 0, once, however the run ended)."""
    sharding.broadcast_object((STOP, None, None))


def follow(executor: Executor) -> int:
    """The other ranks: compute each cell rank 0 sends, until it says stop. Writes nothing."""
    contexts: dict[str, ExecutionContext] = {}
    while True:
        kind, cell, artifacts = sharding.broadcast_object((None, None, None))
        if kind != CELL:
            return 0
        ctx = contexts.setdefault(artifacts, ExecutionContext(Path(artifacts)))
        error: BaseException | None = None
        try:
            executor(cell, ctx)
        except Exception as err:
            error = err
            sharding.warn(f"cell {cell.index} ({cell.title}) failed here: {sharding.describe_error(err)}")
        _settle(error)


def shard_command(device: str, executor: Executor, lead: Callable[[Executor], T]) -> T | int:
    """A command that computes cells with ``executor`` (``run``, ``score``), on every torchrun rank.

    Rank 0 calls ``lead(executor)`` (the executor sending each cell to the other ranks first) and
    returns what it returns; the other ranks follow until it is done and return 0. Without
    torchrun this is ``lead(executor)``.
    """
    with sharding.joined(device) as world:
        if not world.is_main:
            return follow(executor)
        if not world.distributed:
            return lead(executor)
        try:
            return lead(leading(executor))
        finally:
            stop_followers()
