"""The SQLite results store: schema, all-or-nothing writes, run lookup, two concurrent writers."""

from __future__ import annotations

import multiprocessing as mp
import sqlite3
from pathlib import Path

import pytest

from smisbench.benchmark.store import ArtifactRecord, CellLink, CellRecord, Store, now
from smisbench.errors import SmisbenchError

ENV = {"git_commit": "abc", "versions": {"torch": "x"}, "device_name": "fake", "threads": 1}


def record(key: str, status: str = "finished") -> CellRecord:
    t = now()
    return CellRecord(cell_key=key, status=status, model_name="groupdnet", dataset="synthetic", split="test", seed=0,
                      spec_sha256="s" * 64, device="cpu", dtype="float32", started_at=t, finished_at=t,
                      model_config={"ngf": 16}, protocol={"n": 4}, weights_sha256={"lpips": "w"},
                      versions={"torch": "x"}, threads=1, wall_time_s=0.5)


def link(i: int, model: str = "groupdnet") -> CellLink:
    return CellLink(i, model, model.upper(), "synthetic", "syn")


def test_schema_and_wal(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as store:
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in store.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"runs", "cells", "results", "provenance", "artifacts", "run_cells", "meta"} <= tables
        assert store.artifacts_dir == tmp_path / "s.artifacts"
    with Store(tmp_path / "s.sqlite") as again:  # reopening keeps the schema
        assert again.runs() == []


