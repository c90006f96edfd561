"""Assemble a report from the store (tables, claims, plots, grids, provenance) and write every format.

``write_report(store, out)`` writes, per table, ``TABLE.md``, ``TABLE.tex`` and ``TABLE.csv``,
PNG plots under ``plots/`` and SMIS grids under ``grids/``, plus ``report.md`` (all tables)
and ``index.html`` (one self-contained page). Where rows of two origins meet (the paper's, the
suite's reference models, users' models), ``TABLE.md`` and the page add the table's leaderboard
(``smisbench.reports.leaderboard``) and ``TABLE_leaderboard.csv`` holds it. Files are written atomically.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from smisbench.benchmark.grids import load_grid
from smisbench.benchmark.origin import USER
from smisbench.benchmark.paper import paper_tables
from smisbench.benchmark.store import Store, now
from smisbench.io import atomic_write_bytes, atomic_write_text
from smisbench.reports import plots
from smisbench.reports.claims import ClaimResult, check_claims
from smisbench.reports.leaderboard import Leaderboard, build_leaderboard, leaderboard_csv, leaderboard_markdown
from smisbench.reports.tables import ReportTable, build_table, to_csv, to_latex, to_markdown

PAPER_TABLE_ORDER = ("table1", "table2", "ablations")


@dataclass
class Figure:
    title: str
    png: bytes
    filename: str  # relative to the report folder
    caption: str = ""


@dataclass
class TableSection:
    table: ReportTable
    claims: list[ClaimResult] = field(default_factory=list)
    plots: list[Figure] = field(default_factory=list)
    grids: list[Figure] = field(default_factory=list)
    provenance: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    leaderboard: Leaderboard | None = None  # when rows of two origins (paper, suite, user) stand side by side


@dataclass
class Report:
    title: str
    created_at: str
    store: str
    sections: list[TableSection]
    preface: list[str] = field(default_factory=list)  # paragraphs before the tables
    frames: list[tuple[str, pd.DataFrame]] = field(default_factory=list)  # titled tables after them
    figures: list[Figure] = field(default_factory=list)  # figures after them


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", text).strip("_").lower() or "x"


def report_tables(store: Store, which: str = "all") -> list[str]:
    """``all``: the paper's tables, then every other table the store holds; else the one named."""
    if which != "all":
        return [which]
    names = list(PAPER_TABLE_ORDER) + [t for t in paper_tables() if t not in PAPER_TABLE_ORDER]
    return names + [t for t in store.tables() if t not in names]


def provenance_frame(store: Store, table: ReportTable) -> pd.DataFrame:
    """Where each of our numbers came from: one row per cell."""
    records = []
    seen = set()
    for row, source in sorted(table.source_rows(), key=lambda rs: (rs[1]["cell_index"], rs[1]["cell_id"])):
        if source["cell_id"] in seen:
            continue
        seen.add(source["cell_id"])
        cell = store.cell(source["cell_id"])
        records.append({
            "model": row, "dataset": f"{cell['dataset']}/{cell['split']}", "run": source["run_id"],
            "cell": source["cell_id"], "reused": bool(source["reused"]),
            "git commit": (cell["git_commit"] or "unknown")[:12],
            "device": cell["device_name"] or cell["device"], "dtype": cell["dtype"], "threads": cell["threads"],
            "wall time (s)": None if cell["wall_time_s"] is None else round(cell["wall_time_s"], 1),
            "checkpoint sha256": (cell["checkpoint_sha256"] or "—")[:12],
            "spec sha256": cell["spec_sha256"][:12], "seed": cell["seed"], "finished": cell["finished_at"][:19],
        })
    return pd.DataFrame.from_records(records)


def _grids(store: Store, table: ReportTable, only: list[str] | None = None) -> tuple[list[Figure], list[str]]:
    figures, notes = [], []
    cells: dict[str, int] = {}
    for (row, _), source in table.sources.items():
        cells.setdefault(row, source["cell_id"])
    for row in table.rows:
        if row not in cells or (only is not None and row not in only):
            continue
        for artifact in store.artifacts(cells[row], "smis_grid"):
            path = store.artifacts_dir / artifact.path
            if not path.is_file():
                notes.append(f"SMIS grid of {row} is recorded but its file {path} is missing.")
                continue
            grid = load_grid(path)
            title = f"{row}: {'per-class' if bool(grid['per_class']) else 'global'} resampling"
            png = plots.smis_grid_figure(grid, title)
            figures.append(Figure(title, png, f"grids/{_slug(table.name)}_{_slug(row)}.png",
                                  "Rows: samples; columns: which class's code is redrawn "
                                  "(the whole code for models without per-class codes)."))
    return figures, notes


