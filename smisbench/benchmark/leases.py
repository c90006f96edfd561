"""Cell leases: concurrent runs of one spec into one store share the work, and each cell is computed once.

Before computing a cell a run claims it: in one ``BEGIN IMMEDIATE`` transaction it looks for
a finished result (reused), then for a live lease of another run (wait for it), and else
writes its own lease row. The run's heartbeat thread renews its leases; recording the cell
deletes the lease in the transaction that writes the result. A lease whose run's process is
gone (see ``liveness``) is taken over, and that run is marked interrupted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from smisbench.benchmark.liveness import ProcessId, is_gone, this_process
from smisbench.benchmark.store import CellLink, Store, interrupt, now

DONE, MINE, LEASED, FAILED = "done", "mine", "leased", "failed"


@dataclass(frozen=True)
class Claim:
    """``done``: a finished result is linked into the run; ``mine``: compute it; ``leased``: another live run
    (``holder``) computes it; ``failed``: the run waited for recorded a failure, linked into this run too."""

    state: str
    cell_id: int | None = None
    holder: int | None = None
    error: str | None = None


_LEASE_SQL = ("SELECT l.run_id, l.heartbeat_at, r.status, r.hostname, r.pid, r.process_start, r.heartbeat_s"
              " FROM leases l JOIN runs r ON r.run_id = l.run_id WHERE l.cell_key = ?")


def _live_holder(row, me: ProcessId) -> bool:
    return row["status"] == "running" and not is_gone(row["hostname"], row["pid"], row["process_start"],
                                                      row["heartbeat_at"], row["heartbeat_s"], me=me)


def claim_cell(store: Store, run_id: int, cell_key: str, link: CellLink,
               usable: Callable[[int], bool] = lambda cell_id: True, waited_on: int | None = None) -> Claim:
    """Claim one cell for ``run_id`` (see the module docstring).

    ``usable`` says whether a finished cell may be reused (``--redo-incomplete`` rejects one that
    lacks a value); ``waited_on`` is the run this one found computing the cell before, whose
    failure is shared instead of computed again.
    """
    me = this_process()
    with store.transaction() as conn:
        found = conn.execute("SELECT cell_id FROM cells WHERE cell_key = ? AND status = 'finished'"
                             " ORDER BY cell_id DESC LIMIT 1", (cell_key,)).fetchone()
        if found is not None and usable(int(found["cell_id"])):
            store._link(conn, run_id, int(found["cell_id"]), link, reused=True)
            return Claim(DONE, int(found["cell_id"]))
        lease = conn.execute(_LEASE_SQL, (cell_key,)).fetchone()
        if lease is not None and lease["run_id"] != run_id:
            if _live_holder(lease, me):
                return Claim(LEASED, holder=int(lease["run_id"]))
            interrupt(conn, int(lease["run_id"]))  # its process is gone: take its cells over
        if waited_on is not None:
            failed = conn.execute("SELECT cell_id, error FROM cells WHERE cell_key = ? AND run_id = ? AND"
                                  " status = 'failed' ORDER BY cell_id DESC LIMIT 1", (cell_key, waited_on)).fetchone()
            if failed is not None:
                store._link(conn, run_id, int(failed["cell_id"]), link, reused=True)
                return Claim(FAILED, int(failed["cell_id"]), waited_on, failed["error"])
        stamp = now()
        conn.execute("INSERT OR REPLACE INTO leases (cell_key, run_id, claimed_at, heartbeat_at) VALUES (?, ?, ?, ?)",
                     (cell_key, run_id, stamp, stamp))
        return Claim(MINE)


def live_lease(store: Store, cell_key: str) -> int | None:
    """The run that computes this cell right now, or None; reads only (a dry run shows it)."""
    if not store.has_leases:
        return None
    row = store.conn.execute(_LEASE_SQL, (cell_key,)).fetchone()
    return int(row["run_id"]) if row is not None and _live_holder(row, this_process()) else None
