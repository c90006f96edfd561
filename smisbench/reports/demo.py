"""The demo main job: provision weights, compose the demo spec with the zoo, run it, write the report.

``smisbench demo --out reports/demo`` scores the zoo's shipped checkpoints (``smisbench/zoo``) on the
embedded synthetic data with every metric, adds the real-data rows (the data scored by the same
code), checks the paper's findings, draws the applications figures from the zoo's GroupDNet, and
writes ``report.md``, ``index.html`` and the plots into ``--out``; the store (``demo.sqlite``) sits
beside them, so a rerun resumes. Rows the zoo has no usable checkpoint for are trained now for a few
steps (GroupDNet, VSPADE, GroupNet) or left out, and the report says which. ``--retrain`` rebuilds the
zoo from its manifests into ``--out/zoo`` first (hours on CPU) and scores that.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from smisbench.benchmark.cells import RunOptions, canonical_json
from smisbench.benchmark.runner import Executor, RunSummary, run_spec
from smisbench.benchmark.spec import BenchmarkSpec, load_spec
from smisbench.benchmark.store import Store
from smisbench.benchmark.validate import check_spec
from smisbench.errors import SmisbenchError
from smisbench.reports.demo_spec import FALLBACK, FALLBACK_TRAIN, Row, compose

STORE_NAME = "demo.sqlite"
REAL_ROWS_FILE = "real_rows.json"


@dataclass
class DemoResult:
    summary: RunSummary
    store: Path
    written: dict[str, Path]
    rows: dict[str, Row] = field(default_factory=dict)
    wall_s: float = 0.0


def provision_weights(progress: bool = True) -> None:
    """Install (or verify) the pinned LPIPS and FID weights before anything is scored."""
    from smisbench.weights import install

    install(progress=progress)


def resolve_rows(zoo, folder: Path) -> tuple[dict[str, Row], Path | None, dict | None]:
    """Each zoo row's source in ``folder`` (sha256-checked, current definition), and the usable segmenter."""
    from smisbench.zoo.store import checkpoint_path
    from smisbench.zoo.verify import verify

    checks = {c.id: c for c in verify(zoo, folder, load=False)[0]}  # the executor loads each file strictly
    rows = {}
    for m in zoo.models:
        check = checks[m.id]
        why = check.status + (f": {check.detail}" if check.detail else "")
        if check.usable:
            rows[m.id] = Row(m.id, m.label, "shipped", checkpoint_path(folder, m.id), check.manifest, check.detail)
        elif m.id in FALLBACK:
            rows[m.id] = Row(m.id, m.label, "fallback", None, None,
                             f"zoo checkpoint {why}; trained now for {FALLBACK_TRAIN.steps} steps")
        else:
            rows[m.id] = Row(m.id, m.label, "missing", None, None, f"zoo checkpoint {why}; left out")
    seg = checks[zoo.segmenter.id]
    if seg.usable:
        return rows, checkpoint_path(folder, zoo.segmenter.id), seg.manifest
    return rows, None, None


def retrain_zoo(zoo, shipped: Path, out: Path, device: str, progress: bool, stream: TextIO) -> float:
    """Train every zoo entry into ``out/zoo`` with its shipped manifest's settings (the definition's when the
    entry has no current manifest); returns the wall time."""
    from smisbench.zoo import train
    from smisbench.zoo.cli import default_protocol
    from smisbench.zoo.definition import TrainSettings, settings_for
    from smisbench.zoo.verify import verify

    checks = {c.id: c for c in verify(zoo, shipped, load=False)[0]}
    plans = [TrainSettings.from_dict(checks[i].manifest["train"]) if checks[i].usable else settings_for(zoo, i)
             for i in zoo.ids]
    started = time.perf_counter()
    train.run(zoo, plans, out / "zoo", out / "zoo-runs", "smisbench demo --retrain", default_protocol, device,
              progress=progress, stream=stream)
    return time.perf_counter() - started


def _segmenter_extra(manifest: dict | None) -> dict:
    return {"segmenter_sha256": manifest["file"]["sha256"]} if manifest else {}


