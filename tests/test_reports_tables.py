"""Report tables from a store with missing cells: ours beside the paper's, nothing invented."""

from __future__ import annotations

import io
import math
from pathlib import Path

import pandas as pd
import pytest

import benchmark_fakes as fakes
from smisbench.benchmark.paper import Column, paper_tables
from smisbench.benchmark.runner import run_spec
from smisbench.benchmark.spec import parse_spec
from smisbench.benchmark.store import Store
from smisbench.reports.build import report_tables, write_report
from smisbench.reports.claims import check_claims
from smisbench.reports.tables import MISSING, build_table, display_frame, long_frame, to_csv, to_latex, to_markdown

PARTIAL_TABLE1 = """
name = "table1-partial"
table = "table1"
metrics = ["fid", "mcsd_mocd", "lpips_diversity", "fps", "params"]
[[datasets]]
name = "deepfashion"
label = "DeepFashion"
[[models]]
name = "groupdnet"
label = "GroupDNet"
[[models]]
name = "vspade"
label = "VSPADE"
[[models]]
name = "groupdnet"
id = "tuned"
label = "GroupDNet (tuned)"
config = { z_per_class = 4 }  # a real GroupDNetConfig field: the spec is checked before running
[[claims]]
text = "GroupDNet's mOCD is below VSPADE's"
value = "mocd"
model = "groupdnet"
reference = "vspade"
max_ratio = 0.5
"""


def without_vspade_fps(cell, ctx):
    outcome = fakes.fake_outcome(cell)
    if cell.model.id == "vspade":
        del outcome.values["fps"], outcome.values["fps_fast"]
    if cell.model.id == "groupdnet":
        outcome.values["mocd"] = 0.25 * fakes.fake_value(cell.key, "mocd")
    return outcome


