"""Report tables from the store: our value, the paper's value and the difference, per model and column.

A value the store does not hold is missing (shown "—", empty in CSV) and never filled in;
the paper's numbers come only from ``paper_numbers.toml``. A value measured with several seeds
(``seeds = K``) is their mean, shown "mean ± std", with the bootstrap 95 % interval over seeds
(``smisbench.benchmark.uncertainty``) in the CSV. A value nothing computes (SHE, the paper's
human study) is a reference column: the paper's number beside "paper only", never ours.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from smisbench.benchmark.catalog import catalog
from smisbench.benchmark.paper import Column, PaperTable, paper_tables
from smisbench.benchmark.store import Store
from smisbench.benchmark.uncertainty import Spread, describe, summarise
from smisbench.formatting import PLUS_MINUS, mean_std
from smisbench.metrics.protocol import MASK_MODE_MEANING

MISSING = "—"
PAPER_ONLY = "paper only"  # our cell of a value nothing computes (SHE)
PAPER_ONLY_STATUS = "paper only, never computed"
MASKED_VALUES = ("mcsd", "mocd")  # values whose number depends on the protocol's mask_mode


@dataclass
class ReportTable:
    """One table's numbers in the paper's units, with where each of ours came from."""

    name: str
    title: str
    rows: list[str]
    columns: list[Column]
    dataset_labels: dict[str, str]
    ours: dict[tuple[str, Column], float] = field(default_factory=dict)
    sources: dict[tuple[str, Column], dict] = field(default_factory=dict)  # run/cell of each of our values
    paper: PaperTable | None = None
    notes: list[str] = field(default_factory=list)
    spreads: dict[tuple[str, Column], Spread] = field(default_factory=dict)  # over seeds, in the paper's units
    seed_sources: dict[tuple[str, Column], list[dict]] = field(default_factory=dict)  # every seed's row
    caption: str | None = None  # the sentence under the table (default: what ours/paper/Δ and — mean)

    def spread(self, row: str, column: Column) -> Spread | None:
        """Our value over seeds (None when it is missing)."""
        return self.spreads.get((row, column)) if self.our_value(row, column) is not None else None

    @property
    def seeded(self) -> bool:
        """Whether any value of ours was measured with two seeds or more."""
        return any(s.n > 1 for s in self.spreads.values())

    def source_rows(self) -> list[tuple[str, dict]]:
        """(row, stored result) of every cell behind our values, every seed's included."""
        return [(row, source) for (row, _), sources in self.seed_sources.items() for source in sources]

    def paper_only(self, column: Column) -> bool:
        return not catalog().value(column.value).computable

    @property
    def has_paper(self) -> bool:
        return self.paper is not None

    def paper_value(self, row: str, column: Column) -> float | None:
        return None if self.paper is None else self.paper.value(row, column)

    def our_value(self, row: str, column: Column) -> float | None:
        value = self.ours.get((row, column))
        return None if value is None or not math.isfinite(value) else value

    def column_label(self, column: Column) -> str:
        label = catalog().value(column.value).label
        if len({c.dataset for c in self.columns}) > 1:
            return f"{self.dataset_labels.get(column.dataset, column.dataset)} {label}"
        return label

    def measured(self) -> int:
        return sum(self.our_value(r, c) is not None for r in self.rows for c in self.columns)


def _value_order(key: str) -> int:
    keys = list(catalog().values)
    return keys.index(key) if key in keys else len(keys)


