"""A leaderboard per table: the paper's rows, the suite's reference rows and the users' rows side by side.

Each row is one model from one origin (``smisbench.benchmark.origin``): printed in the paper,
measured by the suite on a model it ships, or measured on a user's model (a plugin, a factory, a
sample folder). A user's model may carry a paper row's label and still stays its own row. Each
measured row names how its protocol differs from the table's reference protocol (the shipped spec
of that table, else the newest suite-measured cell's): a number measured under another protocol is
shown, never hidden, but marked.
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

from smisbench.benchmark.catalog import catalog
from smisbench.benchmark.origin import ORIGINS, PAPER, SUITE, USER, measured_origin
from smisbench.benchmark.paper import Column
from smisbench.benchmark.store import Store
from smisbench.metrics.protocol import protocol_fields
from smisbench.reports.tables import MISSING, ReportTable, build_table

ORIGIN_MEANING = {
    PAPER: "printed in the paper",
    SUITE: "a model the suite ships, scored by the suite",
    USER: "a user's model (plugin, factory or sample folder), scored by the suite",
}


@dataclass
class LeaderRow:
    label: str
    origin: str
    values: dict[Column, float] = field(default_factory=dict)  # in the paper's units
    cells: list[int] = field(default_factory=list)
    runs: list[int] = field(default_factory=list)
    protocol_differences: list[str] = field(default_factory=list)

    def value(self, column: Column) -> float | None:
        value = self.values.get(column)
        return None if value is None or not math.isfinite(value) else value


@dataclass
class Leaderboard:
    table: ReportTable
    rows: list[LeaderRow]
    reference: str  # where the reference protocol comes from ("" when there is none)

    @property
    def shown(self) -> bool:
        """Worth printing: rows of at least two origins stand side by side."""
        return len({row.origin for row in self.rows}) >= 2


def _comparable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def reference_protocol(store: Store, name: str, cells: dict[int, dict]) -> tuple[dict[str, Any] | None, str]:
    """The protocol a table's rows should share: its shipped spec's, else its newest suite-measured cell's."""
    from smisbench.benchmark.spec import load_spec, shipped_specs

    if name in shipped_specs():
        spec = load_spec(name)
        if spec.table == name:
            return {**spec.protocol, "seed": spec.seed}, f"the shipped spec {name}.toml"
    suite = [cell for cell in cells.values() if cell["origin"] == SUITE]
    if suite:
        newest = max(suite, key=lambda c: c["cell_id"])
        return {**newest["protocol"], "seed": newest["seed"]}, f"the suite's newest cell ({newest['model_name']})"
    return None, ""


def protocol_differences(protocol: dict[str, Any], reference: dict[str, Any] | None,
                         measured: set[str] | None = None) -> list[str]:
    """``field=value (table: value)`` for each field set otherwise that can change a value of ``measured``
    (value keys; None: any value), as each field's ``affects`` says."""
    if reference is None:
        return []
    out = []
    for spec_field in protocol_fields():
        key, affects = spec_field.name, spec_field.affects
        if key not in reference or affects == () or (
                affects is not None and measured is not None and not set(affects) & measured):
            continue
        mine, theirs = _comparable(protocol.get(key, spec_field.default)), _comparable(reference[key])
        if mine != theirs:
            out.append(f"{key}={mine} (table: {theirs})")
    return out


def build_leaderboard(store: Store, name: str, table: ReportTable | None = None) -> Leaderboard:
    """The leaderboard of table ``name``: paper rows, then suite-measured rows, then user-measured rows."""
    table = table or build_table(store, name)
    rows: dict[tuple[str, str], LeaderRow] = {}
    if table.paper is not None:
        for label in table.paper.rows:
            row = rows.setdefault((label, PAPER), LeaderRow(label, PAPER))
            row.values = {c: v for c in table.columns if (v := table.paper_value(label, c)) is not None}
    cells: dict[int, dict] = {}
    for run in (r for r in store.runs() if r.table == name):
        for result in store.run_results(run.run_id):
            if result["cell_id"] not in cells:
                cell = store.cell(result["cell_id"])
                cell["origin"] = measured_origin(cell["model_name"], cell["provenance"])
                cells[result["cell_id"]] = cell
            cell = cells[result["cell_id"]]
            row = rows.setdefault((result["model_label"], cell["origin"]), LeaderRow(result["model_label"],
                                                                                     cell["origin"]))
            column = Column(result["dataset_id"], result["metric"])
            row.values[column] = catalog().value(result["metric"]).display(result["value"])  # newest run wins
            for ids, new in ((row.cells, result["cell_id"]), (row.runs, result["run_id"])):
                if new not in ids:
                    ids.append(new)
    reference, source = reference_protocol(store, name, cells)
    for row in rows.values():
        seen = []
        for cell_id in row.cells:
            cell = cells[cell_id]
            measured = {key for key, value in cell["values"].items() if math.isfinite(value)}
            for difference in protocol_differences({**cell["protocol"], "seed": cell["seed"]}, reference, measured):
                if difference not in seen:
                    seen.append(difference)
        row.protocol_differences = seen
    order = {origin: i for i, origin in enumerate(ORIGINS)}
    ordered = sorted(rows.values(), key=lambda r: order[r.origin])  # stable: paper order, then as measured
    return Leaderboard(table, ordered, source)


