"""Report figures with matplotlib (Agg, no display): SMIS grids, mCSD vs mOCD, FID vs FPS, diversity bars.

Each function returns PNG bytes, or None when the table holds nothing to plot, so a report never
draws a point it did not measure (the paper's points are drawn hollow and labelled as such).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from smisbench.benchmark.catalog import catalog
from smisbench.benchmark.paper import Column
from smisbench.reports.tables import ReportTable


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _png(fig: Any, tight: bool = True) -> bytes:
    plt = _pyplot()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight" if tight else None, metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def _points(table: ReportTable, x: Column, y: Column, paper: bool) -> list[tuple[str, float, float]]:
    out = []
    for row in table.rows:
        get = table.paper_value if paper else table.our_value
        a, b = get(row, x), get(row, y)
        if a is not None and b is not None:
            out.append((row, a, b))
    return out


def _datasets_with(table: ReportTable, *values: str) -> list[str]:
    have = {(c.dataset, c.value) for c in table.columns}
    datasets = list(dict.fromkeys(c.dataset for c in table.columns))
    return [d for d in datasets if all((d, v) in have for v in values)]


def _wide(values: list[float]) -> bool:
    """Values spanning more than ~1.5 decades read better on a log axis."""
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and len(values) > 1 and max(positive) / min(positive) > 30


def scatter(table: ReportTable, x_value: str, y_value: str, title: str, log_x: bool = False,
            log_y: bool = False) -> bytes | None:
    """Ours (filled) and the paper's (hollow) points of two values, one panel per dataset."""
    datasets = _datasets_with(table, x_value, y_value)
    panels = []
    for dataset in datasets:
        x, y = Column(dataset, x_value), Column(dataset, y_value)
        ours, paper = _points(table, x, y, False), _points(table, x, y, True)
        if ours or paper:
            panels.append((dataset, ours, paper))
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.2), squeeze=False)
    colors = {row: plt.cm.tab10(i % 10) for i, row in enumerate(table.rows)}
    xi, yi = catalog().value(x_value), catalog().value(y_value)
    for ax, (dataset, ours, paper) in zip(axes[0], panels):
        for row, a, b in paper:
            ax.scatter([a], [b], s=60, facecolors="none", edgecolors=[colors[row]], linewidths=1.5)
            ax.annotate(f"{row} (paper)", (a, b), textcoords="offset points", xytext=(5, -10), fontsize=7,
                        color="0.35")
        for row, a, b in ours:
            ax.scatter([a], [b], s=60, color=colors[row])
            ax.annotate(row, (a, b), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xlabel(f"{xi.label} ({xi.direction} is better)")
        ax.set_ylabel(f"{yi.label} ({yi.direction} is better)")
        ax.set_title(f"{title} — {table.dataset_labels.get(dataset, dataset)}", fontsize=10)
        if log_x and _wide([p[1] for p in ours + paper]):
            ax.set_xscale("log")
        if log_y and _wide([p[2] for p in ours + paper]):
            ax.set_yscale("log")
        ax.grid(alpha=0.3)
        if paper:
            ax.scatter([], [], facecolors="none", edgecolors="0.4", label="paper")
        if ours:
            ax.scatter([], [], color="0.4", label="ours (measured)")
        ax.legend(fontsize=7, loc="best")
    return _png(fig)


def mcsd_vs_mocd(table: ReportTable) -> bytes | None:
    """SMIS quality: high mCSD (redrawn class changes) and low mOCD (other classes stay) is the goal."""
    return scatter(table, "mocd", "mcsd", "mCSD vs mOCD", log_x=True)


def fid_vs_fps(table: ReportTable) -> bytes | None:
    return scatter(table, "fps", "fid", "FID vs FPS", log_x=True)


def diversity_bars(table: ReportTable) -> bytes | None:
    """Grouped bars of LPIPS, mCSD and mOCD per model (ours only), one panel per value."""
    values = [v for v in ("lpips", "mcsd", "mocd") if any(c.value == v for c in table.columns)]
    series = []
    for value in values:
        column = next(c for c in table.columns if c.value == value)
        heights = [table.our_value(r, column) for r in table.rows]
        if any(h is not None for h in heights):
            series.append((value, heights))
    if not series:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(series), figsize=(3.8 * len(series), 3.6), squeeze=False)
    for ax, (value, heights) in zip(axes[0], series):
        info = catalog().value(value)
        positions = np.arange(len(table.rows))
        shown = [np.nan if h is None else h for h in heights]
        ax.bar(positions, shown, color=[plt.cm.tab10(i % 10) for i in range(len(table.rows))])
        for p, h in zip(positions, heights):
            if h is None:
                ax.text(p, 0, "missing", rotation=90, ha="center", va="bottom", fontsize=7, color="0.4")
        ax.set_xticks(positions, table.rows, rotation=30, ha="right", fontsize=8)
        ax.set_title(f"{info.label} ({info.direction} is better)", fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def _tint(label: np.ndarray, palette: np.ndarray, highlight: int | None) -> np.ndarray:
    rgb = palette[np.clip(label, 0, len(palette) - 1)].astype(np.float32)
    if highlight is not None:
        faded = label != highlight
        rgb[faded] = rgb[faded] * 0.3 + 255 * 0.7  # other classes fade towards white
    return rgb.astype(np.uint8)


def smis_grid_figure(grid: dict[str, np.ndarray], title: str) -> bytes:
    """As the paper's Figure 1: the first row shows the label map with column c's class highlighted,
    each later row one sample where only that class's code was redrawn (the whole code for models
    without per-class codes, as in the paper's Figure 4)."""
    images, label, palette = grid["images"], grid["label"], grid["palette"]
    rows, cols = images.shape[:2]
    names = [str(n) for n in grid["class_names"]]
    per_class = bool(grid["per_class"])
    plt = _pyplot()
    size = 1.45
    fig, axes = plt.subplots(rows + 1, cols + 1, figsize=(size * (cols + 1), size * (rows + 1) + 0.5),
                             squeeze=False)
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    axes[0][0].imshow(_tint(label, palette, None), interpolation="nearest")
    axes[0][0].set_title("label map", fontsize=8)
    axes[1][0].imshow(grid["base"], interpolation="nearest")
    axes[1][0].set_title("base code", fontsize=8)
    for c in range(cols):
        axes[0][c + 1].imshow(_tint(label, palette, int(grid["classes"][c])), interpolation="nearest")
        axes[0][c + 1].set_title(f"redraw: {names[c]}" if per_class else f"{names[c]} (whole code)", fontsize=8)
        for r in range(rows):
            axes[r + 1][c + 1].imshow(images[r, c], interpolation="nearest")
    for r in range(rows):
        axes[r + 1][1].set_ylabel(f"sample {r + 1}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.03, right=0.99, bottom=0.01, top=1 - 0.5 / (size * (rows + 1) + 0.5),
                        wspace=0.06, hspace=0.22)
    return _png(fig, tight=False)  # fixed layout: one draw instead of two
