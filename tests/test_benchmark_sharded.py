"""``torchrun ... smisbench run`` on CPU (gloo): the one-process numbers, one store, rank 0 alone writes.

The spec is one cell of a random-init GroupDNet on the synthetic set at 32x32 with FID, mCSD/mOCD,
LPIPS diversity (real Inception and LPIPS weights); its batches and maps do not divide evenly
by 2 or 3 ranks, so a rank with fewer items, and batches read only for their maps, are exercised.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytestmark = pytest.mark.distributed

REPO = Path(__file__).resolve().parents[1]

SPEC = """
name = "sharded"
seed = 0
device = "cpu"
metrics = ["fid", "mcsd_mocd", "lpips_diversity", "params"]

[protocol]
batch_size = 2
fid_samples = 5
diversity_maps = 5
n = 3
m = 2
grid_rows = 2

[[datasets]]
name = "synthetic"
options = { length = 6, size = 32 }

[[models]]
name = "groupdnet"
label = "GroupDNet"
"""


def _env(*paths: Path) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": os.pathsep.join(str(p) for p in (REPO, *paths))}


def torchrun(ranks: int, args: list[str], cwd: Path, *paths: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks), *args]
    return subprocess.run(command, cwd=cwd, env=_env(*paths), capture_output=True, text=True, timeout=timeout)


def run_spec(ranks: int, folder: Path) -> tuple[subprocess.CompletedProcess, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    spec, store = folder / "spec.toml", folder / "store.sqlite"
    spec.write_text(SPEC)
    args = ["-m", "smisbench", "run", str(spec), "--store", str(store), "--no-progress"]
    if ranks == 1:
        done = subprocess.run([sys.executable, *args], cwd=folder, env=_env(), capture_output=True, text=True,
                              timeout=600)
    else:
        done = torchrun(ranks, args, folder)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    return done, store


def facts(store: Path) -> dict:
    conn = sqlite3.connect(store)
    conn.row_factory = sqlite3.Row
    provenance = {r["key"]: json.loads(r["value"]) for r in conn.execute("SELECT key, value FROM provenance")}
    return {
        "values": {r["metric"]: r["value"] for r in conn.execute("SELECT metric, value FROM results")},
        "runs": conn.execute("SELECT count(*) FROM runs").fetchone()[0],
        "cells": [dict(r) for r in conn.execute("SELECT cell_key, status FROM cells")],
        "leases": conn.execute("SELECT count(*) FROM leases").fetchone()[0],
        "sharding": provenance.get("sharding"), "generator_path": provenance.get("generator_path"),
    }


@pytest.fixture(scope="module")
def reference(tmp_path_factory, provisioned_weights):
    done, store = run_spec(1, tmp_path_factory.mktemp("one"))
    found = facts(store)
    assert found["sharding"] == {"world_size": 1, "backend": None}
    assert set(found["values"]) == {"fid", "mcsd", "mocd", "lpips", "params"}
    return found


def _same_as_one_process(reference: dict, ranks: int, folder: Path) -> None:
    done, store = run_spec(ranks, folder)
    found = facts(store)
    assert found["values"] == reference["values"]  # exactly, not approximately
    assert found["runs"] == 1 and found["leases"] == 0
    assert found["cells"] == reference["cells"] and len(found["cells"]) == 1  # one cell, same key, finished
    assert found["sharding"] == {"world_size": ranks, "backend": "gloo"}
    assert found["generator_path"] == reference["generator_path"] == "inference-copy"
    assert done.stdout.count("run 1: spec sharded") == 1 and done.stdout.count("1 computed") == 1  # rank 0 speaks
    files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
    assert [f for f in files if f.startswith("store.artifacts/grids/")] and not [
        f for f in files if not f.startswith(("store.artifacts/", "store.sqlite", "spec.toml"))], files


def test_two_processes_give_exactly_the_one_process_numbers(reference, tmp_path):
    _same_as_one_process(reference, 2, tmp_path / "two")


@pytest.mark.slow
def test_three_processes_give_exactly_the_one_process_numbers(reference, tmp_path):
    _same_as_one_process(reference, 3, tmp_path / "three")


FLAKY = textwrap.dedent(
    """
    from smisbench.benchmark.runner import CellOutcome
    from smisbench.metrics import sharding


    def execute(cell, ctx):
        if sharding.world().rank == 1:
            raise RuntimeError("disk on fire")
        return CellOutcome(values={"params": 1.0})
    """
)


def test_a_cell_that_fails_on_another_rank_is_recorded_as_failed(tmp_path):
    """Rank 0's own numbers are not stored as the cell's when a rank did not get through its share."""
    (tmp_path / "flaky_exec.py").write_text(FLAKY)
    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.replace('"fid", "mcsd_mocd", "lpips_diversity", "params"', '"params"'))
    store = tmp_path / "store.sqlite"
    done = torchrun(2, ["-m", "smisbench", "run", str(spec), "--store", str(store), "--no-progress",
                        "--executor", "flaky_exec:execute"], tmp_path, tmp_path)
    assert done.returncode == 1, done.stderr[-3000:]
    assert "smisbench rank 1/2: cell 0 (GroupDNet @ synthetic/test) failed here: disk on fire" in done.stderr
    conn = sqlite3.connect(store)
    ((status, error),) = conn.execute("SELECT status, error FROM cells").fetchall()
    assert status == "failed" and "rank 1 of 2 failed on this cell: disk on fire" in error
    assert conn.execute("SELECT count(*) FROM results").fetchone()[0] == 0


HELPERS = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import torch

    from smisbench.errors import SmisbenchError
    from smisbench.metrics import sharding
    from smisbench.metrics.base import Metric
    from smisbench.metrics.registry import register_metric

    out = Path(sys.argv[1])
    with sharding.joined("cpu") as w:
        r = {"world": [w.rank, w.size, w.backend]}
        r["merged"] = list(sharding.merge_indexed({i: i * i for i in range(7) if w.owns(i)}).items())
        t = torch.tensor([w.rank + 1, 10])
        sharding.all_reduce_sum_(t)
        r["sum"] = t.tolist()
        r["max"] = sharding.all_max(float(w.rank))
        r["gathered"] = sharding.gather_objects(f"rank{w.rank}")
        r["broadcast"] = sharding.broadcast_object(f"from{w.rank}")

        def boom():
            raise SmisbenchError("only rank 0 ran this", "nothing")

        try:
            sharding.on_main(boom)
        except SmisbenchError as err:
            r["on_main_error"] = err.problem
        marker = out / "made_by_rank0"
        r["main_first"] = sharding.main_first(lambda: (marker.write_text("x") if w.is_main else None,
                                                       marker.is_file())[1])
        try:
            sharding.merge_indexed({0: w.rank})
        except SmisbenchError as err:
            r["clash"] = err.problem

        class Plain(Metric):
            name = "plain"

        register_metric("plain", Plain)
        from smisbench.metrics.evaluate import evaluate

        try:
            evaluate(None, [], None, ["plain"], progress=False)
        except SmisbenchError as err:
            r["unsharded"] = err.problem
        (out / f"rank{w.rank}.json").write_text(json.dumps(r))
    """
)


def test_the_helpers_join_two_processes(tmp_path):
    script = tmp_path / "helpers.py"
    script.write_text(HELPERS)
    done = torchrun(2, [str(script), str(tmp_path)], tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in range(2)]
    for k, r in enumerate(ranks):
        assert r["world"] == [k, 2, "gloo"]
        assert r["merged"] == [[i, i * i] for i in range(7)]  # every rank's items, in index order
        assert r["sum"] == [3, 20] and r["max"] == 1.0
        assert r["gathered"] == ["rank0", "rank1"] and r["broadcast"] == "from0"
        assert r["on_main_error"] == "only rank 0 ran this"  # rank 1 raises rank 0's error instead of waiting
        assert r["main_first"] is True  # rank 1 ran after rank 0 had made the file
        assert r["clash"].startswith("item 0 was computed by two ranks")
        assert r["unsharded"].startswith("metric 'plain' cannot be split over processes")