def mask_mode_notes(store: Store, results: list[dict]) -> list[str]:
    """Name the mCSD/mOCD mask mode the table's numbers were measured under (and warn when rows differ)."""
    rows: dict[str, set[str]] = {}
    modes: dict[int, str] = {}
    for result in results:
        if result["metric"] in MASKED_VALUES:
            if result["cell_id"] not in modes:
                protocol = store.cell(result["cell_id"])["protocol"]
                modes[result["cell_id"]] = str(protocol.get("mask_mode", "not recorded"))
            rows.setdefault(modes[result["cell_id"]], set()).add(result["model_label"])
    described = {mode: f"{mode} ({MASK_MODE_MEANING.get(mode, 'unknown mode')})" for mode in rows}
    if len(rows) == 1:
        return [f"mCSD/mOCD: mask_mode = {next(iter(described.values()))}."]
    if not rows:
        return []
    groups = "; ".join(f"{described[mode]}: {', '.join(sorted(labels))}" for mode, labels in sorted(rows.items()))
    return [f"mCSD/mOCD rows were measured under different mask modes, not comparable with each other: {groups}."]


def build_table(store: Store, name: str) -> ReportTable:
    """The table ``name`` from the newest values in the store, beside the paper's table of that name."""
    paper = paper_tables().get(name)
    dataset_labels: dict[str, str] = {}
    rows: list[str] = list(paper.rows) if paper else []
    columns: list[Column] = list(paper.columns) if paper else []
    ours: dict[tuple[str, Column], float] = {}
    sources: dict[tuple[str, Column], dict] = {}
    extra_columns: list[Column] = []
    failed: dict[tuple[str, int], str] = {}
    seeds_asked: dict[str, set[int]] = {}
    for asked in store.table_cells(name):  # rows and columns for everything asked, measured or not
        dataset_labels.setdefault(asked["dataset_id"], asked["dataset_label"])
        if asked["model_label"] not in rows:
            rows.append(asked["model_label"])
        for key in catalog().produces([m for m in asked["metrics"] if m in catalog().metrics]):
            column = Column(asked["dataset_id"], key)
            if column not in columns and column not in extra_columns:
                extra_columns.append(column)
        where = f"{asked['model_label']} @ {asked['dataset_label']}"
        seeds_asked.setdefault(where, set()).add(asked["seed"])
        if asked["status"] == "failed":
            failed[(where, asked["seed"])] = asked["error"].splitlines()[0] if asked["error"] else "failed"
        else:
            failed.pop((where, asked["seed"]), None)
    spreads: dict[tuple[str, Column], Spread] = {}
    seed_sources: dict[tuple[str, Column], list[dict]] = {}
    ignored: set[str] = set()
    by_seed = sorted(store.table_seed_results(name).values(),
                     key=lambda group: (min(r["cell_index"] for r in group), group[0]["run_id"]))
    for seed_rows in by_seed:  # one group per model, dataset and value: the newest run's seeds
        result = seed_rows[0]
        column = Column(result["dataset_id"], result["metric"])
        info = catalog().value(result["metric"])
        if not info.computable:  # an executor that stored one: not ours to show
            ignored.add(info.label)
            continue
        dataset_labels.setdefault(result["dataset_id"], result["dataset_label"])
        if result["model_label"] not in rows:
            rows.append(result["model_label"])
        if column not in columns and column not in extra_columns:
            extra_columns.append(column)
        spread = summarise(r["value"] for r in seed_rows)
        where = (result["model_label"], column)
        ours[where] = math.nan if spread is None else info.display(spread.mean)
        if spread is not None:
            spreads[where] = spread.scaled(info.scale)
        sources[where] = result
        seed_sources[where] = list(seed_rows)
    dataset_order = list(dict.fromkeys([c.dataset for c in columns] + [c.dataset for c in extra_columns]))
    extra_columns.sort(key=lambda c: (dataset_order.index(c.dataset), _value_order(c.value), c.value))
    columns += extra_columns
    for column in columns:
        dataset_labels.setdefault(column.dataset, column.dataset)
    notes = (list(paper.notes) if paper else []) + mask_mode_notes(store, list(sources.values()))
    for label in sorted(ignored):
        notes.append(f"{label} is never computed; a stored value for it was left out (the column is the paper's).")
    for (where, seed), error in failed.items():
        which = f"{where} seed {seed}" if len(seeds_asked[where]) > 1 else where
        notes.append(f"{which}: the newest attempt failed ({error}); its values are missing.")
    if not by_seed:
        notes.insert(0, "The store holds no runs for this table yet: every one of our cells is missing.")
    title = paper.title if paper else f"{name}: measured results"
    table = ReportTable(name, title, rows, columns, dataset_labels, ours, sources, paper, notes, spreads,
                        seed_sources)
    if table.seeded:
        notes.append(f"Values measured with several seeds: {describe()}")
    return table