def build_section(store: Store, name: str) -> TableSection:
    table = build_table(store, name)
    section = section_for(store, table, check_claims(store, name))
    board = build_leaderboard(store, name, table)
    section.leaderboard = board if board.shown else None
    users = sorted({row.label for row in board.rows if row.origin == USER})
    if users:
        section.notes.append(f"User-measured rows (not the suite's reference models): {', '.join(users)}; "
                             "the leaderboard marks where each row comes from.")
    return section


def section_for(store: Store, table: ReportTable, claims: list | None = None, name: str | None = None,
                grid_rows: list[str] | None = None) -> TableSection:
    """A section for any table of the store's values (a whole table or a view of one): plots, grids, provenance.

    ``grid_rows``: the rows whose SMIS grids to draw (default: every row).
    """
    name = name or table.name
    section = TableSection(table, claims=list(claims or []))
    for key, title, draw in (("mcsd_mocd", "mCSD vs mOCD", plots.mcsd_vs_mocd),
                             ("fid_fps", "FID vs FPS", plots.fid_vs_fps),
                             ("diversity", "Diversity (LPIPS, mCSD, mOCD)", plots.diversity_bars)):
        png = draw(table)
        if png is not None:
            section.plots.append(Figure(title, png, f"plots/{_slug(name)}_{key}.png"))
    section.grids, notes = _grids(store, table, grid_rows)
    section.notes += notes
    section.provenance = provenance_frame(store, table)
    return section


def build_report(store: Store, tables: list[str], title: str = "smisbench report") -> Report:
    return Report(title, now()[:19].replace("T", " ") + " UTC", str(store.path),
                  [build_section(store, name) for name in tables])


def _md_provenance(frame: pd.DataFrame) -> list[str]:
    if frame.empty:
        return []
    headers = list(frame.columns)
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    for values in frame.itertuples(index=False):
        lines.append("| " + " | ".join("—" if v is None or (isinstance(v, float) and pd.isna(v)) else str(v)
                                       for v in values) + " |")
    return lines


def section_markdown(section: TableSection) -> str:
    out = [to_markdown(section.table)]
    if section.leaderboard is not None:
        out.append(leaderboard_markdown(section.leaderboard))
    if section.claims:
        out.append("**Claims checked on the measured numbers**\n")
        out += [f"- {c.sentence()}" for c in section.claims]
        out.append("")
    for fig in section.plots + section.grids:
        out.append(f"![{fig.title}]({fig.filename})\n")
        if fig.caption:
            out.append(f"*{fig.caption}*\n")
    out += [f"- {note}" for note in section.notes]
    prov = _md_provenance(section.provenance)
    if prov:
        out += ["", "<details><summary>Provenance of our numbers</summary>", "", *prov, "", "</details>", ""]
    return "\n".join(out)


def frame_markdown(title: str, frame: pd.DataFrame) -> str:
    return "\n".join([f"### {title}", "", *_md_provenance(frame), ""]) + "\n"


def report_markdown(report: Report) -> str:
    head = [f"# {report.title}", "", f"Generated {report.created_at} from `{report.store}`.", ""]
    head += [line for paragraph in report.preface for line in (paragraph, "")] + ([""] if report.preface else [])
    tail = [frame_markdown(title, frame) for title, frame in report.frames]
    tail += ["### Figures\n"] if report.figures else []
    for fig in report.figures:
        tail.append(f"![{fig.title}]({fig.filename})\n" + (f"\n*{fig.caption}*\n" if fig.caption else ""))
    return "\n".join(head) + "\n".join(section_markdown(s) for s in report.sections) + "\n".join(tail)


def write_report(store: Store, out: str | Path, tables: list[str] | None = None,
                 title: str = "smisbench report") -> dict[str, Path]:
    """Write every format into ``out``; returns the written paths by name."""
    return write_built_report(build_report(store, tables or report_tables(store), title), out)


def write_built_report(report: Report, out: str | Path) -> dict[str, Path]:
    """Write an assembled report's every format into ``out``; returns the written paths by name."""
    from smisbench.reports.html import render_html

    out = Path(out)
    written: dict[str, Path] = {}
    for section in report.sections:
        slug = _slug(section.table.name)
        files = [(f"{slug}.md", section_markdown(section)), (f"{slug}.tex", to_latex(section.table)),
                 (f"{slug}.csv", to_csv(section.table))]
        if section.leaderboard is not None:
            files.append((f"{slug}_leaderboard.csv", leaderboard_csv(section.leaderboard)))
        for filename, text in files:
            atomic_write_text(out / filename, text)
            written[filename] = out / filename
        for fig in section.plots + section.grids:
            atomic_write_bytes(out / fig.filename, fig.png)
            written[fig.filename] = out / fig.filename
    for fig in report.figures:
        atomic_write_bytes(out / fig.filename, fig.png)
        written[fig.filename] = out / fig.filename
    atomic_write_text(out / "report.md", report_markdown(report))
    written["report.md"] = out / "report.md"
    atomic_write_text(out / "index.html", render_html(report))
    written["index.html"] = out / "index.html"
    return written
