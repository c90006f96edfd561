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
from smisbench.reports.tables import MISSING, PAPER_ONLY, build_table, display_frame, long_frame, to_csv, to_latex, to_markdown

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
    assert counts == {"measured": 19, "paper only, never computed": 8, "never computed": 1, "missing": 44}
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
    she = [str(c) for c in table.columns].index("deepfashion:she")  # SHE: the paper's reference column
    assert cells[0::3] == [MISSING] * she + [PAPER_ONLY] + [MISSING] * (7 - she)  # fps_fast last: ours only
    assert cells[1::3][0] == "12.07" and cells[1::3][she] == "79.2" and cells[2::3] == [MISSING] * 8
    assert "paper only = carried from the paper, never computed" in md
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
            computable = [c for c in ours.columns if c != "SHE"]
            assert (ours[computable] == MISSING).all().all()
            if "SHE" in ours.columns:  # the human study: the paper's number, never ours
                assert (ours["SHE"] == PAPER_ONLY).all()
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
    (check,) = check_claims(store, "table1")
    (claim,) = check.comparisons
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


# ----------------------------------------------------------------------------- seeds and SHE
def known_by_seed(cell, ctx):
    """FID 10, 11, 12 and mOCD 0.010, 0.020, 0.030 for seeds 0, 1, 2 (GroupDNet; VSPADE's twice as large);
    and a SHE number that no executor may supply."""
    outcome = fakes.fake_outcome(cell)
    factor = 2.0 if cell.model.id == "vspade" else 1.0
    outcome.values.update({"fid": factor * (10.0 + cell.seed), "mocd": factor * 0.01 * (1 + cell.seed),
                           "she": 99.0})
    return outcome


def test_seeded_values_show_mean_and_std_with_the_interval_in_csv(tmp_path: Path):
    from smisbench.benchmark.uncertainty import summarise
    from smisbench.reports.tables import to_html

    text = PARTIAL_TABLE1.replace('table = "table1"', 'table = "table1"\nseeds = 3')  # seeds 0, 1, 2
    with Store(tmp_path / "s.sqlite") as s:
        run_spec(parse_spec(text), s, known_by_seed, progress=False, stream=io.StringIO(),
                 environment=fakes.fake_environment)
        table = build_table(s, "table1")
        fid = Column("deepfashion", "fid")
        spread = table.spread("GroupDNet", fid)
        assert (spread.n, spread.mean, spread.std) == (3, 11.0, 1.0)
        assert table.our_value("GroupDNet", fid) == 11.0
        ours = display_frame(table).xs("ours", axis=1, level=1)
        assert ours.loc["GroupDNet", "FID"] == "11.00 ± 1.00" and ours.loc["GroupDNet", "mOCD"] == "0.0200 ± 0.0100"
        assert display_frame(table).loc["GroupDNet", ("FID", "Δ")] == "+1.50"  # mean − paper's 9.50
        assert ours.loc["GroupDNet", "SHE"] == PAPER_ONLY  # the stored 99 is not shown as ours
        assert any("SHE is never computed; a stored value for it was left out" in n for n in table.notes)
        frame = long_frame(table)
        row = frame[(frame.model == "GroupDNet") & (frame.metric == "fid")].iloc[0]
        expected = summarise([10.0, 11.0, 12.0])
        assert (row["seeds"], row["std"]) == (3, 1.0)
        assert (row["ci_low"], row["ci_high"]) == pytest.approx((expected.low, expected.high))
        assert row["ci_low"] <= 11.0 <= row["ci_high"]
        back = pd.read_csv(io.StringIO(to_csv(table)))
        assert back.loc[row.name, "ci_low"] == pytest.approx(expected.low)
        she = frame[(frame.model == "GroupDNet") & (frame.metric == "she")].iloc[0]
        assert math.isnan(she["ours"]) and she["status"] == "paper only, never computed" and she["paper"] == 81.2
        md, tex, html = to_markdown(table), to_latex(table), to_html(table)
        assert "| 11.00 ± 1.00 | 9.50 | +1.50 |" in md and "a ± b = mean ± std over seeds" in md
        assert r"11.00 $\pm$ 1.00" in tex and "±" not in tex and "paper only" in tex
        assert "<td>11.00 ± 1.00</td>" in html and '<td class="paper-only">paper only</td>' in html
        # the claim is judged on the means over seeds: 0.02 / 0.04
        (check,) = check_claims(s, "table1")
        (claim,) = check.comparisons
        assert (claim.model_value, claim.reference_value) == pytest.approx((0.02, 0.04))
        # a newer single-seed run into the table wins, as any newer run does: one value, no ±
        run_spec(parse_spec(PARTIAL_TABLE1), s, known_by_seed, progress=False, stream=io.StringIO(),
                 environment=fakes.fake_environment)
        single = build_table(s, "table1")
        assert single.spread("GroupDNet", fid).n == 1 and single.our_value("GroupDNet", fid) == 10.0
        assert display_frame(single).loc["GroupDNet", ("FID", "ours")] == "10.00" and not single.seeded
