"""Runs know their own state: liveness of a run's process, cell leases between runs, the heartbeat thread."""

from __future__ import annotations

import datetime as dt
import io
import subprocess
import sys
import threading
import time
from pathlib import Path

import benchmark_fakes as fakes
from smisbench.benchmark.cells import expand_cells
from smisbench.benchmark.leases import DONE, FAILED, LEASED, MINE, claim_cell, live_lease
from smisbench.benchmark.liveness import STALE_AFTER, is_gone, pid_alive, process_start, this_process
from smisbench.benchmark.runner import run_spec
from smisbench.benchmark.spec import parse_spec
from smisbench.benchmark.store import CellLink, Store
from test_benchmark_store import ENV, record

LINK = CellLink(0, "groupdnet", "GroupDNet", "synthetic", "syn")


def dead_pid() -> int:
    """The pid of a process that has exited and been reaped."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def ago(seconds: float) -> str:
    return (dt.datetime.now(dt.timezone.utc) - dt.timedelta(seconds=seconds)).isoformat(timespec="microseconds")


def set_process(store: Store, run_id: int, **columns) -> None:
    for name, value in columns.items():
        store.conn.execute(f"UPDATE runs SET {name} = ? WHERE run_id = ?", (value, run_id))


def test_this_process_is_alive_and_identified():
    me = this_process()
    assert me.pid > 0 and me.hostname
    assert pid_alive(me.pid) is True and pid_alive(dead_pid()) is False
    if me.start is not None:  # Linux: the start token tells a reused pid apart
        assert process_start(me.pid) == me.start
    assert not is_gone(me.hostname, me.pid, me.start, ago(10**6), 1.0, me=me)  # alive: an old heartbeat is fine


def test_gone_on_this_host_by_pid_and_elsewhere_by_heartbeat():
    me = this_process()
    assert is_gone(me.hostname, dead_pid(), None, ago(0), 10.0, me=me)  # pid gone: at once, not after a timeout
    if me.start is not None:
        assert is_gone(me.hostname, me.pid, "another-boot:1", ago(0), 10.0, me=me)  # pid reused
    fresh, stale = ago(STALE_AFTER * 10.0 - 5), ago(STALE_AFTER * 10.0 + 5)
    assert not is_gone("elsewhere", me.pid, me.start, fresh, 10.0, me=me)
    assert is_gone("elsewhere", me.pid, me.start, stale, 10.0, me=me)


def test_runs_show_a_dead_run_interrupted_and_a_writer_marks_it(tmp_path: Path):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        alive, killed, remote_live, remote_dead = (store.start_run(n, "t", "h", "", ENV) for n in "abcd")
        set_process(store, killed, pid=dead_pid())
        set_process(store, remote_live, hostname="elsewhere", heartbeat_at=ago(1))
        set_process(store, remote_dead, hostname="elsewhere", heartbeat_at=ago(STALE_AFTER * 10.0 + 60))
    expected = ["running", "interrupted", "running", "interrupted"]
    with Store(path, readonly=True) as store:
        assert [r.status for r in store.runs()] == expected
        assert [r.recorded_status for r in store.runs()] == ["running"] * 4  # a reader writes nothing
        assert store.run_info(killed).status == "interrupted"
    with Store(path) as store:
        store.start_run("e", "t", "h", "", ENV)
        assert [store.run(r)["status"] for r in (alive, killed, remote_live, remote_dead)] == expected
        assert store.run(remote_dead)["finished_at"] == store.run(remote_dead)["heartbeat_at"]


def test_a_cell_is_claimed_once_and_a_dead_claimer_is_taken_over(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as store:
        a = store.start_run("a", "t", "h", "", ENV)
        b = store.start_run("b", "t", "h", "", ENV)
        assert claim_cell(store, a, "k", LINK).state == MINE
        assert claim_cell(store, a, "k", LINK).state == MINE  # its own lease
        taken = claim_cell(store, b, "k", LINK)
        assert (taken.state, taken.holder) == (LEASED, a) and live_lease(store, "k") == a
        set_process(store, a, pid=dead_pid())  # a was killed while computing k
        assert claim_cell(store, b, "k", LINK).state == MINE
        assert store.run(a)["status"] == "interrupted" and live_lease(store, "k") == b
        store.record_cell(b, LINK, record("k"), {"fid": 2.0}, {})  # recording frees the lease
        assert live_lease(store, "k") is None
        c = store.start_run("c", "t", "h", "", ENV)
        done = claim_cell(store, c, "k", LINK)
        assert done.state == DONE and done.cell_id == store.finished_cell("k")
        assert store.runs()[-1].reused == 1
        assert claim_cell(store, c, "k", LINK, usable=lambda cell_id: False).state == MINE  # --redo-incomplete


def test_a_failure_of_the_run_waited_for_is_shared_not_recomputed(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as store:
        a = store.start_run("a", "t", "h", "", ENV)
        b = store.start_run("b", "t", "h", "", ENV)
        assert claim_cell(store, a, "k", LINK).state == MINE
        assert claim_cell(store, b, "k", LINK).state == LEASED
        failed = record("k", status="failed")
        failed.error = "planted"
        store.record_cell(a, LINK, failed, {}, {})
        shared = claim_cell(store, b, "k", LINK, waited_on=a)
        assert (shared.state, shared.holder, shared.error) == (FAILED, a, "planted")
        assert store.run_info(b).failed == 1
        c = store.start_run("c", "t", "h", "", ENV)
        assert claim_cell(store, c, "k", LINK).state == MINE  # a later run retries a failed cell


def test_finishing_or_interrupting_a_run_frees_its_leases(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as store:
        a = store.start_run("a", "t", "h", "", ENV)
        assert claim_cell(store, a, "k", LINK).state == MINE
        store.finish_run(a, "interrupted")
        assert live_lease(store, "k") is None
        assert store.conn.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0


def test_the_heartbeat_thread_renews_the_run_and_its_lease_while_a_cell_computes(tmp_path: Path):
    path = tmp_path / "s.sqlite"
    seen = {}

    def watch(cell, ctx):  # waits (up to a minute) until the heartbeat thread has renewed this cell's lease
        if not seen:
            with Store(path, readonly=True) as reader:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    row = reader.conn.execute("SELECT claimed_at, heartbeat_at FROM leases WHERE cell_key = ?",
                                              (cell.key,)).fetchone()
                    if row["heartbeat_at"] > row["claimed_at"]:
                        seen["lease"] = True
                        break
                    time.sleep(0.01)
        return fakes.fake_outcome(cell)

    with Store(path) as store:
        summary = run_spec(parse_spec(fakes.SMALL_SPEC, "small.toml"), store, watch, progress=False,
                           stream=io.StringIO(), environment=fakes.fake_environment, heartbeat_s=0.02)
        run = store.run(summary.run_id)
        assert summary.ok and seen == {"lease": True}
        assert run["heartbeat_at"] > run["started_at"] and run["status"] == "finished"
        assert store.conn.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0


def test_a_run_waits_for_cells_another_run_computes_then_links_their_outcome(tmp_path: Path):
    path = tmp_path / "s.sqlite"
    spec = parse_spec(fakes.SMALL_SPEC, "small.toml")
    cells = expand_cells(spec)
    links = [CellLink(c.index, c.model.id, c.model.label, c.dataset.id, c.dataset.label) for c in cells]
    stream, result, counting = io.StringIO(), {}, fakes.Counting()

    def second_run() -> None:
        with Store(path) as store:
            result["summary"] = run_spec(spec, store, counting, progress=False, stream=stream,
                                         environment=fakes.fake_environment, poll_s=0.01)

    with Store(path) as other:
        first = other.start_run("small", "small", spec.sha256, spec.text, ENV)
        for cell, cell_link in zip(cells[:2], links):  # the first run is computing the first two cells
            assert claim_cell(other, first, cell.key, cell_link).state == MINE
        thread = threading.Thread(target=second_run)
        thread.start()
        deadline = time.monotonic() + 120
        while "waiting for 2 cells that run(s) 1 compute" not in stream.getvalue() and time.monotonic() < deadline:
            time.sleep(0.01)
        out = io.StringIO()
        run_spec(spec, other, counting, dry_run=True, stream=out, progress=False)
        assert out.getvalue().count("being computed by run 1") == 2
        other.record_cell(first, links[0], record(cells[0].key), {"fid": 1.5}, {})
        broken = record(cells[1].key, status="failed")
        broken.error = "planted failure"
        other.record_cell(first, links[1], broken, {}, {})
        other.finish_run(first, "failed")
        thread.join(120)
        summary = result["summary"]
        assert sorted(counting.seen) == sorted(c.key for c in cells[2:])  # computed only what nobody else did
        assert [c.index for c in summary.reused] == [0]
        assert [(c.index, error) for c, error in summary.failed] == [(1, "failed in run 1: planted failure")]
        info = other.run_info(summary.run_id)
        assert (info.status, info.cells, info.computed, info.reused, info.failed) == ("failed", 6, 4, 1, 1)
        assert other.values(other.finished_cell(cells[0].key)) == {"fid": 1.5}