def long_frame(table: ReportTable) -> pd.DataFrame:
    """One row per (model, column): ours, paper, difference, status and where ours came from.

    ``ours`` is the mean over seeds; ``seeds`` how many there were, ``std`` their sample std and
    ``ci_low``/``ci_high`` the bootstrap 95 % interval of the mean over seeds (empty with one seed).
    """
    records = []
    for row in table.rows:
        for column in table.columns:
            info = catalog().value(column.value)
            ours, paper = table.our_value(row, column), table.paper_value(row, column)
            if ours is not None:
                status = "measured"
            elif not info.computable:
                status = PAPER_ONLY_STATUS if paper is not None else "never computed"
            else:
                status = "missing"
            source = table.sources.get((row, column), {})
            spread = table.spread(row, column)
            records.append({
                "table": table.name, "model": row, "dataset": column.dataset, "metric": column.value,
                "label": table.column_label(column), "ours": ours, "paper": paper,
                "difference": None if ours is None or paper is None else ours - paper,
                "status": status, "run_id": source.get("run_id"), "cell_id": source.get("cell_id"),
                "seeds": None if spread is None else spread.n, "std": None if spread is None else spread.std,
                "ci_low": None if spread is None else spread.low, "ci_high": None if spread is None else spread.high,
            })
    frame = pd.DataFrame.from_records(records, columns=[
        "table", "model", "dataset", "metric", "label", "ours", "paper", "difference", "status", "run_id", "cell_id",
        "seeds", "std", "ci_low", "ci_high"])
    for col in ("ours", "paper", "difference", "std", "ci_low", "ci_high"):
        frame[col] = pd.to_numeric(frame[col])
    frame["seeds"] = frame["seeds"].astype("Int64")
    frame["run_id"] = frame["run_id"].astype("Int64")
    frame["cell_id"] = frame["cell_id"].astype("Int64")
    return frame


def _fmt(value: float | None, info, signed: bool = False) -> str:
    """A value with its column's decimals, more for a small non-zero one (a 0.004 M parameter count)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    digits = info.decimals(value)
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _fixed(value: float | None, digits: int) -> str:
    """A value with a fixed number of decimals (tables whose unit is not a catalogue value: IoU in %)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return MISSING
    return f"{value:.{digits}f}"


def _ours(table: ReportTable, row: str, column: Column, info) -> str:
    """Our cell: the value, "mean ± std" over several seeds, or "paper only" for a value nothing computes."""
    if table.paper_only(column):
        return PAPER_ONLY
    spread = table.spread(row, column)
    if spread is not None and spread.std is not None:
        digits = info.decimals(spread.mean)
        return mean_std(f"{spread.mean:.{digits}f}", f"{spread.std:.{digits}f}")
    return _fmt(table.our_value(row, column), info)


def display_frame(table: ReportTable) -> pd.DataFrame:
    """Formatted strings, wide: per column "ours", and where the paper has the table, "paper" and "Δ"."""
    data: dict[tuple[str, str], list[str]] = {}
    for column in table.columns:
        info = catalog().value(column.value)
        label = table.column_label(column)
        ours = [_ours(table, r, column, info) for r in table.rows]
        if table.has_paper:
            paper = [_fmt(table.paper_value(r, column), info) for r in table.rows]
            diffs = []
            for r in table.rows:
                a, b = table.our_value(r, column), table.paper_value(r, column)
                diffs.append(_fmt(None if a is None or b is None else a - b, info, signed=True))
            data[(label, "ours")], data[(label, "paper")], data[(label, "Δ")] = ours, paper, diffs
        else:
            data[(label, "ours")] = ours
    frame = pd.DataFrame(data, index=pd.Index(table.rows, name="model"))
    frame.columns = pd.MultiIndex.from_tuples(frame.columns)
    return frame


