"""The leaderboard: users' rows beside the paper's and the suite's, each marked by where it comes from,
with protocol differences named; ``compare`` and ``report`` treat one-cell user runs like any other."""

from __future__ import annotations

import io
from pathlib import Path

import pandas as pd
import pytest

import benchmark_fakes as fakes
from smisbench.benchmark.origin import ORIGIN_KEY, PAPER, SAMPLES, SUITE, USER, builtin_model, measured_origin
from smisbench.benchmark.runner import CellOutcome, run_spec
from smisbench.benchmark.single import run_single, single_spec
from smisbench.benchmark.spec import load_spec, parse_spec
from smisbench.benchmark.store import Store
from smisbench.reports.leaderboard import build_leaderboard, leaderboard_markdown, protocol_differences

SUITE_TABLE1 = """
name = "table1-suite"
table = "table1"
metrics = ["fid", "mcsd_mocd", "lpips_diversity"]
[[datasets]]
name = "deepfashion"
[[models]]
name = "groupdnet"
label = "GroupDNet"
[[models]]
name = "vspade"
label = "VSPADE"
[[claims]]
text = "GroupDNet's mOCD is below VSPADE's"
value = "mocd"
model = "groupdnet"
reference = "vspade"
max_ratio = 100.0
"""


def user_run(store: Store, name: str, label: str, values: dict[str, float], origin: str | None = SAMPLES,
             **protocol) -> dict:
    """A one-cell run of a user's model into table1 under the shipped table1 protocol (plus ``protocol``)."""
    table1 = load_spec("table1")
    spec = single_spec(name=f"user-{label}", table="table1", model={"name": name, "label": label},
                       dataset={"name": "deepfashion"}, metrics=["fid", "mcsd_mocd", "lpips_diversity"],
                       protocol={**table1.protocol, **protocol}, seed=table1.seed, device="cpu")
    provenance = {} if origin is None else {ORIGIN_KEY: origin}

    def score(cell, ctx):
        return CellOutcome(values=dict(values), protocol={**table1.protocol, **protocol}, provenance=provenance)

    return run_single(store, spec, score, command="test", progress=False, stream=io.StringIO())


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "board.sqlite") as s:
        run_spec(parse_spec(SUITE_TABLE1), s, fakes.execute, progress=False, stream=io.StringIO(),
                 environment=fakes.fake_environment)
        user_run(s, "my-model", "MyModel", {"fid": 11.0, "mcsd": 0.03, "mocd": 0.002, "lpips": 0.21})
        user_run(s, "pkg-plugin", "Plugin", {"fid": 12.0, "mcsd": 0.02, "mocd": 0.004, "lpips": 0.2}, origin=None,
                 n=8, fid_samples=100)
        user_run(s, "groupdnet", "GroupDNet", {"fid": 9.0, "mcsd": 0.027, "mocd": 0.003, "lpips": 0.22})
        yield s


def test_rows_are_marked_paper_suite_or_user(store: Store):
    board = build_leaderboard(store, "table1")
    origins = {(row.label, row.origin) for row in board.rows}
    assert {(label, PAPER) for label in ("MulNet", "GroupDNet", "VSPADE", "DSCGAN")} <= origins
    assert {("GroupDNet", SUITE), ("VSPADE", SUITE)} <= origins
    # a user's model under a paper row's label stays its own row
    assert {("MyModel", USER), ("Plugin", USER), ("GroupDNet", USER)} <= origins
    assert [row.origin for row in board.rows] == sorted((row.origin for row in board.rows),
                                                        key=[PAPER, SUITE, USER].index)
    mine = next(row for row in board.rows if row.label == "MyModel")
    assert mine.values[next(c for c in board.table.columns if c.value == "mcsd")] == pytest.approx(0.03)
    user_gdn = next(row for row in board.rows if (row.label, row.origin) == ("GroupDNet", USER))
    suite_gdn = next(row for row in board.rows if (row.label, row.origin) == ("GroupDNet", SUITE))
    fid = next(c for c in board.table.columns if c.value == "fid")
    assert user_gdn.value(fid) == 9.0 and suite_gdn.value(fid) != 9.0


def test_protocol_differences_name_only_fields_that_change_the_row(store: Store):
    board = build_leaderboard(store, "table1")
    rows = {(row.label, row.origin): row for row in board.rows}
    assert rows[("MyModel", USER)].protocol_differences == []
    assert rows[("Plugin", USER)].protocol_differences == ["n=8 (table: 100)", "fid_samples=100 (table: None)"]
    assert board.reference == "the shipped spec table1.toml"
    # the suite's partial spec ran without table1's image_size; FPS fields differ too, but it measured no FPS
    suite = rows[("GroupDNet", SUITE)].protocol_differences
    assert "image_size=None (table: [256, 256])" in suite and not any(d.startswith("fps_") for d in suite)
    assert protocol_differences({"fps_repeats": 3}, {"fps_repeats": 50}, {"mcsd"}) == []
    assert protocol_differences({"seed": 1}, {"seed": 0}, {"mcsd"}) == ["seed=1 (table: 0)"]
    text = leaderboard_markdown(board)
    assert "| MyModel | user-measured |" in text and "| MulNet | paper-printed |" in text
    assert "differs: n=8 (table: 100)" in text and "as the table" in text


