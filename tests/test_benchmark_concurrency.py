"""`smisbench run` as separate processes: N of them share one spec's cells, and a kill -9 is survived.

The runs are real subprocesses of the command line (``tests/run_cli.py``: the real CLI with
provenance that does not import torch; the slow tests use ``python -m smisbench`` itself) with
the fake executor ``benchmark_fakes:recorded``, which logs every cell it computes.
"""

from __future__ import annotations

import collections
import io
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

import benchmark_fakes as fakes
from smisbench.benchmark.runner import run_spec
from smisbench.benchmark.spec import parse_spec
from smisbench.benchmark.store import Store
from smisbench.cli import main

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
# 12 cells: 6 models x 2 datasets
SPEC_TEXT = fakes.SMALL_SPEC.replace('name = "groupnet"', 'name = "groupnet"\n[[models]]\nname = "mulnet"\n'
                                     '[[models]]\nname = "groupenc"\n[[models]]\nname = "groupdec"')
CELLS = 12
REAL_CLI = [sys.executable, "-m", "smisbench"]
FAKE_ENV_CLI = [sys.executable, str(TESTS / "run_cli.py")]


def env(**fake) -> dict[str, str]:
    out = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(REPO), str(TESTS)]))
    out.update({f"SMISBENCH_FAKE_{k.upper()}": str(v) for k, v in fake.items()})
    return out