def _flat_headers(table: ReportTable, frame: pd.DataFrame) -> list[str]:
    if not table.has_paper:
        return [label for label, _ in frame.columns]
    return [label if part == "ours" else (f"{label} paper" if part == "paper" else f"Δ {label}")
            for label, part in frame.columns]


def _md_escape(text: str) -> str:
    return str(text).replace("|", "\\|")


def to_markdown(table: ReportTable) -> str:
    """A GitHub Markdown table (numbers right-aligned) followed by the notes."""
    frame = display_frame(table)
    headers = ["model"] + _flat_headers(table, frame)
    lines = ["| " + " | ".join(_md_escape(h) for h in headers) + " |",
             "| --- | " + " | ".join("---:" for _ in headers[1:]) + " |"]
    for label, values in zip(frame.index, frame.itertuples(index=False)):
        lines.append("| " + " | ".join([_md_escape(label)] + [str(v) for v in values]) + " |")
    out = [f"### {table.title}", "", *lines, ""]
    if table.caption is not None:
        out.append(table.caption)
    elif table.has_paper:
        out.append(f"Ours, the paper's ({table.paper.source}) and Δ = ours − paper; {MISSING} = not measured"
                   + _legend(table) + ".")
    else:
        out.append(f"Measured values; {MISSING} = not measured" + _legend(table) + ".")
    out += [f"- {note}" for note in table.notes]
    return "\n".join(out) + "\n"


def _legend(table: ReportTable) -> str:
    """The rest of a table's key: what "paper only" and "±" mean where the table has them."""
    parts = []
    if any(table.paper_only(c) for c in table.columns):
        parts.append(f"{PAPER_ONLY} = carried from the paper, never computed")
    if table.seeded:
        parts.append("a ± b = mean ± std over seeds")
    return "".join(f"; {p}" for p in parts)


_LATEX_SPECIAL = {"&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_", "{": r"\{", "}": r"\}",
                  "~": r"\textasciitilde{}", "^": r"\textasciicircum{}", "\\": r"\textbackslash{}"}


def latex_escape(text: str) -> str:
    out = "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text))
    out = out.replace("->", r"$\rightarrow$").replace(MISSING, "--").replace("Δ", r"$\Delta$").replace("−", "-")
    return out.replace(PLUS_MINUS, r"$\pm$")


