"""The demo's report: the zoo's tables as views of the one stored demo table, each with its real-data row
and the paper's table beside it as a separate block, the paper's findings as claims, the known-truth
rank check, the applications figures, and where every row's model came from."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from smisbench.benchmark.catalog import catalog
from smisbench.benchmark.paper import Column, PaperTable, paper_tables
from smisbench.benchmark.spec import BenchmarkSpec
from smisbench.benchmark.spec_claims import REAL_ROW
from smisbench.benchmark.store import Store, now
from smisbench.reports.build import Figure, Report, TableSection, section_for
from smisbench.reports.claims import ClaimCheck, evaluate_claims, store_values
from smisbench.reports.demo_spec import Row
from smisbench.reports.tables import MISSING, ReportTable, build_table
from smisbench.zoo.ceiling import ROW_LABEL, RealRows
from smisbench.zoo.definition import Zoo, ZooTable

GRID_TABLES = ("table1", "ablations")  # SMIS grids are drawn for these tables' rows (each row once)
REAL_METHODS = {
    "miou": "the segmenter on the real test images (the miou metric's own pass)",
    "accuracy": "the same pass: pixel accuracy",
    "fid": "real test images [0, N) against [N, 2N), N = fid_samples (the fid metric's own pass)",
    "mcsd": "the data's renderer as a model, one class's style redrawn (protocol n, m, maps, mask mode)",
    "mocd": "the same sets: 0 up to float rounding, since a style redraw changes only its class",
    "lpips": "the data's renderer with every style redrawn",
    "locality": "the same sets: 1 by construction (the known truth)",
}


def table_view(base: ReportTable, table: ZooTable, labels: list[str], dataset: str,
               real: RealRows | None) -> ReportTable:
    """The rows ``labels`` (and the real-data row) and the table's values, from the whole demo table."""
    columns = [Column(dataset, key) for key in catalog().produces(list(table.metrics))]
    rows = [label for label in labels if label in base.rows]
    ours = {(r, c): v for (r, c), v in base.ours.items() if r in rows and c in columns}
    sources = {(r, c): v for (r, c), v in base.sources.items() if r in rows and c in columns}
    has_masked = any(c.value in ("mcsd", "mocd") for c in columns)
    notes = [n for n in base.notes if has_masked or not n.startswith("mCSD/mOCD")]
    missing = [label for label in labels if label not in base.rows]
    if missing:
        notes.append(f"Not in this run (no zoo checkpoint): {', '.join(missing)}.")
    if real is not None:
        shown = {c: catalog().value(c.value).display(real.values[c.value]) for c in columns
                 if c.value in real.values and math.isfinite(real.values[c.value])}
        if shown:
            rows.append(ROW_LABEL)
            ours.update({(ROW_LABEL, c): v for c, v in shown.items()})
            notes += real.notes
    return ReportTable(f"demo_{table.name}", table.title, rows, columns, dict(base.dataset_labels), ours, sources, None,
                       notes)


def paper_view(paper: PaperTable) -> ReportTable:
    """The paper's numbers of a table as a table of their own (not ours, not comparable number for number)."""
    ours = {(r, c): paper.value(r, c) for r in paper.rows for c in paper.columns if paper.value(r, c) is not None}
    caption = (f"The paper's numbers ({paper.source}), on its datasets at 256x256 and up: a reference for the "
               f"ranking, not for the values; {MISSING} = not printed.")
    return ReportTable(f"paper_{paper.name}", f"Paper: {paper.title}", list(paper.rows), list(paper.columns), {},
                       ours, {}, None, list(paper.notes), caption=caption)


