"""Regression tracking: direction-aware verdicts, tolerances, baselines, and the CLI's exit status."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import benchmark_fakes as fakes
from smisbench.benchmark.catalog import catalog
from smisbench.benchmark.compare import (Tolerance, compare_values, load_baseline, parse_tolerance, save_baseline,
                                         values_of_run, verdict)
from smisbench.benchmark.runner import run_spec
from smisbench.benchmark.spec import parse_spec
from smisbench.benchmark.store import CellLink, CellRecord, Store
from smisbench.cli import main
from smisbench.errors import SmisbenchError


def run_with(store: Store, executor) -> int:
    return run_spec(parse_spec(fakes.SMALL_SPEC), store, executor, progress=False, stream=io.StringIO(),
                    environment=fakes.fake_environment).run_id


def tweak(changes: dict[tuple[str, str], float]):
    """An executor like the fake one, with some values of (model id, value key) multiplied."""
    def execute(cell, ctx):
        outcome = fakes.fake_outcome(cell)
        for (model, key), factor in changes.items():
            if cell.model.id == model and key in outcome.values:
                outcome.values[key] *= factor
        return outcome
    return execute


def two_runs(tmp_path: Path, changes: dict) -> tuple[Path, int, int]:
    """Run A with the fake numbers; run B (same cells) with ``changes``, computed in another store and copied in
    as a second run, since one store never recomputes a finished cell."""
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        a = run_with(s, fakes.plain)
    other = tmp_path / "other.sqlite"
    with Store(other) as s:
        run_with(s, tweak(changes))
    with Store(path) as s:
        b = s.start_run("small", "small", "h", "", fakes.fake_environment("cpu"))
        with Store(other) as o:
            for row in o.runs():
                for cell_id in {r["cell_id"] for r in o.run_results(row.run_id)}:
                    cell = o.cell(cell_id)
                    link = o.conn.execute("SELECT * FROM run_cells WHERE cell_id = ?", (cell_id,)).fetchone()
                    fields = {k: cell[k] for k in CellRecord.__dataclass_fields__}
                    s.record_cell(b, CellLink(link["cell_index"], link["model_id"], link["model_label"],
                                              link["dataset_id"], link["dataset_label"]),
                                  CellRecord(**fields), cell["values"], {})
        s.finish_run(b, "finished")
    return path, a, b


def test_verdicts_follow_direction_and_tolerance():
    fid, mcsd, params = catalog().value("fid"), catalog().value("mcsd"), catalog().value("params")
    assert verdict(fid, 10.0, 10.1, Tolerance(abs=0.25))[0] == "same"
    assert verdict(fid, 10.0, 11.0, Tolerance(abs=0.25))[0] == "worse"
    assert verdict(fid, 10.0, 9.0, Tolerance(abs=0.25))[0] == "better"
    assert verdict(mcsd, 0.02, 0.01, Tolerance(abs=0.001))[0] == "worse"
    assert verdict(mcsd, 0.02, 0.03, Tolerance(abs=0.001))[0] == "better"
    assert verdict(params, 1e6, 1e6 + 1, Tolerance())[0] == "changed"
    assert verdict(fid, 10.0, None, Tolerance())[0] == "missing"
    assert verdict(fid, None, 3.0, Tolerance())[0] == "new"
    assert verdict(fid, 100.0, 104.0, Tolerance(rel=0.05))[0] == "same"
    assert verdict(fid, 100.0, 106.0, Tolerance(rel=0.05))[0] == "worse"


def test_parse_tolerance():
    assert parse_tolerance("fid=0.5") == ("fid", Tolerance(abs=0.5))
    assert parse_tolerance("fps = 10%") == ("fps", Tolerance(rel=0.1))
    for bad in ("fid", "fid=x", "=1", "fid=-1"):
        with pytest.raises(SmisbenchError):
            parse_tolerance(bad)


def test_identical_runs_pass(tmp_path: Path, capsys):
    path, a, b = two_runs(tmp_path, {})
    assert main(["compare", str(a), str(b), "--store", str(path)]) == 0
    out = capsys.readouterr().out
    assert "24 values: 24 same -> no regression" in out


def test_planted_regression_is_flagged(tmp_path: Path, capsys):
    path, a, b = two_runs(tmp_path, {("vspade", "fid"): 1.2, ("groupdnet", "mocd"): 0.5})
    assert main(["compare", str(a), str(b), "--store", str(path)]) == 1
    out = capsys.readouterr().out
    worse = [line for line in out.splitlines() if "WORSE" in line]
    better = [line for line in out.splitlines() if line.rstrip().endswith("better")]
    assert len(worse) == 2 and all("VSPADE" in line and "fid" in line for line in worse)
    assert len(better) == 2 and all("GroupDNet" in line and "mocd" in line for line in better)
    assert "2 regression(s)" in out
    # a tolerance wide enough turns the regression into "same"
    assert main(["compare", str(a), str(b), "--store", str(path), "--tolerance", "fid=50%"]) == 0


def test_improvement_alone_passes(tmp_path: Path):
    path, a, b = two_runs(tmp_path, {("groupdnet", "mcsd"): 2.0})
    assert main(["compare", str(a), str(b), "--store", str(path)]) == 0


def test_missing_value_is_a_regression_unless_allowed(tmp_path: Path, capsys):
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        a = run_with(s, fakes.plain)
        b = s.start_run("small", "small", "h", "", fakes.fake_environment("cpu"))
        s.finish_run(b, "finished")
    with Store(path) as s:
        a_values = values_of_run(s, a)
    deltas = compare_values(a_values, {})
    assert {d.verdict for d in deltas} == {"missing"} and all(d.regression for d in deltas)
    assert main(["compare", str(a), str(b), "--store", str(path), "--allow-missing"]) == 0
    assert main(["compare", str(a), str(b), "--store", str(path)]) == 1


def test_baseline_round_trip_and_ci_use(tmp_path: Path, capsys):
    path, a, b = two_runs(tmp_path, {("groupnet", "fid"): 1.5})
    baseline = tmp_path / "baseline.json"
    assert main(["baseline", str(a), "--out", str(baseline), "--store", str(path)]) == 0
    doc = json.loads(baseline.read_text())
    assert doc["format"] == "smisbench-baseline" and len(doc["values"]) == 24
    title, values = load_baseline(baseline)
    with Store(path) as s:
        assert values == values_of_run(s, a)
        assert save_baseline(s, a, tmp_path / "again.json") == 24
    assert main(["compare", "--baseline", str(baseline), str(a), "--store", str(path)]) == 0
    assert main(["compare", "--baseline", str(baseline), "latest", "--store", str(path)]) == 1
    capsys.readouterr()


def test_bad_baseline_and_arguments(tmp_path: Path, capsys):
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        run_with(s, fakes.plain)
    (tmp_path / "x.json").write_text("{}")
    assert main(["compare", "--baseline", str(tmp_path / "x.json"), "1", "--store", str(path)]) == 2
    assert main(["compare", "1", "--store", str(path)]) == 2
    assert main(["compare", "1", "7", "--store", str(path)]) == 2
    err = capsys.readouterr().err
    assert "not a smisbench baseline" in err and "two runs" in err and "no run 7 in" in err