def to_latex(table: ReportTable) -> str:
    """A booktabs table; with the paper, each column spans ours / paper / Δ."""
    frame = display_frame(table)
    labels = list(dict.fromkeys(label for label, _ in frame.columns))
    per = 3 if table.has_paper else 1
    lines = [r"\begin{table}[t]", r"\centering", r"\small",
             r"\begin{tabular}{l" + "r" * (len(labels) * per) + "}", r"\toprule"]
    if table.has_paper:
        lines.append("Model & " + " & ".join(rf"\multicolumn{{3}}{{c}}{{{latex_escape(lbl)}}}" for lbl in labels)
                     + r" \\")
        lines.append(" ".join(rf"\cmidrule(lr){{{2 + 3 * i}-{4 + 3 * i}}}" for i in range(len(labels))))
        lines.append(" & " + " & ".join(["ours", "paper", r"$\Delta$"] * len(labels)) + r" \\")
    else:
        lines.append("Model & " + " & ".join(latex_escape(lbl) for lbl in labels) + r" \\")
    lines.append(r"\midrule")
    for label, values in zip(frame.index, frame.itertuples(index=False)):
        lines.append(" & ".join([latex_escape(label)] + [latex_escape(v) for v in values]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}",
              rf"\caption{{{latex_escape(table.title)}. -- = not measured{latex_escape(_legend(table))}.}}",
              rf"\label{{tab:smisbench-{latex_escape(table.name)}}}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def to_csv(table: ReportTable) -> str:
    """Long CSV (one row per model and column); missing numbers are empty fields, never zeros."""
    return long_frame(table).to_csv(index=False, float_format="%.10g")


def to_html(table: ReportTable) -> str:
    """An HTML table (class ``results``) for the static report."""
    import html

    frame = display_frame(table)
    labels = list(dict.fromkeys(label for label, _ in frame.columns))
    out = ['<table class="results">', "<thead>"]
    if table.has_paper:
        out.append('<tr><th rowspan="2">model</th>' + "".join(
            f'<th colspan="3">{html.escape(lbl)}</th>' for lbl in labels) + "</tr>")
        out.append("<tr>" + "<th>ours</th><th>paper</th><th>Δ</th>" * len(labels) + "</tr>")
    else:
        out.append("<tr><th>model</th>" + "".join(f"<th>{html.escape(lbl)}</th>" for lbl in labels) + "</tr>")
    out.append("</thead><tbody>")
    for label, values in zip(frame.index, frame.itertuples(index=False)):
        cells = []
        for value in values:
            css = {MISSING: ' class="missing"', PAPER_ONLY: ' class="paper-only"'}.get(value, "")
            cells.append(f"<td{css}>{html.escape(str(value))}</td>")
        out.append(f"<tr><th>{html.escape(label)}</th>{''.join(cells)}</tr>")
    out.append("</tbody></table>")
    return "\n".join(out)


# ----------------------------------------------------------------------------- per-class IoU
def per_class_iou_markdown(source, class_names=None, rule: str | None = None, digits: int = 1) -> str:
    """Per-class IoU and accuracy (percent) and pixel counts as a Markdown table, from the one confusion matrix.

    ``source``: a :class:`~smisbench.segmenters.confusion.ConfusionMatrix`, or an evaluation's
    ``details`` (its ``segmentation_confusion`` entry: the matrix, class names and absent-class
    rule the mIoU was computed with). The last row is the mIoU under that rule (``rule`` overrides).
    """
    from smisbench.segmenters.confusion import ConfusionMatrix

    if isinstance(source, dict):
        stored = source.get("segmentation_confusion", source)
        if "matrix" not in stored:
            from smisbench.errors import SmisbenchError

            raise SmisbenchError("these details hold no confusion matrix (no `segmentation_confusion`)",
                                 "evaluate with the miou or accuracy metric first")
        confusion = ConfusionMatrix.from_dict(stored)
        class_names = class_names or stored.get("classes")
        rule = rule or stored.get("absent_class_rule")
    else:
        confusion = source
    rule = rule or "nanmean"
    table = confusion.per_class_table(class_names)
    lines = ["| id | class | IoU (%) | accuracy (%) | ground-truth pixels | predicted pixels |",
             "| ---: | --- | ---: | ---: | ---: | ---: |"]
    for row in table.itertuples(index=False):
        lines.append(f"| {row.class_id} | {_md_escape(row.name)} | {_fixed(100 * row.iou, digits)} | "
                     f"{_fixed(100 * row.accuracy, digits)} | {row.gt_pixels} | {row.pred_pixels} |")
    lines.append(f"| | **mIoU** ({rule}) | {_fixed(100 * confusion.mean_iou(rule), digits)} | "
                 f"{_fixed(100 * confusion.pixel_accuracy(), digits)} (pixel accuracy) | {confusion.total} | |")
    lines.append("")
    lines.append(f"{MISSING}: IoU undefined (the class is in neither the ground truth nor the predictions) or "
                 "accuracy undefined (not in the ground truth); one dataset-level confusion matrix, pixels "
                 f"with ignore index {confusion.ignore_index} left out.")
    return "\n".join(lines) + "\n"
