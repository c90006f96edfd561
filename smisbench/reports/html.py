"""One static, self-contained HTML page: tables, claims, plots and grids with images embedded (base64).

No scripts, no external files or fonts: it opens from disk, in a mail attachment or a CI artifact.
"""

from __future__ import annotations

import base64
import html

import pandas as pd

from smisbench.reports.leaderboard import leaderboard_html
from smisbench.reports.tables import to_html

# The header colour is distinctive on purpose: the browser test finds the rendered tables by it.
TABLE_HEADER_RGB = (35, 61, 99)

_CSS = """
body { font-family: sans-serif; margin: 24px; color: #1d1d1d; max-width: none; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 36px; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 12px 0; font-size: 13px; }
th, td { border: 1px solid #c9c9c9; padding: 3px 8px; text-align: right; }
thead th { background: rgb(%d, %d, %d); color: #ffffff; text-align: center; }
tbody th { text-align: left; background: #f3f3f3; }
td.missing { color: #9a9a9a; }
td.paper-only { color: #9a9a9a; font-style: italic; }
table.provenance { font-size: 11px; }
figure { margin: 16px 0; } figcaption { font-size: 12px; color: #555; }
img { display: block; }
.claim-holds { color: #11661f; } .claim-fails { color: #a31616; } .claim-missing { color: #777; }
.note { font-size: 12px; color: #444; }
""" % TABLE_HEADER_RGB


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _frame_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return ""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in frame.columns)
    body = []
    for values in frame.itertuples(index=False):
        cells = "".join(f"<td>{'—' if v is None or (isinstance(v, float) and pd.isna(v)) else html.escape(str(v))}"
                        "</td>" for v in values)
        body.append(f"<tr>{cells}</tr>")
    return f'<table class="provenance"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


def _provenance_table(frame: pd.DataFrame) -> str:
    if frame.empty:
        return ""
    return f"<details><summary>Provenance of our numbers</summary>{_frame_table(frame)}</details>"


def render_html(report) -> str:
    """The page for a :class:`smisbench.reports.build.Report`."""
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
             f"<title>{html.escape(report.title)}</title><style>{_CSS}</style></head><body>",
             f"<h1>{html.escape(report.title)}</h1>",
             f'<p class="note">Generated {html.escape(report.created_at)} from '
             f"<code>{html.escape(report.store)}</code>. — marks a value that was not measured.</p>"]
    parts += [f"<p>{html.escape(paragraph)}</p>" for paragraph in getattr(report, "preface", [])]
    for section in report.sections:
        table = section.table
        parts.append(f'<section id="{html.escape(table.name)}"><h2>{html.escape(table.title)}</h2>')
        parts.append(to_html(table))
        if table.caption is not None:
            parts.append(f'<p class="note">{html.escape(table.caption)}</p>')
        elif table.has_paper:
            parts.append(f'<p class="note">ours | paper ({html.escape(table.paper.source)}) | Δ = ours − paper</p>')
        for note in table.notes + section.notes:
            parts.append(f'<p class="note">{html.escape(note)}</p>')
        if section.leaderboard is not None:
            parts.append(leaderboard_html(section.leaderboard))
        if section.claims:
            items = []
            for claim in section.claims:
                css = {"holds": "claim-holds", "does not hold": "claim-fails"}.get(claim.verdict, "claim-missing")
                items.append(f'<li class="{css}">{html.escape(claim.sentence())}</li>')
            parts.append(f"<h3>Claims checked on the measured numbers</h3><ul>{''.join(items)}</ul>")
        for fig in section.plots + section.grids:
            caption = html.escape(fig.title + (f" — {fig.caption}" if fig.caption else ""))
            parts.append(f"<figure>{_img(fig.png, fig.title)}<figcaption>{caption}</figcaption></figure>")
        parts.append(_provenance_table(section.provenance))
        parts.append("</section>")
    for title, frame in getattr(report, "frames", []):
        parts.append(f"<h2>{html.escape(title)}</h2>" + _frame_table(frame))
    for fig in getattr(report, "figures", []):
        caption = html.escape(fig.title + (f" — {fig.caption}" if fig.caption else ""))
        parts.append(f"<figure>{_img(fig.png, fig.title)}<figcaption>{caption}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