def _real_rows(spec: BenchmarkSpec, store: Store, out: Path, device: str, segmenter: Path | None,
               seg_manifest: dict | None):
    from smisbench.data.registry import build_dataset
    from smisbench.metrics.protocol import EvalProtocol
    from smisbench.zoo.ceiling import cached_real_rows, real_rows

    dataset_spec = spec.datasets[0]
    names = set(EvalProtocol.__dataclass_fields__)
    protocol = EvalProtocol(**{k: v for k, v in spec.protocol.items() if k in names}, seed=spec.seed,
                            device=device, dataset_root="synthetic:" + canonical_json(dataset_spec.options),
                            split=dataset_spec.split)
    dataset = build_dataset(dataset_spec.name, None, dataset_spec.split, **dataset_spec.options)
    stats = store.artifacts_dir / "fid_stats"  # the cells' cache: same real statistics, same suite segmenter
    key = {"protocol": protocol.to_dict(), "dataset": dataset_spec.options, "segmenter": _segmenter_extra(seg_manifest)}
    return cached_real_rows(out / REAL_ROWS_FILE, key, lambda: real_rows(dataset, protocol, device, stats))


def _figures(store: Store, spec: BenchmarkSpec, rows: dict[str, Row], stream: TextIO) -> tuple[list, list[str]]:
    """The mixture and morphing figures from the zoo's GroupDNet (whichever this run scored)."""
    from smisbench.reports.demo_figures import application_figures

    try:
        return application_figures(store, spec, rows.get("groupdnet")), []
    except SmisbenchError as err:
        print(f"applications figures skipped: {err}", file=stream)
        return [], [f"Applications figures skipped: {str(err).splitlines()[0]}"]


def run_demo(out: str | Path, executor: Executor | None = None, device: str | None = None,
             spec: BenchmarkSpec | None = None, provision: bool = True, progress: bool = True,
             stream: TextIO | None = None, retrain: bool = False, zoo_dir: str | Path | None = None,
             real_rows: bool = True, figures: bool = True) -> DemoResult:
    """Compose the demo spec with the zoo, run it into ``out/demo.sqlite`` and write the report into ``out``."""
    from smisbench.reports.build import write_built_report
    from smisbench.reports.demo_report import build_demo_report, holds_summary
    from smisbench.zoo.definition import load_zoo
    from smisbench.zoo.store import shipped_dir

    started = time.perf_counter()
    stream = stream or sys.stdout
    out = Path(out)
    spec = spec or load_spec("demo")
    zoo = load_zoo()
    shipped = Path(zoo_dir) if zoo_dir is not None else shipped_dir()
    options = RunOptions(data_root=out / "data", device=device)
    check_spec(spec, options)  # before the report folder, the weights or the store are made
    out.mkdir(parents=True, exist_ok=True)
    if provision:
        provision_weights(progress)
    preface = []
    if retrain:
        wall = retrain_zoo(zoo, shipped, out, device or spec.device, progress, stream)
        preface.append(f"The zoo was retrained from its manifests into {out / 'zoo'} by this run "
                       f"({wall / 60:.1f} min).")
    rows, segmenter, seg_manifest = resolve_rows(zoo, out / "zoo" if retrain else shipped)
    if retrain:
        rows = {k: (Row(r.id, r.label, "trained now", r.checkpoint, r.manifest, r.detail) if r.source == "shipped"
                    else r) for k, r in rows.items()}
    composed = compose(spec, rows, _segmenter_extra(seg_manifest), str(segmenter.resolve()) if segmenter else None)
    counts = {s: sum(r.source == s for r in rows.values()) for s in ("shipped", "trained now", "fallback", "missing")}
    preface.append("Rows: " + ", ".join(f"{n} {s}" for s, n in counts.items() if n) + (
        "; the segmenter is the zoo's" if segmenter else "; the segmenter is trained now by the suite "
        f"({spec.protocol.get('segmenter_train_steps')} steps): no zoo segmenter") + ".")
    with Store(out / STORE_NAME) as store:
        summary = run_spec(composed, store, executor, options,
                           progress=progress, stream=stream, command="smisbench demo", redo_incomplete=True)
        real = _real_rows(composed, store, out, device or spec.device, segmenter, seg_manifest) if real_rows else None
        if real is None:
            preface.append("The real-data rows were not computed in this run (--skip-real-rows).")
        figs, notes = _figures(store, composed, rows, stream) if figures else ([], [])
        notes.append(f"This run took {(time.perf_counter() - started) / 60:.1f} min up to writing the report "
                     f"({len(summary.computed)} cells computed, {len(summary.reused)} reused).")
        report = build_demo_report(store, zoo, rows, spec, real, figs, preface + notes,
                                   f"smisbench demo: {spec.description}")
        written = write_built_report(report, out)
    claims = [c for s in report.sections for c in s.claims]
    wall = time.perf_counter() - started
    print(f"claims: {holds_summary(claims)}; wall time {wall / 60:.1f} min", file=stream)
    print(f"report: {out / 'report.md'} and {out / 'index.html'}", file=stream)
    return DemoResult(summary, out / STORE_NAME, written, rows, wall)
