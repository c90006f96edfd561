"""Runs a spec's cells into a store: skips finished cells (resume), shows progress, records provenance.

The work of one cell is done by an *executor*, a function ``(Cell, ExecutionContext) -> CellOutcome``.
The real one (``smisbench.benchmark.executor.execute_cell``) builds the model and dataset and
calls the metrics; tests and users can pass their own.

An executor marked with :func:`identified_by` also says what model a cell evaluates
(``identify(cell, ctx) -> {"weights_sha256", "code_sha256"}``, materialising the model): the
runner then looks a finished cell up by that resolved key, so a model whose weights or code
changed is computed again instead of being reported as reused.
"""

from __future__ import annotations

import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, TextIO

from smisbench.benchmark.catalog import catalog
from smisbench.benchmark.cells import Cell, RunOptions, expand_cells
from smisbench.benchmark.leases import DONE, FAILED, LEASED, claim_cell, live_lease
from smisbench.benchmark.liveness import HEARTBEAT_S
from smisbench.benchmark.spec import BenchmarkSpec
from smisbench.benchmark.store import ArtifactRecord, CellLink, CellRecord, Store, now
from smisbench.benchmark.validate import check_device_available, check_spec
from smisbench.errors import SmisbenchError
from smisbench.io import sha256_file
from smisbench.progress import progress_bar


@dataclass
class CellOutcome:
    """What an executor returns for one cell."""

    values: dict[str, float]
    protocol: dict[str, Any] = field(default_factory=dict)  # the protocol as actually used (defaults filled in)
    provenance: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    artifacts: list[ArtifactRecord] = field(default_factory=list)
    model_config: dict[str, Any] | None = None  # the resolved config (defaults + overrides)
    weights_sha256: dict[str, Any] = field(default_factory=dict)  # pretrained files the metrics loaded


@dataclass
class ExecutionContext:
    """Shared by the cells of one run: the artifact folder and a cache (datasets, trained models)."""

    artifacts_dir: Path
    cache: dict[Any, Any] = field(default_factory=dict)
    dry_run: bool = False  # identify only what exists: train nothing

    def cached(self, key: Any, build: Callable[[], Any]) -> Any:
        if key not in self.cache:
            self.cache[key] = build()
        return self.cache[key]

    def artifact(self, kind: str, path: Path, meta: dict[str, Any] | None = None) -> ArtifactRecord:
        """Record a file written under the artifact folder (checksummed now)."""
        path = Path(path)
        try:
            relative = path.resolve().relative_to(self.artifacts_dir.resolve())
        except ValueError:  # already given relative to the artifact folder
            relative = path
        return ArtifactRecord(kind, relative.as_posix(), sha256_file(self.artifacts_dir / relative), meta or {})


Executor = Callable[[Cell, ExecutionContext], CellOutcome]
# materialises a cell's model and returns its identity, or None in a dry run when it would have to train
Identify = Callable[[Cell, ExecutionContext], "dict[str, str] | None"]


def identified_by(identify: Identify) -> Callable[[Executor], Executor]:
    """Mark an executor with the step that keys its cells by the weights and code they evaluate."""
    def mark(executor: Executor) -> Executor:
        executor.identify = identify  # type: ignore[attr-defined]
        return executor

    return mark


def _identify_of(executor: Executor | None) -> Identify | None:
    return getattr(executor, "identify", None)