def rank_agreement(store_vals: dict[tuple[str, str, str], float], ids: list[str], dataset: str) -> str:
    """Kendall's tau between redraw locality and -(mOCD/mCSD) over the rows that have both."""
    from scipy.stats import kendalltau

    points = []
    for ident in ids:
        loc, mocd, mcsd = (store_vals.get((ident, dataset, k)) for k in ("locality", "mocd", "mcsd"))
        if None not in (loc, mocd, mcsd) and mcsd and all(math.isfinite(v) for v in (loc, mocd, mcsd)):
            points.append((ident, loc, -mocd / mcsd))
    if len(points) < 3:
        return (f"Known-truth rank check: {len(points)} rows have locality, mOCD and mCSD; at least 3 are needed "
                "to compare rankings (not measured).")
    tau = kendalltau([p[1] for p in points], [p[2] for p in points]).statistic
    verdict = "agree" if tau >= 0.5 else "do not agree"
    return (f"Known-truth rank check over {len(points)} rows ({', '.join(p[0] for p in points)}): Kendall's tau "
            f"between redraw locality and -(mOCD/mCSD) = {tau:.2f}; the pixel-space truth and the LPIPS metrics "
            f"{verdict} (needs tau >= 0.5).")


def _attach(claims: list[ClaimCheck], zoo: Zoo) -> dict[str, list[ClaimCheck]]:
    """Each claim goes to the first table whose rows hold all of its models."""
    out: dict[str, list[ClaimCheck]] = {name: [] for name in zoo.tables}
    for check in claims:
        ids = set(check.claim.models + check.claim.references) - {REAL_ROW}
        home = next((name for name in zoo.tables if ids <= {m.id for m in zoo.rows_of(name)}), next(iter(zoo.tables)))
        out[home].append(check)
    return out


def rows_frame(rows: dict[str, Row]) -> pd.DataFrame:
    """One line per zoo row: shipped / trained now / fallback / missing, with the manifest's facts."""
    records = []
    for row in rows.values():
        m = row.manifest or {}
        records.append({
            "row": row.label, "id": row.id, "model source": row.source,
            "steps": m.get("steps"), "steps/s": m.get("steps_per_s"), "wall (s)": m.get("wall_time_s"),
            "device": (m.get("environment") or {}).get("device_name"),
            "commit": ((m.get("environment") or {}).get("git_commit") or "—")[:12],
            "sha256": (m.get("file") or {}).get("sha256", "—")[:12], "detail": row.detail,
        })
    return pd.DataFrame.from_records(records)


def build_demo_report(store: Store, zoo: Zoo, rows: dict[str, Row], full_spec: BenchmarkSpec,
                      real: RealRows | None, figures: list[Figure], preface: list[str],
                      title: str) -> Report:
    dataset = full_spec.datasets[0].id
    base = build_table(store, full_spec.table)
    values = store_values(store, full_spec.table)
    if real is not None:
        values.update({(REAL_ROW, dataset, k): v for k, v in real.values.items()})
    claims = evaluate_claims(full_spec.claims, values, dataset)
    by_table = _attach(claims, zoo)
    sections: list[TableSection] = []
    drawn: set[str] = set()
    papers = paper_tables()
    for name, table in zoo.tables.items():
        labels = [m.label for m in zoo.rows_of(name)]
        view = table_view(base, table, labels, dataset, real)
        grid_rows = [r for r in view.rows if r not in drawn] if name in GRID_TABLES else []
        drawn |= set(grid_rows)
        section = section_for(store, view, by_table[name], grid_rows=grid_rows)
        if name == "table1":
            section.notes.append(rank_agreement(values, [m.id for m in zoo.models], dataset))
        sections.append(section)
        if table.paper in papers:
            sections.append(TableSection(paper_view(papers[table.paper])))
    frames = [("Where each row's model comes from (shipped zoo checkpoint, trained now, or left out)",
               rows_frame(rows))]
    if real is not None:
        frames.append(("How the real-data rows were measured", pd.DataFrame(
            [{"value": catalog().value(k).label, "stored": f"{v:.4g}", "how": REAL_METHODS.get(k, "")}
             for k, v in sorted(real.values.items())])))
    return Report(title, now()[:19].replace("T", " ") + " UTC", str(store.path), sections, preface, frames, figures)


def holds_summary(claims: list[Any]) -> str:
    counts = {v: sum(c.verdict == v for c in claims) for v in ("holds", "does not hold", "not measured")}
    return ", ".join(f"{n} {v}" for v, n in counts.items())
