"""The results store's file: its schema, and opening it safely for writing or strictly read-only.

A writer creates the file (or fills an empty one) and upgrades an older schema in place; a
reader never creates, fills, upgrades or otherwise changes anything, and refuses a missing,
empty, non-SQLite or foreign file with the fix instead of a traceback. Writers switch the file
to write-ahead logging while they work and back to a single file when the last one closes,
so a reader of an idle store does not leave ``-wal``/``-shm`` files beside it.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

from smisbench.errors import SmisbenchError

SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)  # version 1 lacks the process columns and the lease table
SQLITE_HEADER = b"SQLite format 3\x00"

_RUN_PROCESS_COLUMNS = {  # added in version 2: who runs a run, and when it last showed it is alive
    "pid": "INTEGER",
    "hostname": "TEXT",
    "process_start": "TEXT",
    "heartbeat_at": "TEXT",
    "heartbeat_s": "REAL",
}

_LEASES = """
CREATE TABLE IF NOT EXISTS leases (
    cell_key TEXT PRIMARY KEY,
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    claimed_at TEXT NOT NULL,
    heartbeat_at TEXT NOT NULL
)"""

_SCHEMA = """
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE runs (
    run_id INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid TEXT NOT NULL UNIQUE,
    spec_name TEXT NOT NULL,
    table_name TEXT NOT NULL,
    spec_sha256 TEXT NOT NULL,
    spec_source TEXT,
    spec_text TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('running', 'finished', 'interrupted', 'failed')),
    started_at TEXT NOT NULL,
    finished_at TEXT,
    git_commit TEXT,
    environment TEXT NOT NULL,
    command TEXT,
    pid INTEGER,
    hostname TEXT,
    process_start TEXT,
    heartbeat_at TEXT,
    heartbeat_s REAL
);
CREATE TABLE cells (
    cell_id INTEGER PRIMARY KEY AUTOINCREMENT,
    cell_key TEXT NOT NULL,
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    status TEXT NOT NULL CHECK (status IN ('finished', 'failed')),
    model_name TEXT NOT NULL,
    model_config TEXT NOT NULL,
    checkpoint TEXT,
    checkpoint_sha256 TEXT,
    dataset TEXT NOT NULL,
    split TEXT NOT NULL,
    dataset_options TEXT NOT NULL,
    metrics TEXT NOT NULL,
    protocol TEXT NOT NULL,
    weights_sha256 TEXT NOT NULL,
    seed INTEGER NOT NULL,
    spec_sha256 TEXT NOT NULL,
    git_commit TEXT,
    versions TEXT NOT NULL,
    device TEXT NOT NULL,
    device_name TEXT,
    dtype TEXT NOT NULL,
    threads INTEGER,
    wall_time_s REAL,
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    notes TEXT NOT NULL,
    error TEXT
);
CREATE INDEX cells_by_key ON cells (cell_key, status);
CREATE TABLE run_cells (
    run_id INTEGER NOT NULL REFERENCES runs(run_id),
    cell_id INTEGER NOT NULL REFERENCES cells(cell_id),
    cell_index INTEGER NOT NULL,
    model_id TEXT NOT NULL,
    model_label TEXT NOT NULL,
    dataset_id TEXT NOT NULL,
    dataset_label TEXT NOT NULL,
    reused INTEGER NOT NULL,
    PRIMARY KEY (run_id, cell_id)
);
CREATE TABLE results (
    cell_id INTEGER NOT NULL REFERENCES cells(cell_id),
    metric TEXT NOT NULL,
    value REAL,
    PRIMARY KEY (cell_id, metric)
);
CREATE TABLE provenance (
    cell_id INTEGER NOT NULL REFERENCES cells(cell_id),
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (cell_id, key)
);
CREATE TABLE artifacts (
    artifact_id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id INTEGER REFERENCES runs(run_id),
    cell_id INTEGER REFERENCES cells(cell_id),
    kind TEXT NOT NULL,
    path TEXT NOT NULL,
    sha256 TEXT NOT NULL,
    meta TEXT NOT NULL,
    created_at TEXT NOT NULL
);
""" + _LEASES

_PASS_STORE = "pass the .sqlite file that `smisbench run` wrote (--store FILE or $SMISBENCH_STORE)"


def check_file(path: Path, *, writable: bool) -> bool:
    """Refuse what cannot be a store before SQLite touches it; True when the file exists and is not empty."""
    if path.is_dir():
        raise SmisbenchError(f"{path} is a folder, not a results store file",
                             f"pass the store file itself, e.g. --store {path / 'smisbench.sqlite'}")
    if not path.exists():
        if writable:
            return False
        raise SmisbenchError(f"no results store {path}",
                             "run a spec into it first (`smisbench run SPEC --store FILE`), or " + _PASS_STORE)
    try:
        with path.open("rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
    except OSError as err:
        raise SmisbenchError(f"cannot read results store {path}: {err.strerror}",
                             "check the file's permissions, or " + _PASS_STORE) from None
    if not head:
        if writable:
            return False  # SQLite fills an empty file with a fresh database
        raise SmisbenchError(f"{path} is an empty file (0 bytes), not a results store",
                             f"{_PASS_STORE}; an empty file is only filled by `smisbench run`")
    if head != SQLITE_HEADER:
        raise SmisbenchError(f"{path} is not a SQLite file (it does not start with the SQLite header)",
                             _PASS_STORE + ("; smisbench will not overwrite it" if writable else ""))
    return True


def open_error(path: Path, err: sqlite3.Error) -> SmisbenchError:
    """The error and fix for SQLite refusing a store file."""
    text = str(err)
    if "locked" in text:
        return SmisbenchError(f"store {path} is locked by another process ({text})",
                              "wait for the other smisbench command to finish, or pass another --store file")
    if "readonly" in text or "unable to open" in text:
        return SmisbenchError(f"cannot open store {path} for writing ({text})",
                              "check the permissions of the file and its folder, or pass another --store file")
    return SmisbenchError(f"store {path} cannot be read as SQLite ({text})",
                          "the file is damaged: restore it from a backup, or pass another --store file")


def connect(path: Path, *, readonly: bool, timeout_s: float) -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit) with a busy timeout."""
    if readonly:
        conn = sqlite3.connect(path.resolve().as_uri() + "?mode=ro", uri=True, timeout=timeout_s,
                               isolation_level=None, check_same_thread=False)
    else:
        conn = sqlite3.connect(str(path), timeout=timeout_s, isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute(f"PRAGMA busy_timeout = {int(timeout_s * 1000)}")
    if readonly:
        conn.execute("PRAGMA query_only = ON")
    else:
        conn.execute("PRAGMA foreign_keys = ON")
    return conn


def use_wal(conn: sqlite3.Connection, path: Path, timeout_s: float) -> None:
    """Write-ahead logging for concurrent writers; switching needs a moment alone with the file, so retry."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            break
        except sqlite3.OperationalError as err:
            if "locked" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)
    if str(mode).lower() != "wal":
        raise SmisbenchError(f"store {path} cannot use write-ahead logging (journal mode {mode})",
                             "put the store on a local disk (not a network file system)")
    conn.execute("PRAGMA synchronous = NORMAL")


def leave_wal(conn: sqlite3.Connection) -> None:
    """Fold the log back into the one file when this is the last connection (else the last one does it)."""
    try:
        conn.execute("PRAGMA busy_timeout = 0")
        conn.execute("PRAGMA journal_mode = DELETE")
    except sqlite3.Error:
        pass  # another connection is open (or this one is closed already)


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _version(conn: sqlite3.Connection, path: Path) -> int:
    """The schema version of a smisbench store; refuses another program's database."""
    foreign = SmisbenchError(f"{path} is a SQLite database but not a smisbench results store (no schema version)",
                             _PASS_STORE)
    if "meta" not in _tables(conn):
        raise foreign
    row = conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    try:
        return int(row["value"])
    except (TypeError, ValueError):
        raise foreign from None


def _too_new(path: Path, version: int) -> SmisbenchError:
    return SmisbenchError(f"store {path} has schema version {version}; this smisbench knows versions "
                          f"{READABLE_VERSIONS[0]}-{SCHEMA_VERSION}",
                          "use the smisbench version that wrote it (or a newer one), or another --store file")


def check_readable(conn: sqlite3.Connection, path: Path) -> int:
    """The version of a store a reader can read as it is."""
    version = _version(conn, path)
    if version not in READABLE_VERSIONS:
        raise _too_new(path, version)
    return version


def check_writable(conn: sqlite3.Connection, path: Path) -> None:
    """Refuse another program's database or a newer store before a writer changes anything in it."""
    if _tables(conn) and _version(conn, path) not in READABLE_VERSIONS:
        raise _too_new(path, _version(conn, path))


def ensure_schema(conn: sqlite3.Connection, path: Path) -> None:
    """Create the schema in a fresh file or upgrade an older one; call inside a write transaction."""
    if not _tables(conn):
        for statement in _SCHEMA.split(";"):  # executescript() would commit mid-transaction
            if statement.strip():
                conn.execute(statement)
        conn.execute("INSERT INTO meta (key, value) VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        return
    version = _version(conn, path)
    if version == SCHEMA_VERSION:
        return
    if version not in READABLE_VERSIONS:
        raise _too_new(path, version)
    have = {r["name"] for r in conn.execute("PRAGMA table_info(runs)")}
    for name, kind in _RUN_PROCESS_COLUMNS.items():
        if name not in have:
            conn.execute(f"ALTER TABLE runs ADD COLUMN {name} {kind}")
    conn.execute(_LEASES)
    conn.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))


def memory_store() -> sqlite3.Connection:
    """An empty store in memory: what a dry run plans against when the store file does not exist yet."""
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    conn.row_factory = sqlite3.Row
    conn.execute("BEGIN")
    ensure_schema(conn, Path(":memory:"))
    conn.execute("COMMIT")
    return conn