@dataclass
class RunSummary:
    run_id: int | None
    cells: list[Cell]
    reused: list[Cell] = field(default_factory=list)
    computed: list[Cell] = field(default_factory=list)
    failed: list[tuple[Cell, str]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed


def default_executor() -> Executor:
    from smisbench.benchmark.executor import execute_cell

    return execute_cell


def _environment(device: str) -> dict[str, Any]:
    from smisbench.provenance import environment

    return environment(device)


def _link(cell: Cell) -> CellLink:
    return CellLink(cell.index, cell.model.id, cell.model.label, cell.dataset.id, cell.dataset.label)


def missing_values(store: Store, cell_id: int, cell: Cell) -> list[str]:
    """Value keys the cell's metrics produce that its stored result lacks (a metric unavailable when it ran)."""
    have = store.values(cell_id)
    return [key for key in catalog().produces(cell.metrics) if key not in have]


def print_plan(spec: BenchmarkSpec, cells: list[Cell], store: Store, stream: TextIO,
               redo_incomplete: bool = False, notes: list[str] | None = None, identify: Identify | None = None,
               artifacts_dir: Path | None = None) -> None:
    """What a run would do: a table of every cell (model, dataset, metrics, cached or to run), and what is missing.

    With ``identify`` each model is built or loaded (one at a time, not kept) to key the cell by
    its weights and code; a model that would have to be trained first is shown as to run.
    """
    print(f"spec {spec.name} (table {spec.table}, sha256 {spec.sha256[:12]}), {len(cells)} cells on "
          f"{cells[0].device if cells else spec.device}, store {store.path}", file=stream)
    rows, cached, missing = [], 0, []
    seeded = any(cell.replicates > 1 for cell in cells)  # `seeds = K`: a seed column tells the K cells apart
    for cell in cells:
        key, status = _plan_status(cell, store, redo_incomplete, identify, artifacts_dir)
        cached += status.startswith("cached")
        rows.append([str(cell.index), cell.model.label, f"{cell.dataset.label}/{cell.dataset.split}",
                     *([str(cell.seed)] if seeded else []), ",".join(cell.metrics), key, status])
        if cell.checkpoint_path is not None and cell.checkpoint_sha256 is None:
            missing.append(f"cell {cell.index}: checkpoint missing: {cell.checkpoint_path}")
    header = ["#", "model", "dataset", *(["seed"] if seeded else []), "metrics", "key", "status"]
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header) - 1)]
    for line in [header] + rows:
        cols = [line[0].rjust(widths[0])] + [c.ljust(w) for c, w in zip(line[1:-1], widths[1:])]
        print("  " + "  ".join(cols) + "  " + line[-1], file=stream)
    for note in missing + list(notes or []):
        print(f"  note: {note}", file=stream)
    print(f"{cached} cached, {len(cells) - cached} to run", file=stream)


def _plan_status(cell: Cell, store: Store, redo_incomplete: bool, identify: Identify | None,
                 artifacts_dir: Path | None) -> tuple[str, str]:
    """The (short key, status) of one planned cell."""
    train = f" (train {cell.model.train.steps} steps first)" if cell.model.train else ""
    if identify is not None:
        try:
            identity = identify(cell, ExecutionContext(artifacts_dir or store.artifacts_dir, dry_run=True))
        except Exception as err:  # shown, not raised: the real run records it as a failed cell
            return "?" * 10, f"to run ({str(err).splitlines()[0]})"
        if identity is None:
            return "?" * 10, "to run" + train
        cell = cell.resolved(identity)
    found = store.finished_cell(cell.key)
    lacking = missing_values(store, found, cell) if found is not None else []
    if found is not None and not (redo_incomplete and lacking):
        row = store.conn.execute("SELECT run_id, finished_at FROM cells WHERE cell_id = ?", (found,)).fetchone()
        status = f"cached (cell {found}, run {row['run_id']}, {row['finished_at'][:19]}"
        return cell.key[:10], status + (f"; lacks {', '.join(lacking)})" if lacking else ")")
    if found is not None:
        return cell.key[:10], f"to run again (lacks {', '.join(lacking)})"
    if (holder := live_lease(store, cell.key)) is not None:
        return cell.key[:10], f"being computed by run {holder}"
    return cell.key[:10], "to run" + train


