"""The results store: one SQLite file per project holding every run, cell, number and its provenance.

SQLite in WAL mode with a busy timeout, and every write in one ``BEGIN IMMEDIATE``
transaction, so a cell appears whole or not at all, an interrupted run leaves no half
rows, and two processes writing into the same file wait for each other instead of
corrupting it. (WAL needs a local file system; do not put the store on NFS.)

A run records the process that does it and renews a heartbeat (``liveness``), so a run
that was killed is shown, and by the next writer marked, as interrupted. Opening the file
(and its schema) is ``storefile``; cell leases between concurrent runs are ``leases``.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import json
import math
import sqlite3
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from smisbench.benchmark import storefile
from smisbench.benchmark.liveness import HEARTBEAT_S, Heartbeat, ProcessId, is_gone, this_process
from smisbench.errors import SmisbenchError

DEFAULT_STORE = Path("smisbench.sqlite")


def now() -> str:
    """UTC timestamp with microseconds; sorts as text."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


@dataclass(frozen=True)
class CellLink:
    """How a run names a cell (labels can change between runs without recomputing)."""

    cell_index: int
    model_id: str
    model_label: str
    dataset_id: str
    dataset_label: str


@dataclass
class CellRecord:
    """One computed (or failed) cell with its provenance columns."""

    cell_key: str
    status: str
    model_name: str
    dataset: str
    split: str
    seed: int
    spec_sha256: str
    device: str
    dtype: str
    started_at: str
    finished_at: str
    model_config: dict[str, Any] = field(default_factory=dict)
    checkpoint: str | None = None
    checkpoint_sha256: str | None = None
    dataset_options: dict[str, Any] = field(default_factory=dict)
    metrics: list[str] = field(default_factory=list)
    protocol: dict[str, Any] = field(default_factory=dict)
    weights_sha256: dict[str, Any] = field(default_factory=dict)
    git_commit: str | None = None
    versions: dict[str, Any] = field(default_factory=dict)
    device_name: str | None = None
    threads: int | None = None
    wall_time_s: float | None = None
    notes: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass(frozen=True)
class ArtifactRecord:
    """A file a cell produced (checkpoint, SMIS grid); ``path`` is relative to the artifact folder."""

    kind: str
    path: str
    sha256: str
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunInfo:
    """A run as commands show it: ``status`` is ``interrupted`` for a ``running`` run whose process is gone."""

    run_id: int
    uuid: str
    spec_name: str
    table: str
    status: str
    started_at: str
    finished_at: str | None
    git_commit: str | None
    spec_sha256: str
    cells: int
    computed: int
    reused: int
    failed: int
    recorded_status: str = ""  # as written in the store (a killed run could not write its end)
    hostname: str | None = None
    pid: int | None = None
    spec_source: str | None = None


_RUNS_SQL = (
    "SELECT r.*, COUNT(rc.cell_id) AS n, MAX(c.finished_at) AS last_cell_at,"
    " SUM(CASE WHEN c.status = 'finished' AND rc.reused = 0 THEN 1 ELSE 0 END) AS computed,"
    " SUM(CASE WHEN c.status = 'finished' AND rc.reused = 1 THEN 1 ELSE 0 END) AS reused,"
    " SUM(CASE WHEN c.status = 'failed' THEN 1 ELSE 0 END) AS failed"
    " FROM runs r LEFT JOIN run_cells rc ON rc.run_id = r.run_id LEFT JOIN cells c ON c.cell_id = rc.cell_id"
    " {where} GROUP BY r.run_id ORDER BY r.run_id"
)


def _get(row: sqlite3.Row, key: str) -> Any:
    """A column that a version-1 store lacks reads as None."""
    return row[key] if key in row.keys() else None


def run_gone(row: sqlite3.Row, me: ProcessId | None = None) -> bool:
    """Whether the process of a ``running`` run row is gone; a version-1 run (no heartbeat) was last seen
    alive when it started or last finished a cell."""
    beat = _get(row, "heartbeat_at") or max(s for s in (row["started_at"], _get(row, "last_cell_at")) if s)
    return is_gone(_get(row, "hostname"), _get(row, "pid"), _get(row, "process_start"), beat,
                   _get(row, "heartbeat_s"), me=me)


