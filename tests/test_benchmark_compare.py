"""Regression tracking: direction-aware verdicts, tolerances, baselines, and the CLI's exit status."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

import benchmark_fakes as fakes
from smisbench.benchmark.catalog import catalog
from smisbench.benchmark.compare import (Tolerance, compare_values, interval_verdict, load_baseline, parse_tolerance,
                                         save_baseline, values_of_run, verdict)
from smisbench.benchmark.uncertainty import summarise
from smisbench.benchmark.runner import run_spec
from smisbench.benchmark.spec import parse_spec
from smisbench.benchmark.store import CellLink, CellRecord, Store
from smisbench.cli import main
from smisbench.errors import SmisbenchError


def run_with(store: Store, executor, text: str = fakes.SMALL_SPEC) -> int:
    return run_spec(parse_spec(text), store, executor, progress=False, stream=io.StringIO(),
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


def two_runs(tmp_path: Path, changes: dict, text: str = fakes.SMALL_SPEC, executor_a=fakes.plain,
             executor_b=None) -> tuple[Path, int, int]:
    """Run A with the fake numbers; run B (same cells) with ``changes``, computed in another store and copied in
    as a second run, since one store never recomputes a finished cell."""
    path = tmp_path / "s.sqlite"
    with Store(path) as s:
        a = run_with(s, executor_a, text)
    other = tmp_path / "other.sqlite"
    with Store(other) as s:
        run_with(s, executor_b or tweak(changes), text)
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


# ----------------------------------------------------------------------------- intervals over seeds
SEEDED_SPEC = fakes.SMALL_SPEC.replace("seed = 3", "seed = 3\nseeds = 3")  # seeds 3, 4, 5


def seeded(jitter: float, shift: float = 0.0):
    """An executor whose numbers are the fake ones of (model, dataset), FID moved by ``jitter`` per seed
    (seeds 3, 4, 5: -1, 0, +1 jitter) and VSPADE's FID by ``shift``; everything else the same for every seed."""
    def execute(cell, ctx):
        outcome = fakes.fake_outcome(cell)
        base = f"{cell.model.id}/{cell.dataset.id}"
        outcome.values = {k: fakes.fake_value(base, k) for k in outcome.values}
        outcome.values["fid"] += jitter * (cell.seed - 4) + (shift if cell.model.id == "vspade" else 0.0)
        return outcome
    return execute


def test_interval_verdicts():
    fid, mcsd, params = catalog().value("fid"), catalog().value("mcsd"), catalog().value("params")
    a = summarise([10.0, 10.1, 10.2])  # interval [10.0, 10.2]
    assert (a.low, a.high) == pytest.approx((10.0, 10.2))
    assert interval_verdict(fid, a, summarise([10.15])) == "same"  # B's mean inside A's interval
    assert interval_verdict(fid, a, summarise([10.3])) == "worse"  # outside on the bad side, B has one seed
    assert interval_verdict(fid, a, summarise([9.8])) == "better"
    assert interval_verdict(fid, a, summarise([10.15, 10.25, 10.35])) == "same"  # mean 10.25 outside, overlapping
    assert interval_verdict(fid, a, summarise([10.24, 10.34, 10.44])) == "worse"  # apart
    assert interval_verdict(mcsd, a, summarise([10.24, 10.34, 10.44])) == "better"  # higher is better
    assert interval_verdict(params, a, summarise([10.5])) == "changed"


def test_interval_replaces_the_tolerance_where_a_has_one():
    key = ("m", "d", "test", "fid")
    a = {key: {"value": 10.1, "model_label": "m", "seeds": {3: 10.0, 4: 10.1, 5: 10.2}}}
    b = {key: {"value": 10.34, "model_label": "m", "seeds": {3: 10.24, 4: 10.34, 5: 10.44}}}
    (delta,) = compare_values(a, b)
    assert (delta.verdict, delta.rule) == ("worse", "interval")  # 0.24 is within FID's tolerance of 0.25
    assert compare_values(a, b, intervals=False)[0].verdict == "same"
    assert compare_values(a, b, {"fid": Tolerance(abs=0.5)})[0].rule == "tolerance"  # an override wins
    one_seed = {key: {"value": 10.1, "model_label": "m", "seeds": {3: 10.1}}}
    assert compare_values(one_seed, b)[0].rule == "tolerance"  # no interval on A: the tolerance
    flat = {key: {"value": 10.1, "model_label": "m", "seeds": {3: 10.1, 4: 10.1}}}
    assert compare_values(flat, b)[0].rule == "tolerance"  # a zero-width interval says nothing of the noise
    assert compare_values(a, {})[0].verdict == "missing"


def test_cli_flags_a_regression_outside_the_interval_that_the_tolerance_allows(tmp_path: Path, capsys):
    path, a, b = two_runs(tmp_path, {}, SEEDED_SPEC, seeded(0.1), seeded(0.1, shift=0.24))
    assert main(["compare", str(a), str(b), "--store", str(path)]) == 1
    out = capsys.readouterr().out
    worse = [line for line in out.splitlines() if "WORSE" in line]  # VSPADE's FID on both datasets
    assert len(worse) == 2 and all("VSPADE" in line and "fid" in line and "95% CI [" in line for line in worse)
    assert all("± 0.1 (3 seeds)" in line for line in worse) and "2 regression(s)" in out
    assert main(["compare", str(a), str(b), "--store", str(path), "--no-intervals"]) == 0


def test_cli_passes_a_change_within_the_interval_that_the_tolerance_rejects(tmp_path: Path, capsys):
    path, a, b = two_runs(tmp_path, {}, SEEDED_SPEC, seeded(1.0), seeded(1.0, shift=0.5))
    assert main(["compare", str(a), str(b), "--store", str(path)]) == 0
    assert "no regression" in capsys.readouterr().out
    assert main(["compare", str(a), str(b), "--store", str(path), "--no-intervals"]) == 1


def test_baseline_keeps_the_seeds_and_compare_uses_its_interval(tmp_path: Path, capsys):
    path, a, b = two_runs(tmp_path, {}, SEEDED_SPEC, seeded(0.1), seeded(0.1, shift=0.24))
    baseline = tmp_path / "baseline.json"
    assert main(["baseline", str(a), "--out", str(baseline), "--store", str(path)]) == 0
    doc = json.loads(baseline.read_text())
    fid = next(v for v in doc["values"] if v["model_id"] == "vspade" and v["metric"] == "fid")
    assert [seed for seed, _ in fid["seeds"]] == [3, 4, 5] and len(doc["values"]) == 24
    _, values = load_baseline(baseline)
    with Store(path) as s:
        assert values == values_of_run(s, a)
    assert main(["compare", "--baseline", str(baseline), str(a), "--store", str(path)]) == 0
    assert main(["compare", "--baseline", str(baseline), str(b), "--store", str(path)]) == 1
    capsys.readouterr()
