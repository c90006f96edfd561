"""The command line: run (with --dry-run and resume), runs, specs, and the demo skeleton end to end."""

from __future__ import annotations

from pathlib import Path

import pytest

import benchmark_fakes as fakes
from smisbench.benchmark.store import Store
from smisbench.cli import main


@pytest.fixture
def spec_file(tmp_path: Path) -> Path:
    path = tmp_path / "small.toml"
    path.write_text(fakes.SMALL_SPEC)
    return path


def test_run_dry_run_then_run_then_resume(tmp_path: Path, spec_file: Path, capsys):
    store = tmp_path / "s.sqlite"
    common = ["--store", str(store), "--executor", "benchmark_fakes:plain", "--no-progress"]
    assert main(["run", str(spec_file), "--dry-run", *common]) == 0
    assert "0 cached, 6 to run" in capsys.readouterr().out
    assert main(["run", str(spec_file), *common]) == 0
    assert "6 computed, 0 reused, 0 failed" in capsys.readouterr().out
    assert main(["run", str(spec_file), "--dry-run", *common]) == 0
    assert "6 cached, 0 to run" in capsys.readouterr().out
    assert main(["run", str(spec_file), *common]) == 0
    assert "0 computed, 6 reused" in capsys.readouterr().out
    assert main(["runs", "--store", str(store)]) == 0
    listing = capsys.readouterr().out.splitlines()
    assert listing[0].split()[:5] == ["run", "uuid", "spec", "table", "status"]
    assert [line.split()[4] for line in listing[1:]] == ["finished", "finished"]


def test_run_with_failures_exits_1(tmp_path: Path, spec_file: Path, capsys, monkeypatch):
    monkeypatch.setattr(fakes, "broken", fakes.Counting(fail=("groupnet",)), raising=False)
    code = main(["run", str(spec_file), "--store", str(tmp_path / "s.sqlite"), "--executor", "benchmark_fakes:broken",
                 "--no-progress"])
    assert code == 1
    assert "failed: GroupNet" in capsys.readouterr().out