def interrupt(conn: sqlite3.Connection, run_id: int) -> None:
    """Mark a ``running`` run whose process is gone as interrupted, ended at its last heartbeat; free its leases."""
    conn.execute("UPDATE runs SET status = 'interrupted', finished_at = COALESCE(heartbeat_at, started_at)"
                 " WHERE run_id = ? AND status = 'running'", (run_id,))
    conn.execute("DELETE FROM leases WHERE run_id = ?", (run_id,))


class Store:
    """A results store file; open one per process (connections are not shared across processes).

    ``readonly=True`` opens an existing store strictly for reading (what ``runs``, ``compare``,
    ``report`` and ``baseline`` use) and never creates or changes a file; with ``missing_ok`` a
    store that does not exist yet reads as empty (a dry run plans against it).
    """

    def __init__(self, path: str | Path = DEFAULT_STORE, timeout_s: float = 120.0, *, readonly: bool = False,
                 missing_ok: bool = False):
        self.path = Path(path)
        self.readonly = readonly
        self.conn: sqlite3.Connection | None = None
        if readonly and missing_ok and not self.path.exists():
            self.conn, self.version = storefile.memory_store(), storefile.SCHEMA_VERSION
            return
        try:
            self.version = self._open_readonly(timeout_s) if readonly else self._open_writable(timeout_s)
        except BaseException as err:
            if self.conn is not None:
                self.conn.close()
            if isinstance(err, sqlite3.Error):
                raise storefile.open_error(self.path, err) from None
            raise

    def _open_readonly(self, timeout_s: float) -> int:
        storefile.check_file(self.path, writable=False)
        self.conn = storefile.connect(self.path, readonly=True, timeout_s=timeout_s)
        return storefile.check_readable(self.conn, self.path)

    def _open_writable(self, timeout_s: float) -> int:
        storefile.check_file(self.path, writable=True)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise SmisbenchError(f"cannot create the folder of store {self.path}: {err.strerror}",
                                 "pass --store in a folder you can write") from None
        self.conn = storefile.connect(self.path, readonly=False, timeout_s=timeout_s)
        storefile.check_writable(self.conn, self.path)
        storefile.use_wal(self.conn, self.path, timeout_s)
        with self.transaction() as conn:
            storefile.ensure_schema(conn, self.path)
        return storefile.SCHEMA_VERSION

    @property
    def has_leases(self) -> bool:
        return self.version >= 2

    @property
    def artifacts_dir(self) -> Path:
        """Folder beside the store for files its cells produced."""
        return self.path.with_name(self.path.stem + ".artifacts")

    def close(self) -> None:
        if not self.readonly:
            storefile.leave_wal(self.conn)
        self.conn.close()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @contextlib.contextmanager
    def transaction(self, conn: sqlite3.Connection | None = None) -> Iterator[sqlite3.Connection]:
        """All-or-nothing write; takes the write lock at the start so concurrent writers queue."""
        conn = conn or self.conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # ----- runs -----
    def start_run(self, spec_name: str, table: str, spec_sha256: str, spec_text: str, environment: dict[str, Any],
                  spec_source: str | None = None, command: str | None = None,
                  heartbeat_s: float = HEARTBEAT_S) -> int:
        """A new ``running`` run owned by this process; runs whose process is gone are marked interrupted first."""
        me = this_process()
        with self.transaction() as conn:
            for row in conn.execute(_RUNS_SQL.format(where="WHERE r.status = 'running'")).fetchall():
                if run_gone(row, me):
                    interrupt(conn, row["run_id"])
            stamp = now()
            cur = conn.execute(
                "INSERT INTO runs (uuid, spec_name, table_name, spec_sha256, spec_source, spec_text, status,"
                " started_at, git_commit, environment, command, pid, hostname, process_start, heartbeat_at,"
                " heartbeat_s) VALUES (?, ?, ?, ?, ?, ?, 'running', ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (uuid.uuid4().hex, spec_name, table, spec_sha256, spec_source, spec_text, stamp,
                 environment.get("git_commit"), _json(environment), command, me.pid, me.hostname, me.start,
                 stamp, float(heartbeat_s)),
            )
            return int(cur.lastrowid)

    def heartbeat(self, run_id: int, interval_s: float = HEARTBEAT_S) -> Heartbeat:
        """Use as ``with``: renews the run's heartbeat and its cell leases from a thread while the run works.

        A run that another process took for gone (a long suspend) but that beats again is running again.
        """
        conn = storefile.connect(self.path, readonly=False, timeout_s=max(1.0, interval_s))

        def beat() -> None:
            stamp = now()
            with self.transaction(conn) as c:
                c.execute("UPDATE runs SET heartbeat_at = ?, status = 'running', finished_at = NULL"
                          " WHERE run_id = ? AND status IN ('running', 'interrupted')", (stamp, run_id))
                c.execute("UPDATE leases SET heartbeat_at = ? WHERE run_id = ?", (stamp, run_id))

        return Heartbeat(beat, interval_s, close=conn.close)

    def finish_run(self, run_id: int, status: str) -> None:
        with self.transaction() as conn:
            conn.execute("UPDATE runs SET status = ?, finished_at = ? WHERE run_id = ?", (status, now(), run_id))
            conn.execute("DELETE FROM leases WHERE run_id = ?", (run_id,))

    def runs(self) -> list[RunInfo]:
        """Every run, oldest first, with the status it has now (see ``RunInfo``); writes nothing."""
        me = this_process()
        return [self._info(r, me) for r in self.conn.execute(_RUNS_SQL.format(where="")).fetchall()]

    def run_info(self, run_id: int) -> RunInfo:
        self.run(run_id)  # a clear error for an unknown run
        row = self.conn.execute(_RUNS_SQL.format(where="WHERE r.run_id = ?"), (run_id,)).fetchone()
        return self._info(row, this_process())

    @staticmethod
    def _info(r: sqlite3.Row, me: ProcessId) -> RunInfo:
        status = "interrupted" if r["status"] == "running" and run_gone(r, me) else r["status"]
        return RunInfo(r["run_id"], r["uuid"], r["spec_name"], r["table_name"], status, r["started_at"],
                       r["finished_at"], r["git_commit"], r["spec_sha256"], r["n"], r["computed"] or 0,
                       r["reused"] or 0, r["failed"] or 0, r["status"], _get(r, "hostname"), _get(r, "pid"),
                       r["spec_source"])

    def run(self, run_id: int) -> sqlite3.Row:
        row = self.conn.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None:
            raise SmisbenchError(f"no run {run_id} in {self.path}", "list runs with `smisbench runs`")
        return row

    def resolve_run(self, ref: str | int) -> int:
        """A run id from a reference: its number, a uuid prefix, ``latest`` or ``latest:SPEC``."""
        text = str(ref).strip()
        if text.isdigit():  # a run number, unless no such run exists and it is an all-digit uuid prefix
            row = self.conn.execute("SELECT run_id FROM runs WHERE run_id = ?", (int(text),)).fetchone()
            if row is not None:
                return int(row["run_id"])
        if text == "latest" or text.startswith("latest:"):
            spec = text.partition(":")[2]
            sql = "SELECT MAX(run_id) FROM runs" + (" WHERE spec_name = ?" if spec else "")
            found = self.conn.execute(sql, (spec,) if spec else ()).fetchone()[0]
            if found is None:
                raise SmisbenchError(f"no runs{' of spec ' + spec if spec else ''} in {self.path}",
                                     "run a spec first with `smisbench run SPEC`")
            return int(found)
        if len(text) >= 4:
            rows = self.conn.execute("SELECT run_id FROM runs WHERE uuid LIKE ?", (text.lower() + "%",)).fetchall()
            if len(rows) == 1:
                return int(rows[0]["run_id"])
            if len(rows) > 1:
                raise SmisbenchError(f"run reference {text!r} matches {len(rows)} runs", "give more characters")
        raise SmisbenchError(f"no run {text} in {self.path}",
                             "give a run number or uuid prefix from `smisbench runs`, or `latest`")

    # ----- cells -----
    def finished_cell(self, cell_key: str) -> int | None:
        """The newest finished cell with this key (any run), or None."""
        row = self.conn.execute(
            "SELECT cell_id FROM cells WHERE cell_key = ? AND status = 'finished' ORDER BY cell_id DESC LIMIT 1",
            (cell_key,),
        ).fetchone()
        return None if row is None else int(row["cell_id"])

    def link_cell(self, run_id: int, cell_id: int, link: CellLink, reused: bool) -> None:
        with self.transaction() as conn:
            self._link(conn, run_id, cell_id, link, reused)

    @staticmethod
    def _link(conn: sqlite3.Connection, run_id: int, cell_id: int, link: CellLink, reused: bool) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO run_cells (run_id, cell_id, cell_index, model_id, model_label, dataset_id,"
            " dataset_label, reused) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (run_id, cell_id, link.cell_index, link.model_id, link.model_label, link.dataset_id,
             link.dataset_label, int(reused)),
        )

    def record_cell(self, run_id: int, link: CellLink, record: CellRecord, values: dict[str, float],
                    provenance: dict[str, Any], artifacts: list[ArtifactRecord] = ()) -> int:
        """Write a cell, its numbers, provenance and artifacts in one transaction; returns the cell id."""
        with self.transaction() as conn:
            cur = conn.execute(
                "INSERT INTO cells (cell_key, run_id, status, model_name, model_config, checkpoint, checkpoint_sha256,"
                " dataset, split, dataset_options, metrics, protocol, weights_sha256, seed, spec_sha256, git_commit,"
                " versions, device, device_name, dtype, threads, wall_time_s, started_at, finished_at, notes, error)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (record.cell_key, run_id, record.status, record.model_name, _json(record.model_config),
                 record.checkpoint, record.checkpoint_sha256, record.dataset, record.split,
                 _json(record.dataset_options), _json(record.metrics), _json(record.protocol),
                 _json(record.weights_sha256), record.seed, record.spec_sha256, record.git_commit,
                 _json(record.versions), record.device, record.device_name, record.dtype, record.threads,
                 record.wall_time_s, record.started_at, record.finished_at, _json(record.notes), record.error),
            )
            cell_id = int(cur.lastrowid)
            for metric, value in values.items():
                number = float(value)
                conn.execute("INSERT INTO results (cell_id, metric, value) VALUES (?, ?, ?)",
                             (cell_id, metric, number if math.isfinite(number) else None))
            for key, value in provenance.items():
                conn.execute("INSERT INTO provenance (cell_id, key, value) VALUES (?, ?, ?)",
                             (cell_id, key, _json(value)))
            for art in artifacts:
                conn.execute(
                    "INSERT INTO artifacts (run_id, cell_id, kind, path, sha256, meta, created_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (run_id, cell_id, art.kind, art.path, art.sha256, _json(art.meta), now()),
                )
            self._link(conn, run_id, cell_id, link, reused=False)
            conn.execute("DELETE FROM leases WHERE cell_key = ? AND run_id = ?", (record.cell_key, run_id))
        return cell_id

    def cell(self, cell_id: int) -> dict[str, Any]:
        """A cell's row with JSON columns decoded, plus its provenance and values."""
        row = self.conn.execute("SELECT * FROM cells WHERE cell_id = ?", (cell_id,)).fetchone()
        if row is None:
            raise SmisbenchError(f"no cell {cell_id} in {self.path}")
        out = dict(row)
        for key in ("model_config", "dataset_options", "metrics", "protocol", "weights_sha256", "versions", "notes"):
            out[key] = json.loads(out[key])
        out["provenance"] = {r["key"]: json.loads(r["value"]) for r in self.conn.execute(
            "SELECT key, value FROM provenance WHERE cell_id = ? ORDER BY key", (cell_id,))}
        out["values"] = self.values(cell_id)
        return out

    def values(self, cell_id: int) -> dict[str, float]:
        return {r["metric"]: (math.nan if r["value"] is None else r["value"]) for r in self.conn.execute(
            "SELECT metric, value FROM results WHERE cell_id = ? ORDER BY metric", (cell_id,))}

    def artifacts(self, cell_id: int, kind: str | None = None) -> list[ArtifactRecord]:
        sql = "SELECT * FROM artifacts WHERE cell_id = ?" + (" AND kind = ?" if kind else "") + " ORDER BY artifact_id"
        rows = self.conn.execute(sql, (cell_id, kind) if kind else (cell_id,)).fetchall()
        return [ArtifactRecord(r["kind"], r["path"], r["sha256"], json.loads(r["meta"])) for r in rows]

    # ----- queries for reports and compare -----
    def run_results(self, run_id: int) -> list[dict[str, Any]]:
        """Every number a run holds (computed or reused), one dict per value."""
        return self._results("rc.run_id = ?", (run_id,))

    def table_results(self, table: str) -> list[dict[str, Any]]:
        """Numbers of every run into ``table``; the newest run's value wins per model, dataset and metric."""
        rows = self._results("ru.table_name = ?", (table,))
        latest: dict[tuple[str, str, str], dict[str, Any]] = {}
        for row in rows:  # ordered oldest first
            latest[(row["model_label"], row["dataset_id"], row["metric"])] = row
        return list(latest.values())

    def table_seed_results(self, table: str) -> dict[tuple[str, str, str], list[dict[str, Any]]]:
        """Per model label, dataset and metric, the rows of the newest run into ``table`` that holds it, one per
        seed (a spec run with ``seeds = K`` gives K; the newest run wins as in :meth:`table_results`)."""
        newest: dict[tuple[str, str, str], dict[int, dict[str, Any]]] = {}
        for row in self._results("ru.table_name = ?", (table,)):  # ordered oldest first
            key = (row["model_label"], row["dataset_id"], row["metric"])
            if key in newest and next(iter(newest[key].values()))["run_id"] != row["run_id"]:
                del newest[key]  # a newer run: its seeds replace the older run's
            newest.setdefault(key, {})[row["seed"]] = row
        return {key: sorted(rows.values(), key=lambda r: r["seed"]) for key, rows in newest.items()}

    def table_cells(self, table: str) -> list[dict[str, Any]]:
        """Every cell any run into ``table`` asked for (finished or failed): labels, status and requested metrics."""
        rows = self.conn.execute(
            "SELECT rc.run_id, rc.cell_id, rc.cell_index, rc.model_id, rc.model_label, rc.dataset_id,"
            " rc.dataset_label, c.status, c.seed, c.metrics, c.error FROM run_cells rc JOIN runs ru ON ru.run_id = rc.run_id"
            " JOIN cells c ON c.cell_id = rc.cell_id WHERE ru.table_name = ? ORDER BY rc.run_id, rc.cell_index",
            (table,),
        ).fetchall()
        return [{**dict(r), "metrics": json.loads(r["metrics"])} for r in rows]

    def tables(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT table_name FROM runs ORDER BY table_name")]

    def latest_run_of_table(self, table: str) -> sqlite3.Row | None:
        return self.conn.execute("SELECT * FROM runs WHERE table_name = ? ORDER BY run_id DESC LIMIT 1",
                                 (table,)).fetchone()

    def _results(self, where: str, params: tuple) -> list[dict[str, Any]]:
        rows = self.conn.execute(
            "SELECT rc.run_id, rc.cell_id, rc.cell_index, rc.model_id, rc.model_label, rc.dataset_id,"
            " rc.dataset_label, rc.reused, c.model_name, c.dataset, c.split, c.device, c.device_name, c.dtype,"
            " c.threads, c.git_commit, c.finished_at, c.wall_time_s, c.seed, r.metric, r.value"
            " FROM run_cells rc JOIN runs ru ON ru.run_id = rc.run_id JOIN cells c ON c.cell_id = rc.cell_id"
            f" JOIN results r ON r.cell_id = c.cell_id WHERE c.status = 'finished' AND {where}"
            " ORDER BY rc.run_id, c.finished_at, c.cell_id, r.metric",
            params,
        ).fetchall()
        out = []
        for row in rows:
            item = dict(row)
            item["value"] = math.nan if item["value"] is None else float(item["value"])
            out.append(item)
        return out

    def integrity_ok(self) -> bool:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
