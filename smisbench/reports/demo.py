"""The demo main job: provision weights, run the shipped demo spec into a store, write the report.

``smisbench demo --out reports/demo`` trains tiny models on the embedded synthetic data, scores
them with every metric, and writes ``report.md``, ``index.html`` and the plots into ``--out``;
the store (``demo.sqlite``) sits beside them, so a rerun resumes and only redoes what is missing.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO

from smisbench.benchmark.cells import RunOptions
from smisbench.benchmark.runner import Executor, RunSummary, run_spec
from smisbench.benchmark.spec import BenchmarkSpec, load_spec
from smisbench.benchmark.store import Store
from smisbench.benchmark.validate import check_spec

STORE_NAME = "demo.sqlite"


@dataclass
class DemoResult:
    summary: RunSummary
    store: Path
    written: dict[str, Path]


def provision_weights(progress: bool = True) -> None:
    """Install (or verify) the pinned LPIPS and FID weights before anything is scored."""
    from smisbench.weights import install

    install(progress=progress)


def run_demo(out: str | Path, executor: Executor | None = None, device: str | None = None,
             spec: BenchmarkSpec | None = None, provision: bool = True, progress: bool = True,
             stream: TextIO | None = None) -> DemoResult:
    """Run the demo spec into ``out/demo.sqlite`` and write the report into ``out``.

    Finished cells that lack a value (a metric missing from an older installation) are redone,
    so the report is as complete as this installation can make it.
    """
    from smisbench.reports.build import write_report

    stream = stream or sys.stdout
    out = Path(out)
    spec = spec or load_spec("demo")
    options = RunOptions(data_root=out / "data", device=device)
    check_spec(spec, options)  # before the report folder, the weights or the store are made
    out.mkdir(parents=True, exist_ok=True)
    if provision:
        provision_weights(progress)
    with Store(out / STORE_NAME) as store:
        summary = run_spec(spec, store, executor, options,
                           progress=progress, stream=stream, command="smisbench demo", redo_incomplete=True)
        written = write_report(store, out, [spec.table], title=f"smisbench demo: {spec.description}")
    print(f"report: {out / 'report.md'} and {out / 'index.html'}", file=stream)
    return DemoResult(summary, out / STORE_NAME, written)
