"""``smisbench report``: the paper's tables regenerated from a results store, in every format;
``smisbench demo``: the demo spec run into a store and reported in one command."""

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

    demo = sub.add_parser("demo", help="the main job: score the reference zoo on synthetic data, write a report",
                          description="Composes the shipped demo spec with the zoo (smisbench/zoo), runs it into "
                                      "OUT/demo.sqlite and writes the report (Markdown, HTML, plots) into OUT: "
                                      "real-data rows, the paper's findings, mixture/morphing figures. CPU only; "
                                      "resumes when rerun.")
    demo.add_argument("--out", default="reports/demo", help="report folder (default: reports/demo)")
    demo.add_argument("--device", help="override the demo's device (default: cpu)")
    demo.add_argument("--spec", default="demo", help="another spec to run the same way (default: demo)")
    demo.add_argument("--executor", help="MODULE:FUNCTION to compute cells instead of the built-in executor")
    demo.add_argument("--no-provision", action="store_true",
                      help="do not install the pinned metric weights first (they must be there already)")
    demo.add_argument("--no-progress", action="store_true", help="no progress bars")
    demo.add_argument("--retrain", action="store_true",
                      help="rebuild the zoo from its manifests into OUT/zoo first (hours on CPU), then score it")
    demo.add_argument("--zoo-dir", help="zoo folder to score (default: the shipped smisbench/zoo/checkpoints)")
    demo.add_argument("--skip-real-rows", action="store_true",
                      help="do not compute the real-data rows (quick looks and tests; the report says so)")
    demo.add_argument("--no-figures", action="store_true", help="no mixture/morphing figures")
    demo.set_defaults(func=_demo)


def _report(args: argparse.Namespace) -> int:
    from pathlib import Path

    from smisbench.benchmark.store import Store
    from smisbench.reports.build import report_tables, write_report

    with Store(args.store, readonly=True) as store:  # a report never creates or changes the store
        tables = report_tables(store, args.table)
        written = write_report(store, args.out, tables, args.title)
    print(f"wrote {len(written)} files for {', '.join(tables)} to {args.out} (open {Path(args.out) / 'index.html'})")
    return 0


def _demo(args: argparse.Namespace) -> int:
    from smisbench.benchmark.cli import load_executor
    from smisbench.benchmark.spec import load_spec
    from smisbench.reports.demo import run_demo

    result = run_demo(args.out, load_executor(args.executor), args.device, load_spec(args.spec),
                      provision=not args.no_provision, progress=not args.no_progress, retrain=args.retrain,
                      zoo_dir=args.zoo_dir, real_rows=not args.skip_real_rows, figures=not args.no_figures)
    return 0 if result.summary.ok else 1