def start(cli: list[str], spec: Path, store: Path, **fake) -> subprocess.Popen:
    return subprocess.Popen([*cli, "run", str(spec), "--store", str(store), "--executor", "benchmark_fakes:recorded",
                             "--no-progress"], env=env(**fake), cwd=str(spec.parent),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(proc: subprocess.Popen, timeout: float = 600) -> str:
    out, _ = proc.communicate(timeout=timeout)
    assert proc.returncode == 0, out
    return out


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(SPEC_TEXT)
    return path


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> dict:
    """The numbers of one uninterrupted single-process run."""
    with Store(tmp_path_factory.mktemp("ref") / "ref.sqlite") as store:
        summary = run_spec(parse_spec(SPEC_TEXT, "c.toml"), store, fakes.plain, progress=False, stream=io.StringIO(),
                           environment=fakes.fake_environment)
        return numbers(store, summary.run_id)


def numbers(store: Store, run_id: int) -> dict[tuple[str, str, str], float]:
    return {(r["model_id"], r["dataset_id"], r["metric"]): r["value"] for r in store.run_results(run_id)}


def logged(log: Path) -> list[tuple[str, int]]:
    if not log.is_file():
        return []
    return [(key, int(pid)) for key, pid in (line.split() for line in log.read_text().splitlines())]


def recorded_status(store: Path) -> list[str]:
    """The statuses as written in the file (not as shown), read without the Store class."""
    conn = sqlite3.connect(store.resolve().as_uri() + "?mode=ro", uri=True)
    try:
        return [r[0] for r in conn.execute("SELECT status FROM runs ORDER BY run_id")]
    finally:
        conn.close()


def stored_computed(store: Path) -> int:
    """How many cells the store's runs have computed so far (0 before the file exists)."""
    if not store.is_file():
        return 0
    with Store(store, readonly=True) as s:
        runs = s.runs()
    return sum(r.computed for r in runs)


def wait_for(what, proc: subprocess.Popen, timeout: float = 300) -> None:
    """Poll until ``what()`` holds (the child must still be running)."""
    deadline = time.monotonic() + timeout
    while not what():
        assert proc.poll() is None, proc.communicate()[0]
        assert time.monotonic() < deadline, "the child never got there"
        time.sleep(0.02)


def has_run(store: Path) -> bool:
    try:
        return len(recorded_status(store)) > 0
    except sqlite3.Error:  # not created yet
        return False


def check_concurrent(tmp_path: Path, spec: Path, reference: dict, n: int, cli: list[str]) -> None:
    store, log, barrier = tmp_path / "shared.sqlite", tmp_path / "computed.log", tmp_path / "barrier"
    barrier.mkdir()
    procs = [start(cli, spec, store, log=log, barrier=f"{barrier}:{n}") for _ in range(n)]
    for proc in procs:
        finish(proc)
    computed = logged(log)
    counts = collections.Counter(key for key, _ in computed)
    assert len(counts) == CELLS and set(counts.values()) == {1}, counts  # every cell computed exactly once
    assert {pid for _, pid in computed} == {p.pid for p in procs}  # and the work was shared by all n
    with Store(store, readonly=True) as s:
        assert s.integrity_ok()
        runs = s.runs()
        assert [r.status for r in runs] == ["finished"] * n
        assert all(r.cells == CELLS and r.failed == 0 for r in runs)
        assert sum(r.computed for r in runs) == CELLS
        for r in runs:  # each run's record is complete, with the single-process numbers
            assert numbers(s, r.run_id) == reference
        assert s.conn.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0


@pytest.mark.parametrize("n", [2, 4])
def test_concurrent_runs_compute_each_cell_once(tmp_path: Path, spec: Path, reference: dict, n: int):
    check_concurrent(tmp_path, spec, reference, n, FAKE_ENV_CLI)


@pytest.mark.slow
def test_four_concurrent_real_cli_runs(tmp_path: Path, spec: Path, reference: dict):
    check_concurrent(tmp_path, spec, reference, 4, REAL_CLI)


def test_killed_run_is_shown_interrupted_and_compare_refuses_it(tmp_path: Path, spec: Path, reference: dict,
                                                                 capsys, monkeypatch):
    store, log = tmp_path / "s.sqlite", tmp_path / "computed.log"
    proc = start(FAKE_ENV_CLI, spec, store, log=log, hang_after=2)
    # the executor logs a cell before the runner commits it: wait for both commits, not only the log lines
    wait_for(lambda: len(logged(log)) == 2 and stored_computed(store) == 2, proc)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert main(["runs", "--store", str(store)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[1].split()[4] == "interrupted" and listing[1].split()[7] == "2"
    assert recorded_status(store) == ["running"]  # shown so; `runs` only reads

    monkeypatch.setattr("smisbench.provenance.environment", fakes.fake_environment)
    assert main(["run", str(spec), "--store", str(store), "--executor", "benchmark_fakes:plain",
                 "--no-progress"]) == 0
    assert "10 computed, 2 reused" in capsys.readouterr().out
    assert recorded_status(store) == ["interrupted", "finished"]  # the next writer marked it
    with Store(store, readonly=True) as s:
        assert numbers(s, 2) == reference

    for argv in (["compare", "1", "2"], ["compare", "2", "1"], ["baseline", "1", "--out", str(tmp_path / "b.json")]):
        assert main([*argv, "--store", str(store)]) == 2
        out, err = capsys.readouterr()
        lines = err.strip().splitlines()
        assert len(lines) == 2 and "error: run 1 is interrupted (2 finished cell(s))" in lines[0], err
        assert lines[1].strip().startswith("fix: ") and "--allow-incomplete" in lines[1] and "Traceback" not in err
    assert not (tmp_path / "b.json").exists()
    assert main(["compare", "1", "2", "--store", str(store), "--allow-incomplete"]) == 0
    out = capsys.readouterr().out
    assert "warning: run 1 is INTERRUPTED, incomplete: 2 finished cell(s)" in out
    assert "A = run 1 (INTERRUPTED, incomplete: 2 finished cell(s))" in out


def kill_at_random_and_rerun(tmp_path: Path, spec: Path, reference: dict, rng: random.Random,
                             cli: list[str]) -> None:
    """kill -9 a run at a random moment after it started, rerun it, and check what the store says."""
    store, log = tmp_path / "s.sqlite", tmp_path / "computed.log"
    delay = 0.05
    proc = start(cli, spec, store, log=log, delay=delay)
    wait_for(lambda: has_run(store), proc)
    time.sleep(rng.uniform(0, CELLS * delay * 1.2))
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    before = len(logged(log))
    finish(start(cli, spec, store, log=log))
    with Store(store, readonly=True) as s:
        first, second = s.runs()
        assert first.status in ("interrupted", "finished") and first.recorded_status == first.status
        if first.status == "finished":  # the kill came after the run had ended
            assert first.cells == CELLS
        assert second.status == "finished" and second.cells == CELLS and second.failed == 0
        assert second.reused == first.computed and second.computed == CELLS - first.computed
        assert numbers(s, second.run_id) == reference
        assert s.integrity_ok() and s.conn.execute("SELECT COUNT(*) FROM leases").fetchone()[0] == 0
    assert len(logged(log)) - before == CELLS - first.computed  # the rerun computed only what was missing


def test_kill_at_a_random_point_then_rerun(tmp_path: Path, spec: Path, reference: dict):
    kill_at_random_and_rerun(tmp_path, spec, reference, random.Random(), FAKE_ENV_CLI)


@pytest.mark.slow
@pytest.mark.parametrize("i", range(5))
def test_kill_at_random_points_then_rerun_real_cli(tmp_path: Path, spec: Path, reference: dict, i: int):
    kill_at_random_and_rerun(tmp_path, spec, reference, random.Random(), REAL_CLI if i % 2 else FAKE_ENV_CLI)