def test_bad_inputs_exit_2_with_the_fix(tmp_path: Path, spec_file: Path, capsys):
    bad = tmp_path / "bad.toml"
    bad.write_text(fakes.SMALL_SPEC.replace('metrics = ["fid", "mcsd_mocd", "params"]', 'metrics = ["fdi"]'))
    assert main(["run", str(bad), "--store", str(tmp_path / "s.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "metrics[0]: unknown metric 'fdi'" in err and "fix: use one of" in err
    assert main(["run", str(spec_file), "--executor", "nomodule:x", "--store", str(tmp_path / "s.sqlite")]) == 2
    assert main(["runs", "--store", str(tmp_path / "none.sqlite")]) == 2


def test_specs_lists_shipped(capsys):
    assert main(["specs"]) == 0
    out = capsys.readouterr().out
    for name in ("table1", "table2", "ablations", "demo"):
        assert name in out


def test_demo_skeleton_end_to_end(tmp_path: Path, capsys):
    """No zoo checkpoint shipped (an empty zoo folder): GroupDNet, VSPADE, GroupNet are trained now, the other
    rows are left out and say so; every table view, paper block and claim is written; a rerun resumes."""
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--executor", "benchmark_fakes:execute", "--no-provision", "--no-progress",
            "--zoo-dir", str(tmp_path / "empty-zoo"), "--skip-real-rows", "--no-figures"]
    assert main(args) == 0
    for name in ("report.md", "index.html", "demo_table1.md", "demo_table2.tex", "demo_ablations.csv",
                 "paper_table1.md", "demo.sqlite", "plots/demo_table1_mcsd_mocd.png", "plots/demo_table1_fid_fps.png",
                 "grids/demo_table1_groupdnet.png", "grids/demo_table1_vspade.png", "grids/demo_table1_groupnet.png"):
        assert (out / name).is_file(), name
    report = (out / "report.md").read_text()
    assert "| GroupDNet |" in report and "| VSPADE |" in report and "| GroupNet |" in report
    assert "Not in this run (no zoo checkpoint): GroupEnc, GroupDec, MulNet, BicycleGAN, DSCGAN." in report
    assert "GroupDNet's mOCD/mCSD is at most a third of VSPADE's" in report and "=> not measured." in report
    assert "| GroupDNet | groupdnet | fallback |" in report and "| GroupEnc | groupenc | missing |" in report
    assert "### Paper: Table 1: SMIS comparison on DeepFashion" in report
    with Store(out / "demo.sqlite") as store:
        (info,) = store.runs()
        assert info.computed == 3 and info.spec_name == "demo"
        spec_text = store.run(info.run_id)["spec_text"]
    assert "left out (no checkpoint): bicyclegan" in spec_text and "train = { steps = 60" in spec_text
    capsys.readouterr()
    assert main(args) == 0  # a rerun resumes: nothing is recomputed
    assert "0 computed, 3 reused" in capsys.readouterr().out


def test_demo_scores_shipped_zoo_checkpoints(tmp_path: Path, capsys):
    """A zoo folder with one verified checkpoint: that row is scored from its file (no training), the others fall
    back or are left out; a file whose sha256 no longer matches its manifest is not used."""
    from test_zoo_store import _ship

    zoo = tmp_path / "zoo"
    zoo.mkdir()
    _ship(zoo, "dscgan")
    _ship(zoo, "bicyclegan").write_bytes(b"tampered")
    out = tmp_path / "demo"
    args = ["demo", "--out", str(out), "--executor", "benchmark_fakes:execute", "--no-provision", "--no-progress",
            "--zoo-dir", str(zoo), "--skip-real-rows", "--no-figures"]
    assert main(args) == 0
    report = (out / "report.md").read_text()
    assert "| DSCGAN | dscgan | shipped |" in report and "| BicycleGAN | bicyclegan | missing |" in report
    assert "| DSCGAN |" in (out / "demo_table2.md").read_text()
    with Store(out / "demo.sqlite") as store:
        (info,) = store.runs()
        assert info.computed == 4
        text = store.run(info.run_id)["spec_text"]
    assert f'checkpoint = "{(zoo / "dscgan.pt").resolve()}"' in text


READ_ONLY_COMMANDS = {
    "runs": ["runs"],
    "compare": ["compare", "1", "2"],
    "report": ["report", "--out", "REPORT"],
    "baseline": ["baseline", "1", "--out", "BASELINE.json"],
}


@pytest.mark.parametrize("kind, problem", [("missing", "no results store"), ("empty", "empty file (0 bytes)"),
                                           ("not sqlite", "not a SQLite file"), ("folder", "is a folder")])
@pytest.mark.parametrize("command", sorted(READ_ONLY_COMMANDS))
def test_read_only_commands_refuse_a_bad_store_and_change_nothing(tmp_path: Path, capsys, command: str, kind: str,
                                                                  problem: str):
    from test_benchmark_store import bad_store, snapshot

    store = bad_store(tmp_path, kind)
    before = snapshot(tmp_path)
    argv = [str(tmp_path / a) if a.isupper() or a.endswith(".json") else a for a in READ_ONLY_COMMANDS[command]]
    assert main([*argv, "--store", str(store)]) == 2
    out, err = capsys.readouterr()
    lines = err.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith(f"smisbench {command}: error: ") and problem in lines[0]
    assert lines[1].strip().startswith("fix: ") and "Traceback" not in out + err
    assert snapshot(tmp_path) == before  # nothing created, filled or written


def test_read_only_commands_leave_a_store_as_it_was(tmp_path: Path, spec_file: Path, capsys):
    from test_benchmark_store import snapshot

    store = tmp_path / "data" / "s.sqlite"
    common = ["--store", str(store), "--executor", "benchmark_fakes:plain", "--no-progress"]
    assert main(["run", str(spec_file), *common]) == 0
    assert main(["run", str(spec_file), *common]) == 0
    before = snapshot(store.parent)
    assert main(["runs", "--store", str(store)]) == 0
    assert main(["compare", "1", "2", "--store", str(store)]) == 0
    assert main(["baseline", "1", "--out", str(tmp_path / "b.json"), "--store", str(store)]) == 0
    assert main(["report", "--out", str(tmp_path / "report"), "--store", str(store)]) == 0
    assert main(["run", str(spec_file), "--dry-run", *common]) == 0
    assert snapshot(store.parent) == before


def test_dry_run_does_not_create_the_store(tmp_path: Path, spec_file: Path, capsys):
    store = tmp_path / "new.sqlite"
    assert main(["run", str(spec_file), "--dry-run", "--store", str(store), "--executor", "benchmark_fakes:plain"]) == 0
    assert "0 cached, 6 to run" in capsys.readouterr().out
    assert not store.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["small.toml"]


def test_demo_retrain_rebuilds_the_zoo_and_says_so(tmp_path: Path, monkeypatch):
    """--retrain trains every zoo entry now (here a one-model zoo with tiny settings) and scores those files."""
    import dataclasses

    import smisbench.zoo.definition as definition
    from smisbench.reports.demo import run_demo

    zoo = definition.load_zoo()
    tiny = dataclasses.replace(zoo, dataset_options={"length": 8},
                               models=(dataclasses.replace(zoo.model("dscgan"), steps=2, batch_size=2),),
                               segmenter=dataclasses.replace(zoo.segmenter, steps=2))
    monkeypatch.setattr(definition, "load_zoo", lambda: tiny)
    import io

    result = run_demo(tmp_path / "demo", fakes.execute, provision=False, progress=False, stream=io.StringIO(),
                      retrain=True, zoo_dir=tmp_path / "empty", real_rows=False, figures=False)
    assert result.rows["dscgan"].source == "trained now"
    assert (tmp_path / "demo" / "zoo" / "dscgan.pt").is_file()
    assert (tmp_path / "demo" / "zoo" / "synthetic-fcn.json").is_file()
    report = (tmp_path / "demo" / "report.md").read_text()
    assert "The zoo was retrained from its manifests" in report and "| DSCGAN | dscgan | trained now |" in report
    assert "the segmenter is the zoo's" in report


def test_run_with_seeds_then_report_mean_and_interval(tmp_path: Path, spec_file: Path, capsys):
    """`run --seeds 3`: 3 cells per model and dataset (the first the single-seed cell, reused), reported as mean ± std."""
    import pandas as pd

    store = tmp_path / "s.sqlite"
    common = ["--store", str(store), "--executor", "benchmark_fakes:plain", "--no-progress"]
    assert main(["run", str(spec_file), *common]) == 0
    capsys.readouterr()
    assert main(["run", str(spec_file), "--seeds", "3", "--dry-run", *common]) == 0
    plan = capsys.readouterr().out
    assert "6 cached, 12 to run" in plan and plan.splitlines()[1].split()[:4] == ["#", "model", "dataset", "seed"]
    assert main(["run", str(spec_file), "--seeds", "3", *common]) == 0
    assert "12 computed, 6 reused" in capsys.readouterr().out
    with Store(store, readonly=True) as s:
        seeds = sorted(row[0] for row in s.conn.execute("SELECT seed FROM cells WHERE run_id = 2"))
    assert seeds == [4] * 6 + [5] * 6  # the spec's seed 3 cells came from run 1
    assert main(["run", str(spec_file), "--seeds", "0", *common]) == 2
    assert "fix: give a count (--seeds 3)" in capsys.readouterr().err
    out = tmp_path / "report"
    assert main(["report", "--store", str(store), "--out", str(out), "--table", "small"]) == 0
    csv = pd.read_csv(out / "small.csv")
    assert (csv["seeds"] == 3).all() and (csv["ci_low"] <= csv["ours"]).all() and (csv["ours"] <= csv["ci_high"]).all()
    md = (out / "small.md").read_text()
    assert " ± " in md and "an interval over seeds (the codes drawn), not over images" in md