def test_origin_comes_from_provenance_else_from_the_model_name():
    assert builtin_model("groupdnet") and not builtin_model("no-such-model")
    assert measured_origin("groupdnet", {}) == SUITE
    assert measured_origin("groupdnet", {ORIGIN_KEY: SAMPLES}) == USER
    assert measured_origin("my.module:build", {}) == USER


def test_origin_of_a_model_registered_outside_smisbench(monkeypatch):
    from smisbench.models.base import CodesKind, ModelEntry
    from smisbench.models.registry import get_entry, register
    from smisbench.registry import MODELS

    entry = get_entry("groupdnet")
    register(ModelEntry("outside", "a plugin's model", CodesKind.GLOBAL, entry.configs, lambda config: None))
    try:
        assert not builtin_model("outside") and measured_origin("outside", {}) == USER
    finally:
        MODELS.unregister("outside")


def test_report_writes_the_leaderboard_and_keeps_the_suites_claims(store: Store, tmp_path: Path):
    from smisbench.reports.build import write_report
    from smisbench.reports.claims import check_claims

    claims = check_claims(store, "table1")  # the user runs are newer but state no claims
    assert len(claims) == 1 and all(c.measured for c in claims[0].comparisons)
    written = write_report(store, tmp_path / "report", ["table1"])
    frame = pd.read_csv(written["table1_leaderboard.csv"])
    assert set(frame["source"]) == {PAPER, SUITE, USER}
    assert frame[(frame.model == "MyModel") & (frame.metric == "mcsd")]["value"].item() == pytest.approx(0.03)
    md = (tmp_path / "report" / "table1.md").read_text()
    assert "### Leaderboard:" in md and "User-measured rows (not the suite's reference models)" in md
    assert '<table class="leaderboard">' in (tmp_path / "report" / "index.html").read_text()


def test_compare_works_on_user_runs(store: Store):
    from smisbench.benchmark.compare import compare_values, values_of_run

    first = user_run(store, "my-model", "MyModel", {"fid": 11.0, "mcsd": 0.03, "mocd": 0.002, "lpips": 0.21})
    worse = user_run(store, "my-model", "MyModel", {"fid": 15.0, "mcsd": 0.03, "mocd": 0.002, "lpips": 0.21},
                     fid_samples=500)
    assert first["run_id"] != worse["run_id"]
    deltas = compare_values(values_of_run(store, first["run_id"]), values_of_run(store, worse["run_id"]))
    verdicts = {d.metric: d.verdict for d in deltas}
    assert verdicts == {"fid": "worse", "mcsd": "same", "mocd": "same", "lpips": "same"}


def test_scoring_the_same_inputs_again_reuses_the_stored_cell(store: Store):
    again = user_run(store, "my-model", "MyModel", {"fid": 99.0, "mcsd": 0.0, "mocd": 0.0, "lpips": 0.0})
    assert again["values"]["fid"] == 11.0  # the cell of the fixture's identical run, not recomputed


# ----------------------------------------------------------------------------- end to end, by the commands
def test_score_samples_store_compare_and_report_commands(tmp_path, monkeypatch, capsys):
    """A sample folder scored into the demo table twice: the runs compare equal and the report marks the row."""
    from conftest_weights import ToyPerClassModel, random_lpips
    from smisbench.cli import main
    from smisbench.datasets_config import get_dataset_config
    from smisbench.metrics.lpips_metric import LPIPSMetric
    from smisbench.models.base import ModelEntry
    from smisbench.models.registry import register
    from smisbench.registry import MODELS

    lpips = random_lpips()
    monkeypatch.setattr(LPIPSMetric, "load", classmethod(lambda cls, *args, **kwargs: lpips))
    register(ModelEntry("toy-per-class", "test toy", ToyPerClassModel.codes_kind,
                        lambda: {"synthetic": get_dataset_config("synthetic")}, ToyPerClassModel))
    try:
        folder = tmp_path / "samples"
        assert main(["export-samples", "--model", "toy-per-class", "--dataset", "synthetic", "--out", str(folder),
                     "--spec", "demo", "--maps", "3", "--no-progress"]) == 0
    finally:
        MODELS.unregister("toy-per-class")
    db = tmp_path / "demo.sqlite"
    with Store(db) as s:
        run_spec(load_spec("demo"), s, fakes.execute, progress=False, stream=io.StringIO(),
                 environment=fakes.fake_environment)
    score = ["score-samples", str(folder), "--dataset", "synthetic", "--spec", "demo", "--metrics",
             "mcsd_mocd,lpips_diversity", "--store", str(db), "--label", "MyToy", "--no-progress"]
    capsys.readouterr()
    assert main(score) == 0 and main(score) == 0
    out = capsys.readouterr().out
    assert "of table 'demo'" in out and "0 computed, 1 reused" in out  # the second run reuses the cell
    with Store(db, readonly=True) as s:
        runs = [r.run_id for r in s.runs()]
    assert main(["compare", str(runs[-2]), str(runs[-1]), "--store", str(db)]) == 0
    assert "no regression" in capsys.readouterr().out
    report = tmp_path / "report"
    assert main(["report", "--store", str(db), "--out", str(report), "--table", "demo"]) == 0
    frame = pd.read_csv(report / "demo_leaderboard.csv")
    row = frame[(frame.model == "MyToy") & (frame.metric == "mocd")]
    assert row["source"].item() == USER and row["value"].item() == 0.0
    assert "diversity_maps=3 (table: 4)" in row["protocol"].item()
    assert set(frame[frame.model == "GroupDNet"]["source"]) == {SUITE}
