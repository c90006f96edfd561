"""``smisbench report``: the paper's tables regenerated from a results store, in every format."""

from __future__ import annotations

import argparse
import os


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "report", help="write tables (Markdown, LaTeX, CSV), plots and one HTML page from a results store",
        description="Regenerate the paper's tables from the store: our numbers beside the paper's with "
                    "differences; missing cells are shown as missing.")
    parser.add_argument("--store", default=os.environ.get("SMISBENCH_STORE", "smisbench.sqlite"),
                        help="results store file (default: $SMISBENCH_STORE or ./smisbench.sqlite)")
    parser.add_argument("--out", required=True, help="folder to write the report into")
    parser.add_argument("--table", default="all",
                        help="table1, table2, ablations, another table name in the store (e.g. demo), or all")
    parser.add_argument("--title", default="smisbench report")
    parser.set_defaults(func=_report)


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from smisbench.benchmark.store import Store
    from smisbench.reports.build import report_tables, write_report

    with Store(args.store, readonly=True) as store:  # a report never creates or changes the store
        tables = report_tables(store, args.table)
        written = write_report(store, args.out, tables, args.title)
    print(f"wrote {len(written)} files for {', '.join(tables)} to {args.out} (open {Path(args.out) / 'index.html'})")
    return 0