def _protocol_cell(row: LeaderRow, board: Leaderboard) -> str:
    if row.origin == PAPER:
        return "the paper's"
    if not board.reference:
        return "—"
    return "as the table" if not row.protocol_differences else "differs: " + "; ".join(row.protocol_differences)


def _formatted(board: Leaderboard) -> tuple[list[str], list[list[str]]]:
    table = board.table
    headers = ["model", "source"] + [table.column_label(c) for c in table.columns] + ["protocol"]
    lines = []
    for row in board.rows:
        values = [MISSING if (v := row.value(c)) is None else catalog().value(c.value).format(v) for c in table.columns]
        lines.append([row.label, row.origin, *values, _protocol_cell(row, board)])
    return headers, lines


def _legend(board: Leaderboard) -> list[str]:
    origins = [o for o in ORIGINS if any(r.origin == o for r in board.rows)]
    out = ["Source: " + "; ".join(f"{o} = {ORIGIN_MEANING[o]}" for o in origins) + "."]
    if board.reference:
        out.append(f"Protocol: each measured row against {board.reference}; a row measured otherwise is marked "
                   "and not comparable in those columns.")
    return out


def leaderboard_markdown(board: Leaderboard) -> str:
    headers, lines = _formatted(board)
    esc = lambda text: str(text).replace("|", "\\|")  # noqa: E731
    out = [f"### Leaderboard: {board.table.title}", "", "| " + " | ".join(esc(h) for h in headers) + " |",
           "| --- | --- | " + " | ".join("---:" for _ in board.table.columns) + " | --- |"]
    out += ["| " + " | ".join(esc(v) for v in line) + " |" for line in lines]
    out += ["", *[f"- {text}" for text in _legend(board)]]
    return "\n".join(out) + "\n"


def leaderboard_frame(board: Leaderboard) -> pd.DataFrame:
    """Long form: one row per (model, source, column), value in the paper's units (empty when missing)."""
    records = []
    for row in board.rows:
        for column in board.table.columns:
            records.append({"table": board.table.name, "model": row.label, "source": row.origin,
                            "dataset": column.dataset, "metric": column.value, "value": row.value(column),
                            "runs": " ".join(map(str, row.runs)), "cells": " ".join(map(str, row.cells)),
                            "protocol": _protocol_cell(row, board)})
    frame = pd.DataFrame.from_records(records, columns=["table", "model", "source", "dataset", "metric", "value",
                                                        "runs", "cells", "protocol"])
    frame["value"] = pd.to_numeric(frame["value"])
    return frame


def leaderboard_csv(board: Leaderboard) -> str:
    return leaderboard_frame(board).to_csv(index=False, float_format="%.10g")


def leaderboard_html(board: Leaderboard) -> str:
    headers, lines = _formatted(board)
    out = ["<h3>Leaderboard</h3>", '<table class="leaderboard"><thead><tr>'
           + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr></thead><tbody>"]
    missing = ' class="missing"'
    for line in lines:
        cells = "".join(f"<td{missing if v == MISSING else ''}>{html.escape(v)}</td>" for v in line[1:])
        out.append(f"<tr><th>{html.escape(line[0])}</th>{cells}</tr>")
    out.append("</tbody></table>")
    out += [f'<p class="note">{html.escape(text)}</p>' for text in _legend(board)]
    return "\n".join(out)