def test_cell_round_trip_with_provenance(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as store:
        run = store.start_run("demo", "demo", "h" * 64, "name = 'demo'", ENV)
        cell_id = store.record_cell(run, link(0), record("k1"), {"fid": 12.5, "mocd": float("nan")},
                                    {"environment": ENV, "weights_sha256": {"inception": "i"}},
                                    [ArtifactRecord("smis_grid", "grids/a.npz", "c" * 64, {"rows": 2})])
        store.finish_run(run, "finished")
        cell = store.cell(cell_id)
        assert cell["values"]["fid"] == 12.5
        assert cell["values"]["mocd"] != cell["values"]["mocd"]  # NaN stays "not a number", read back as NaN
        assert cell["model_config"] == {"ngf": 16} and cell["protocol"] == {"n": 4}
        assert cell["provenance"]["weights_sha256"] == {"inception": "i"}
        assert cell["git_commit"] is None or isinstance(cell["git_commit"], str)
        assert store.finished_cell("k1") == cell_id
        assert store.artifacts(cell_id, "smis_grid")[0].meta == {"rows": 2}
        (info,) = store.runs()
        assert (info.status, info.cells, info.computed, info.reused, info.failed) == ("finished", 1, 1, 0, 0)
        rows = store.run_results(run)
        assert {(r["model_label"], r["metric"]) for r in rows} == {("GROUPDNET", "fid"), ("GROUPDNET", "mocd")}


def test_write_is_all_or_nothing(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as store:
        run = store.start_run("demo", "demo", "h", "", ENV)
        with pytest.raises(sqlite3.IntegrityError):  # the second insert breaks the key: the first is undone
            with store.transaction() as conn:
                conn.execute("INSERT INTO meta (key, value) VALUES ('probe', '1')")
                conn.execute("INSERT INTO meta (key, value) VALUES ('probe', '2')")
        assert store.conn.execute("SELECT COUNT(*) FROM meta WHERE key = 'probe'").fetchone()[0] == 0

        class Boom(Exception):
            pass

        original = store._link

        def failing_link(*args, **kwargs):
            raise Boom

        store._link = failing_link  # fails after the cell, results and provenance rows were inserted
        with pytest.raises(Boom):
            store.record_cell(run, link(0), record("k2"), {"fid": 1.0}, {"a": 1}, [ArtifactRecord("x", "p", "s")])
        store._link = original
        for table in ("cells", "results", "provenance", "artifacts", "run_cells"):
            assert store.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == 0, table
        assert store.finished_cell("k2") is None


def test_failed_cells_are_not_finished(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as store:
        run = store.start_run("demo", "demo", "h", "", ENV)
        failed = record("k", status="failed")
        failed.error = "boom"
        store.record_cell(run, link(0), failed, {}, {})
        assert store.finished_cell("k") is None
        assert store.runs()[0].failed == 1


def test_resolve_run_references(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as store:
        a = store.start_run("demo", "demo", "h", "", ENV)
        b = store.start_run("table1", "table1", "h", "", ENV)
        assert store.resolve_run(str(a)) == a
        assert store.resolve_run("latest") == b
        assert store.resolve_run("latest:demo") == a
        uuid_b = store.run(b)["uuid"]
        assert store.resolve_run(uuid_b[:8]) == b
        store.conn.execute("UPDATE runs SET uuid = ? WHERE run_id = ?", ("12345678" + uuid_b[8:], b))
        assert store.resolve_run("12345678") == b  # an all-digit uuid prefix is not mistaken for a run number
        for bad in ("99", "latest:nothing", "zzzzzzzz"):
            with pytest.raises(SmisbenchError):
                store.resolve_run(bad)


def test_table_results_newest_run_wins(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as store:
        first = store.start_run("demo", "demo", "h", "", ENV)
        store.record_cell(first, link(0), record("k1"), {"fid": 10.0, "mocd": 0.5}, {})
        second = store.start_run("demo", "demo", "h", "", ENV)
        store.record_cell(second, link(0), record("k2"), {"fid": 8.0}, {})
        values = {r["metric"]: (r["value"], r["run_id"]) for r in store.table_results("demo")}
        assert values == {"fid": (8.0, second), "mocd": (0.5, first)}


def _writer(path: str, name: str, cells: int, start) -> None:
    start.wait()
    with Store(path, timeout_s=60) as store:
        run = store.start_run(name, "concurrent", "h", "", ENV)
        for i in range(cells):
            store.record_cell(run, link(i, name), record(f"{name}-{i}"),
                              {"fid": float(i), "mcsd": i / 10, "mocd": i / 100},
                              {"environment": ENV, "i": i}, [ArtifactRecord("x", f"{name}/{i}", "s")])
        store.finish_run(run, "finished")


def test_two_concurrent_writers_do_not_corrupt(tmp_path: Path):
    path = str(tmp_path / "shared.sqlite")
    ctx = mp.get_context("spawn")
    start = ctx.Event()
    procs = [ctx.Process(target=_writer, args=(path, name, 60, start)) for name in ("alpha", "beta")]
    for p in procs:
        p.start()
    start.set()  # both begin together (each also creates the schema if it gets there first)
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0]
    with Store(path) as store:
        assert store.integrity_ok()
        runs = store.runs()
        assert sorted((r.spec_name, r.status, r.cells) for r in runs) == [("alpha", "finished", 60),
                                                                         ("beta", "finished", 60)]
        assert store.conn.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 360
        assert store.conn.execute("SELECT COUNT(*) FROM provenance").fetchone()[0] == 240
        for name in ("alpha", "beta"):
            for i in range(60):
                cell_id = store.finished_cell(f"{name}-{i}")
                assert store.values(cell_id) == {"fid": float(i), "mcsd": i / 10, "mocd": i / 100}


# ----- opening: read-only never creates or changes anything; bad files are refused with the fix -----

def snapshot(folder: Path) -> dict[str, tuple[str, int, int, bytes]]:
    """Every path under ``folder`` with its kind, size, mtime and content."""
    out = {}
    for path in sorted(folder.rglob("*")):
        stat = path.stat()
        out[str(path.relative_to(folder))] = ("dir" if path.is_dir() else "file", stat.st_size, stat.st_mtime_ns,
                                             b"" if path.is_dir() else path.read_bytes())
    return out


def bad_store(tmp_path: Path, kind: str) -> Path:
    path = tmp_path / "s.sqlite"
    if kind == "empty":
        path.touch()
    elif kind == "not sqlite":
        path.write_text("name = 'a spec, not a store'\n")
    elif kind == "short":
        path.write_bytes(b"SQLite")
    elif kind == "folder":
        path.mkdir()
        (path / "inside.txt").write_text("x")
    elif kind == "foreign":
        conn = sqlite3.connect(path)
        conn.execute("CREATE TABLE t (x)")
        conn.commit()
        conn.close()
    elif kind == "newer":
        with Store(path) as store:
            store.conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    return path


@pytest.mark.parametrize("kind, problem", [
    ("missing", "no results store"), ("empty", "empty file (0 bytes)"), ("not sqlite", "not a SQLite file"),
    ("short", "not a SQLite file"), ("folder", "is a folder"), ("foreign", "not a smisbench results store"),
    ("newer", "schema version 99"),
])
def test_readonly_refuses_what_is_not_a_store_and_changes_nothing(tmp_path: Path, kind: str, problem: str):
    path = bad_store(tmp_path, kind)
    before = snapshot(tmp_path)
    with pytest.raises(SmisbenchError) as err:
        Store(path, readonly=True)
    assert problem in err.value.problem and err.value.fix
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize("kind", ["not sqlite", "folder", "foreign", "newer"])
def test_writer_refuses_to_overwrite_what_is_not_a_store(tmp_path: Path, kind: str):
    path = bad_store(tmp_path, kind)
    before = snapshot(tmp_path)
    with pytest.raises(SmisbenchError):
        Store(path)
    assert snapshot(tmp_path) == before


def test_writer_fills_an_empty_file(tmp_path: Path):
    path = bad_store(tmp_path, "empty")
    with Store(path) as store:
        assert store.runs() == []
    assert path.stat().st_size > 0


def test_readonly_open_leaves_the_files_as_they_were(tmp_path: Path):
    path = tmp_path / "s.sqlite"
    with Store(path) as store:
        run = store.start_run("demo", "demo", "h", "", ENV)
        store.record_cell(run, link(0), record("k1"), {"fid": 1.0}, {})
        store.finish_run(run, "finished")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.sqlite"]  # the last writer folds the WAL back in
    before = snapshot(tmp_path)
    with Store(path, readonly=True) as store:
        assert [r.status for r in store.runs()] == ["finished"]
        assert store.values(store.finished_cell("k1")) == {"fid": 1.0}
        with pytest.raises(sqlite3.OperationalError):
            store.conn.execute("DELETE FROM results")
    assert snapshot(tmp_path) == before


def test_readonly_missing_ok_reads_as_empty_without_creating(tmp_path: Path):
    with Store(tmp_path / "new.sqlite", readonly=True, missing_ok=True) as store:
        assert store.runs() == [] and store.finished_cell("k") is None
    assert list(tmp_path.iterdir()) == []


def _as_version_1(path: Path) -> None:
    """Turn a store into what smisbench wrote before runs recorded their process (schema version 1)."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = DELETE")
    conn.execute("DROP TABLE leases")
    for column in ("pid", "hostname", "process_start", "heartbeat_at", "heartbeat_s"):
        conn.execute(f"ALTER TABLE runs DROP COLUMN {column}")
    conn.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    conn.close()


def test_version_1_store_is_read_as_is_and_upgraded_by_a_writer(tmp_path: Path):
    path = tmp_path / "old.sqlite"
    with Store(path) as store:
        done = store.start_run("demo", "demo", "h", "", ENV)
        store.record_cell(done, link(0), record("k1"), {"fid": 1.0}, {})
        store.finish_run(done, "finished")
        killed = store.start_run("demo", "demo", "h", "", ENV)
        store.conn.execute("UPDATE runs SET started_at = '2020-01-01T00:00:00.000000+00:00' WHERE run_id = ?",
                           (killed,))
    _as_version_1(path)
    before = snapshot(tmp_path)
    with Store(path, readonly=True) as store:
        assert store.version == 1
        # no process recorded: a run silent for longer than the heartbeat allows is shown interrupted
        assert [(r.status, r.recorded_status) for r in store.runs()] == [("finished", "finished"),
                                                                         ("interrupted", "running")]
    assert snapshot(tmp_path) == before
    with Store(path) as store:
        assert store.version == 2
        assert store.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "2"
        store.start_run("demo", "demo", "h", "", ENV)  # a writer marks the dead run
        assert store.run(killed)["status"] == "interrupted"
        assert store.values(store.finished_cell("k1")) == {"fid": 1.0}