def run_spec(spec: BenchmarkSpec, store: Store, executor: Executor | None = None,
             options: RunOptions | None = None, *, dry_run: bool = False, progress: bool = True,
             fail_fast: bool = False, stream: TextIO | None = None, command: str | None = None,
             environment: Callable[[str], dict[str, Any]] = _environment,
             redo_incomplete: bool = False, heartbeat_s: float = HEARTBEAT_S, poll_s: float = 0.5,
             check: bool = True) -> RunSummary:
    """Run every cell of ``spec`` not already finished in ``store``.

    Interrupting (Ctrl-C) marks the run interrupted and re-raises; cells finished so far stay
    in the store, so running the same spec again does only the rest (a killed run is marked
    interrupted by the next one). ``redo_incomplete`` also reruns finished cells that lack a
    value (a metric that was not available when they ran). Several runs of one spec into one
    store share the cells through leases (``leases``): each cell is computed once, and a run
    whose remaining cells are all being computed by others waits (polling every ``poll_s``)
    and links their results, so every run ends with all its cells.
    """
    stream = stream or sys.stdout
    options = options or RunOptions()
    # before anything is written to the store; ``check=False``: a one-cell spec a command built from checked inputs
    notes = check_spec(spec, options, availability=not dry_run) if check else []
    cells = expand_cells(spec, options)
    summary = RunSummary(None, cells)
    executor = executor or default_executor()
    identify = _identify_of(executor)
    if dry_run:
        print_plan(spec, cells, store, stream, redo_incomplete, notes, identify, options.artifacts_dir)
        check_device_available(spec, options)  # after the plan, so a plan for another machine can be read
        return summary
    for note in notes:
        print(f"note: {note}", file=stream)
    device = options.device or spec.device
    env = environment(device)
    run_id = store.start_run(spec.name, spec.table, spec.sha256, spec.text, env, spec.source, command, heartbeat_s)
    summary.run_id = run_id
    context = ExecutionContext(options.artifacts_dir or store.artifacts_dir)

    print(f"run {run_id}: spec {spec.name}, {len(cells)} cells (store {store.path})", file=stream)

    bar = progress_bar(total=len(cells), desc=spec.name, unit="cell", enabled=progress, file=sys.stderr)
    work = _Work(spec, store, run_id, executor, context, env, summary, bar, stream, redo_incomplete, fail_fast,
                 identify)
    try:
        with store.heartbeat(run_id, heartbeat_s):
            work.all(list(cells), poll_s)
    except BaseException:
        bar.close()
        store.finish_run(run_id, "interrupted")
        raise
    bar.close()
    store.finish_run(run_id, "finished" if summary.ok else "failed")
    print(f"run {run_id}: {len(summary.computed)} computed, {len(summary.reused)} reused, "
          f"{len(summary.failed)} failed", file=stream)
    for cell, error in summary.failed:
        print(f"  failed: {cell.title}: {error.splitlines()[0] if error else ''}", file=stream)
    return summary


@dataclass
class _Work:
    """The pending cells of one run: claim each, compute the ones this run holds, wait for the others."""

    spec: BenchmarkSpec
    store: Store
    run_id: int
    executor: Executor
    context: ExecutionContext
    env: dict[str, Any]
    summary: RunSummary
    bar: Any
    stream: TextIO
    redo_incomplete: bool
    fail_fast: bool
    identify: Identify | None = None

    def all(self, pending: list[Cell], poll_s: float) -> None:
        waiting: dict[str, int] = {}  # cell key -> the run found computing it
        said = False
        while pending:
            deferred = []
            for cell in pending:
                cell = self.resolve(cell)  # one model at a time, as its turn comes
                if cell is not None and not self.one(cell, waiting):
                    deferred.append(cell)
            if self.fail_fast and self.summary.failed:
                return
            if deferred and len(deferred) == len(pending):  # all left are computed by others: wait for them
                if not said:
                    holders = ", ".join(str(r) for r in sorted({waiting[c.key] for c in deferred}))
                    print(f"run {self.run_id}: waiting for {len(deferred)} cells that run(s) {holders} compute",
                          file=self.stream)
                    said = True
                time.sleep(poll_s)
            pending = deferred

    def resolve(self, cell: Cell) -> Cell | None:
        """Key the cell by the weights and code it evaluates (None: identifying failed, recorded as failed)."""
        if self.identify is None or cell.model_identity is not None or (self.fail_fast and self.summary.failed):
            return cell
        try:
            resolved = cell.resolved(self.identify(cell, self.context))
        except Exception as err:
            _record_failure(cell, self.spec, self.store, self.run_id, self.env, self.summary, err,
                            time.perf_counter(), now())
            self.bar.update(1)
            return None
        cells = self.summary.cells  # the summary shows the cells as keyed
        cells[next(k for k, c in enumerate(cells) if c is cell)] = resolved
        return resolved

    def one(self, cell: Cell, waiting: dict[str, int]) -> bool:
        """Claim and settle one cell; False when another live run holds it (try again later)."""
        if self.fail_fast and self.summary.failed:
            return True  # stop: settle nothing more
        def usable(cell_id: int) -> bool:  # --redo-incomplete: a result that lacks a value is done again
            return not (self.redo_incomplete and missing_values(self.store, cell_id, cell))

        claim = claim_cell(self.store, self.run_id, cell.key, _link(cell), usable, waiting.get(cell.key))
        if claim.state == LEASED:
            waiting[cell.key] = claim.holder
            return False
        if claim.state == DONE:
            self.summary.reused.append(cell)
        elif claim.state == FAILED:
            self.summary.failed.append((cell, f"failed in run {claim.holder}: {claim.error or ''}"))
        else:
            self.bar.set_postfix_str(cell.title)
            _run_cell(cell, self.spec, self.store, self.run_id, self.executor, self.context, self.env, self.summary)
        self.bar.update(1)
        return True