@pytest.fixture
def store(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as s:
        summary = run_spec(parse_spec(PARTIAL_TABLE1), s, without_vspade_fps, progress=False, stream=io.StringIO(),
                           environment=fakes.fake_environment)
        s.summary = summary
        yield s


def stored(store: Store, model_label: str, metric: str) -> float:
    rows = [r for r in store.table_results("table1") if r["model_label"] == model_label and r["metric"] == metric]
    assert len(rows) == 1
    return rows[0]["value"]


def test_table_has_paper_rows_and_only_measured_values(store: Store):
    table = build_table(store, "table1")
    paper = paper_tables()["table1"]
    assert table.rows[:8] == list(paper.rows) and table.rows[8:] == ["GroupDNet (tuned)"]
    assert table.columns == list(paper.columns) + [Column("deepfashion", "fps_fast")]  # ours only: no paper column
    # 3 models x 7 computable values, minus VSPADE's two FPS that the executor did not produce
    assert table.measured() == 19
    fid = Column("deepfashion", "fid")
    assert table.our_value("GroupDNet", fid) == stored(store, "GroupDNet", "fid")
    assert table.paper_value("GroupDNet", fid) == 9.50
    assert table.our_value("MulNet", fid) is None
    assert table.our_value("VSPADE", Column("deepfashion", "fps")) is None
    params = Column("deepfashion", "params")
    assert table.our_value("VSPADE", params) == pytest.approx(stored(store, "VSPADE", "params") * 1e-6)
    assert table.paper_value("GroupDNet (tuned)", fid) is None


def test_long_frame_statuses_and_differences(store: Store):
    frame = long_frame(build_table(store, "table1"))
    assert len(frame) == 9 * 8
    counts = frame["status"].value_counts().to_dict()
    assert counts == {"measured": 19, "not computable (paper only)": 8, "not computable": 1, "missing": 44}
    measured = frame[frame.status == "measured"]
    assert measured["ours"].notna().all() and frame[frame.status != "measured"]["ours"].isna().all()
    row = frame[(frame.model == "GroupDNet") & (frame.metric == "fid")].iloc[0]
    assert row["difference"] == pytest.approx(row["ours"] - 9.50)
    assert frame[frame.model == "GroupDNet (tuned)"]["paper"].isna().all()
    she = frame[(frame.metric == "she") & (frame.model == "GroupDNet")].iloc[0]
    assert math.isnan(she["ours"]) and she["paper"] == 81.2


def test_csv_round_trip_keeps_missing_empty(store: Store):
    table = build_table(store, "table1")
    back = pd.read_csv(io.StringIO(to_csv(table)))
    assert len(back) == 72
    assert back["ours"].notna().sum() == 19  # no zeros or guesses where nothing was measured
    original = long_frame(table)
    pd.testing.assert_series_equal(back["ours"], original["ours"], check_names=False, rtol=1e-9)


def test_markdown_and_latex_show_missing(store: Store):
    table = build_table(store, "table1")
    md = to_markdown(table)
    lines = [line for line in md.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| model | FID | FID paper | Δ FID | mCSD |")
    mulnet = next(line for line in lines if line.startswith("| MulNet |"))
    cells = [c.strip() for c in mulnet.strip("|").split("|")][1:]
    assert cells[0::3] == [MISSING] * 8 and cells[1::3][0] == "12.07" and cells[2::3] == [MISSING] * 8
    groupdnet = next(line for line in lines if line.startswith("| GroupDNet |"))
    fid_ours = float(groupdnet.split("|")[2])
    assert fid_ours == pytest.approx(stored(store, "GroupDNet", "fid"), abs=0.005)
    assert "SHE is a human study" in md
    tex = to_latex(table)
    body = [line for line in tex.splitlines() if line.endswith(r"\\") and not line.startswith(("Model", " &"))]
    assert len(body) == 9 and all(line.count("&") == 24 for line in body)
    assert "--" in tex and r"\begin{tabular}" in tex and r"\multicolumn{3}{c}{FID}" in tex


def test_latex_escapes_labels(tmp_path: Path):
    with Store(tmp_path / "a.sqlite") as s:
        table = build_table(s, "ablations")
    tex = to_latex(table)
    assert r"$\rightarrow$ GroupNorm" in tex and "w/o SpecNorm" in tex
    assert r"\# Param (M)" in tex


def test_empty_store_gives_paper_only_tables(tmp_path: Path):
    with Store(tmp_path / "empty.sqlite") as s:
        assert report_tables(s) == ["table1", "table2", "ablations"]
        for name in ("table1", "table2", "ablations"):
            table = build_table(s, name)
            assert table.measured() == 0
            frame = display_frame(table)
            ours = frame.xs("ours", axis=1, level=1)
            assert (ours == MISSING).all().all()
            assert "no runs" in table.notes[0]
        written = write_report(s, tmp_path / "out")
        assert {"table1.md", "table2.csv", "ablations.tex", "report.md", "index.html"} <= set(written)
        assert not any(name.startswith("plots/") and "diversity" in name for name in written)


def test_table_without_paper_lists_measured_only(tmp_path: Path):
    with Store(tmp_path / "s.sqlite") as s:
        run_spec(parse_spec(fakes.SMALL_SPEC), s, fakes.plain, progress=False, stream=io.StringIO(),
                 environment=fakes.fake_environment)
        table = build_table(s, "small")
        assert not table.has_paper
        assert table.rows == ["GroupDNet", "VSPADE", "GroupNet"]
        assert [str(c) for c in table.columns] == [
            "synthetic:fid", "synthetic:mcsd", "synthetic:mocd", "synthetic:params",
            "synthetic_b:fid", "synthetic_b:mcsd", "synthetic_b:mocd", "synthetic_b:params"]
        assert table.column_label(table.columns[4]) == "syn-b FID"
        assert table.measured() == 24
        assert "small" in report_tables(s)


def test_claims_are_checked_on_measured_numbers(store: Store):
    (claim,) = check_claims(store, "table1")
    assert claim.model_value == stored(store, "GroupDNet", "mocd")
    assert claim.reference_value == stored(store, "VSPADE", "mocd")
    assert claim.verdict == ("holds" if claim.model_value / claim.reference_value <= 0.5 else "does not hold")
    assert "ratio" in claim.sentence()


def test_tables_name_the_mask_mode_of_mcsd_and_mocd(store: Store, tmp_path: Path):
    table = build_table(store, "table1")
    assert any(note.startswith("mCSD/mOCD: mask_mode = image (") and "paper's scale" in note for note in table.notes)
    assert "mask_mode = image" in to_markdown(table)
    # a later run with the other mode for one model: the table says the rows are not comparable
    old = "config = { z_per_class = 4 }"
    assert old in PARTIAL_TABLE1
    text = PARTIAL_TABLE1.replace(old, old + '\nprotocol = { mask_mode = "lpips_map" }')
    run_spec(parse_spec(text), store, without_vspade_fps, progress=False, stream=io.StringIO(),
             environment=fakes.fake_environment)
    (note,) = [n for n in build_table(store, "table1").notes if n.startswith("mCSD/mOCD")]
    assert "different mask modes" in note and "lpips_map (" in note and "GroupDNet (tuned)" in note


def test_failed_and_unproduced_values_show_as_missing(tmp_path: Path):
    def uneven(cell, ctx):
        if cell.model.id == "groupnet" and cell.dataset.id == "synthetic":
            raise RuntimeError("planted crash")
        outcome = fakes.fake_outcome(cell)
        if cell.model.id == "vspade":
            outcome.values = {k: v for k, v in outcome.values.items() if k != "params"}
        return outcome

    text = fakes.SMALL_SPEC.replace('metrics = ["fid", "mcsd_mocd", "params"]', 'metrics = ["fid", "params"]')
    with Store(tmp_path / "s.sqlite") as s:
        run_spec(parse_spec(text), s, uneven, progress=False, stream=io.StringIO(),
                 environment=fakes.fake_environment)
        table = build_table(s, "small")
    assert table.rows == ["GroupDNet", "VSPADE", "GroupNet"]
    assert [str(c) for c in table.columns] == ["synthetic:fid", "synthetic:params", "synthetic_b:fid",
                                               "synthetic_b:params"]
    frame = display_frame(table).xs("ours", axis=1, level=1)
    assert (frame.loc["VSPADE", ["syn # Param (M)", "syn-b # Param (M)"]] == MISSING).all()
    assert frame.loc["GroupNet", "syn FID"] == MISSING and frame.loc["GroupNet", "syn-b FID"] != MISSING
    assert table.measured() == 12 - 2 - 2
    assert any("GroupNet @ syn: the newest attempt failed" in note and "planted crash" in note
               for note in table.notes)


def test_report_command(store: Store, tmp_path: Path, capsys):
    from smisbench.cli import main

    out = tmp_path / "report"
    assert main(["report", "--store", str(store.path), "--out", str(out), "--table", "table1"]) == 0
    assert "table1" in capsys.readouterr().out
    for name in ("table1.md", "table1.tex", "table1.csv", "report.md", "index.html", "plots/table1_mcsd_mocd.png"):
        assert (out / name).is_file(), name
    assert pd.read_csv(out / "table1.csv")["ours"].notna().sum() == 19
    assert main(["report", "--store", str(tmp_path / "absent.sqlite"), "--out", str(out)]) == 2
    assert "no results store" in capsys.readouterr().err