def _record(cell: Cell, spec: BenchmarkSpec, env: dict[str, Any], started: str) -> CellRecord:
    return CellRecord(
        cell_key=cell.key, status="finished", model_name=cell.model.name, dataset=cell.dataset.name,
        split=cell.dataset.split, seed=cell.seed, spec_sha256=spec.sha256, device=cell.device, dtype=cell.dtype,
        started_at=started, finished_at=started, model_config=dict(cell.model.config),
        checkpoint=str(cell.checkpoint_path) if cell.checkpoint_path else None,
        checkpoint_sha256=cell.checkpoint_sha256, dataset_options=dict(cell.dataset.options),
        metrics=list(cell.metrics), protocol=dict(cell.protocol), git_commit=env.get("git_commit"),
        versions=dict(env.get("versions", {})), device_name=env.get("device_name"), threads=env.get("threads"),
    )


def _record_failure(cell: Cell, spec: BenchmarkSpec, store: Store, run_id: int, env: dict[str, Any],
                    summary: RunSummary, err: Exception, t0: float, started: str) -> None:
    """A failed cell is recorded and shown, and retried by the next run."""
    record = _record(cell, spec, env, started)
    record.status = "failed"
    record.error = str(err) if isinstance(err, SmisbenchError) else "".join(
        traceback.format_exception_only(type(err), err)).strip() + "\n" + traceback.format_exc(limit=-3)
    record.finished_at = now()
    record.wall_time_s = time.perf_counter() - t0
    store.record_cell(run_id, _link(cell), record, {}, {"environment": env})
    summary.failed.append((cell, record.error))


def _run_cell(cell: Cell, spec: BenchmarkSpec, store: Store, run_id: int, executor: Executor,
              context: ExecutionContext, env: dict[str, Any], summary: RunSummary) -> bool:
    """Execute and record one cell; a failure is recorded (and retried by the next run), not raised."""
    started, t0 = now(), time.perf_counter()
    record = _record(cell, spec, env, started)
    try:
        outcome = executor(cell, context)
    except Exception as err:  # recorded, shown, retried next time; KeyboardInterrupt passes through
        _record_failure(cell, spec, store, run_id, env, summary, err, t0, started)
        return False
    record.wall_time_s = time.perf_counter() - t0
    record.finished_at = now()
    record.protocol = {**cell.protocol, **outcome.protocol}
    record.notes = list(outcome.notes)
    missing = [k for k in catalog().produces(cell.metrics) if k not in outcome.values]
    if missing:
        record.notes.append(f"no value for {', '.join(missing)} (shown as missing)")
    if outcome.model_config is not None:
        record.model_config = outcome.model_config
    record.weights_sha256 = dict(outcome.weights_sha256)
    prov = outcome.provenance
    record.threads = prov.get("threads", record.threads)
    record.device_name = prov.get("device_name", record.device_name)
    record.checkpoint = prov.get("checkpoint", record.checkpoint)  # a checkpoint the executor trained
    record.checkpoint_sha256 = prov.get("checkpoint_sha256", record.checkpoint_sha256)
    provenance = {"environment": env, "cell_identity": cell.identity(), **prov}
    store.record_cell(run_id, _link(cell), record, outcome.values, provenance, outcome.artifacts)
    summary.computed.append(cell)
    return True
