"""``smisbench score``: one model on one dataset under a named protocol, optionally stored as a run.

A score is a one-cell benchmark spec (written as TOML and read by the spec parser), computed by
the same executor as ``smisbench run``; with a store it is run by the same runner, so ``runs``,
``compare`` and ``report`` see it like any other run (spec ``score``, table ``score``), a rerun
reuses the finished cell, and the spec text stored with the run reruns it with ``smisbench run``.
The model is anything the registry resolves: a built-in name, an installed plugin's name, or a
factory reference ``pkg.mod:build`` / ``file.py:build`` (``smisbench.models.plugins``).
"""

from __future__ import annotations

import json
import math
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from smisbench.benchmark.catalog import catalog
from smisbench.benchmark.cells import Cell, RunOptions, expand_cells
from smisbench.benchmark.spec import PROTOCOL_FIELDS, BenchmarkSpec, parse_spec
from smisbench.errors import SmisbenchError
from smisbench.formatting import mean_std

SPEC_NAME = "score"
TABLE = "score"
SPEC_LEVEL = ("seed", "dtype")  # protocol fields a spec holds at its top level


@dataclass(frozen=True)
class ScoreRequest:
    """What to score, under which protocol, and where the result goes."""

    model: str  # a registered or plugin name, or a factory reference
    dataset: str
    root: str | None = None
    split: str = "test"
    checkpoint: str | None = None
    metrics: tuple[str, ...] | None = None  # metric names or value keys (mcsd, lpips, ...); None: the preset's
    preset: str | None = None  # a preset name or a .toml file; None: the default (groupdnet2020)
    store: str | None = None
    out: str | None = None  # artifact folder (SMIS grid) and score.json
    device: str = "auto"
    seed: int | None = None  # None: the preset's seed, else 0
    label: str | None = None  # row label in reports (default: the model's name)
    dataset_options: dict[str, Any] = field(default_factory=dict)
    seeds: str | None = None  # "K" (seed, seed+1, ...) or "S1,S2,..": one score per seed, reported as mean ± std


@dataclass
class ScoreResult:
    """The numbers (keys as stored: mcsd, mocd, lpips, fid, miou, accuracy, fps, params) and their record."""

    model: str
    dataset: str
    split: str
    preset: str
    metrics: list[str]
    values: dict[str, float]
    protocol: dict[str, Any]
    provenance: dict[str, Any]
    notes: list[str]
    store: dict[str, Any] | None = None  # {"path", "run_id", "cell_id", "reused"} when stored
    seeds: list[int] = field(default_factory=list)  # the evaluation seeds; with two or more, values are means
    spread: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> per-seed values, mean, std, interval

    def to_json(self) -> dict[str, Any]:
        """Plain JSON data (NaN and infinities become null, which JSON lacks)."""
        def clean(value: Any) -> Any:
            if isinstance(value, float) and not math.isfinite(value):
                return None
            if isinstance(value, dict):
                return {str(k): clean(v) for k, v in value.items()}
            if isinstance(value, (list, tuple)):
                return [clean(v) for v in value]
            return value

        return clean({"model": self.model, "dataset": self.dataset, "split": self.split, "preset": self.preset,
                      "metrics": self.metrics, "values": self.values, "protocol": self.protocol,
                      "provenance": self.provenance, "notes": self.notes, "store": self.store,
                      "seeds": self.seeds, "spread": self.spread})


def metric_names_of(items: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Metric names from names or the value keys they produce (``mcsd`` -> ``mcsd_mocd``), in order, once each."""
    cat = catalog()
    by_value = {key: name for name, info in cat.metrics.items() for key in info.produces}
    out: list[str] = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        name = item if item in cat.metrics else by_value.get(item)
        if name is None:
            raise SmisbenchError(f"unknown metric {item!r}",
                                 f"use metric names ({', '.join(cat.metrics)}) or value keys ({', '.join(by_value)})")
        if name not in out:
            out.append(name)
    if not out:
        raise SmisbenchError("no metric to compute", "list at least one, e.g. --metrics mcsd,mocd,lpips")
    return tuple(out)


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def toml_value(value: Any) -> str:
    """A TOML literal for spec data (strings, numbers, booleans, arrays, inline tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid TOML basic string
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            raise SmisbenchError(f"cannot write the number {value} into a spec", "use a finite number")
        return repr(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise SmisbenchError(f"cannot write {type(value).__name__} {value!r} into a spec", "use TOML-representable values")


def toml_key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def default_label(model: str) -> str:
    """A row label for a model reference: the name, ``pkg.mod:FACTORY``, or ``file.py:FACTORY`` without the folder."""
    from smisbench.models.plugins import is_factory_ref

    if not is_factory_ref(model):
        return model
    target, _, attr = model.rpartition(":")
    return f"{Path(target).name}:{attr}" if target.endswith(".py") else model


def spec_text(request: ScoreRequest, preset: Any, metrics: tuple[str, ...], device: str, grid: bool,
              seeds: tuple[int, ...] = ()) -> str:
    """The one-cell spec of a score (one cell per seed with ``seeds``), as TOML a user could rerun with
    ``smisbench run``."""
    from smisbench.models.plugins import is_factory_ref

    protocol = preset.fields(request.dataset)  # the dataset's values of the preset, written out
    protocol.pop("preset")  # the spec names the preset itself (`preset = ...`), recorded under its name
    seed = protocol.pop("seed", 0)
    top = {"seed": seed if request.seed is None else request.seed, "dtype": protocol.pop("dtype", "float32")}
    unknown = sorted(k for k in protocol if k not in PROTOCOL_FIELDS)
    if unknown:
        raise SmisbenchError(f"preset {preset.name}: {unknown[0]!r} cannot be set in a spec", "drop it from the preset")
    if not grid:
        protocol["grid_rows"] = 0  # nowhere to keep a grid: do not draw one
    lines = [
        "# Written by `smisbench score`: one model on one dataset. Rerun with `smisbench run THIS_FILE`.",
        f"name = {toml_value(SPEC_NAME)}",
        f"description = {toml_value(f'score {request.model} on {request.dataset}/{request.split}')}",
        f"table = {toml_value(TABLE)}",
        f"seed = {toml_value(int(top['seed']))}",
        *([f"seeds = {toml_value(list(seeds))}"] if seeds else []),
        f"device = {toml_value(device)}",
        f"dtype = {toml_value(top['dtype'])}",
        f"preset = {toml_value(preset.ref)}",
        f"metrics = {toml_value(list(metrics))}",
        "",
        "[protocol]",
        *(f"{key} = {toml_value(value)}" for key, value in protocol.items()),
        "",
        "[[datasets]]",
        f"name = {toml_value(request.dataset)}",
        f"split = {toml_value(request.split)}",
    ]
    if request.root is not None:
        lines.append(f"root = {toml_value(str(Path(request.root).resolve()))}")
    if request.dataset_options:
        lines.append(f"options = {toml_value(request.dataset_options)}")
    lines += ["", "[[models]]"]
    key = "factory" if is_factory_ref(request.model) else "name"
    lines.append(f"{key} = {toml_value(request.model)}")
    lines.append(f"label = {toml_value(request.label or default_label(request.model))}")
    if request.checkpoint is not None:
        lines.append(f"checkpoint = {toml_value(str(Path(request.checkpoint).resolve()))}")
    return "\n".join(lines) + "\n"


def _check_request(request: ScoreRequest) -> None:
    """Fail before any work: an unknown model or dataset, a factory that does not load, missing files."""
    from smisbench.data.registry import dataset_names
    from smisbench.models.registry import get_entry

    if request.dataset not in dataset_names():
        from smisbench.errors import UnknownNameError

        raise UnknownNameError("dataset", request.dataset, dataset_names())
    if request.root is None and request.dataset != "synthetic":
        raise SmisbenchError(f"dataset {request.dataset!r} needs the folder it is stored in",
                             f"pass --root /path/to/{request.dataset}")
    if request.root is not None and not Path(request.root).is_dir():
        raise SmisbenchError(f"dataset folder {request.root} does not exist", "pass --root the dataset's folder")
    if request.checkpoint is not None and not Path(request.checkpoint).exists():
        raise SmisbenchError(f"checkpoint {request.checkpoint} does not exist", "pass --checkpoint an existing file")
    get_entry(request.model)  # unknown names, factories that are missing, raise or return the wrong type


def build_spec(request: ScoreRequest) -> BenchmarkSpec:
    from smisbench.metrics.presets import get_preset
    from smisbench.runtime import pick_device

    _check_request(request)
    preset = get_preset(request.preset)
    metrics = metric_names_of(request.metrics) if request.metrics else metric_names_of(preset.metrics)
    device = str(pick_device(request.device))
    grid = request.store is not None or request.out is not None
    spec = parse_spec(spec_text(request, preset, metrics, device, grid), "smisbench score")
    if request.seeds is None:
        return spec
    from smisbench.benchmark.spec import parse_seeds_option

    seeds = parse_seeds_option(str(request.seeds), spec.seed)  # K counts up from the preset's (or --seed) seed
    return parse_spec(spec_text(request, preset, metrics, device, grid, seeds), "smisbench score")


def _capturing(executor: Any, caught: list[Exception]) -> Any:
    """The executor and its identify step, remembering what they raised (the runner records a failure;
    score shows the error itself). The identify step is kept, so the runner keys the cell by the
    weights and code of the model it evaluates, like every other run."""
    from smisbench.benchmark.runner import identified_by

    def remembered(step: Any) -> Any:
        def run(cell: Cell, ctx: Any) -> Any:
            try:
                return step(cell, ctx)
            except Exception as err:
                caught.append(err)
                raise

        return run

    identify = getattr(executor, "identify", None)
    run = remembered(executor)
    return identified_by(remembered(identify))(run) if identify is not None else run


def _stored(request: ScoreRequest, spec: BenchmarkSpec, options: RunOptions, progress: bool, log: TextIO,
            command: str | None) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    from smisbench.benchmark.executor import execute_cell
    from smisbench.benchmark.runner import run_spec
    from smisbench.benchmark.store import Store

    caught: list[Exception] = []
    with Store(request.store) as store:
        summary = run_spec(spec, store, _capturing(execute_cell, caught), options, progress=progress, stream=log,
                           command=command)
        if caught:
            raise caught[0]
        if summary.failed:
            raise SmisbenchError(f"scoring failed: {summary.failed[0][1].splitlines()[0]}",
                                 f"see the run with `smisbench runs --store {request.store}`")
        cell_ids = [store.finished_cell(cell.key) for cell in summary.cells]  # one per seed
        rows = [store.cell(cell_id) for cell_id in cell_ids]
    where = {"path": str(request.store), "run_id": summary.run_id, "cell_id": cell_ids[0],
             "reused": bool(summary.reused), "cell_key": summary.cells[0].key}
    if len(cell_ids) > 1:
        where.update(cell_ids=cell_ids, cell_keys=[cell.key for cell in summary.cells])
    return rows, where


def _direct(spec: BenchmarkSpec, options: RunOptions, artifacts: Path) -> list[dict[str, Any]]:
    from smisbench.benchmark.runner import ExecutionContext
    from smisbench.benchmark.validate import check_spec

    check_spec(spec, options)  # what the runner checks first, for a score that is not stored too
    ctx = ExecutionContext(artifacts)
    return [_direct_cell(cell, ctx, artifacts) for cell in expand_cells(spec, options)]  # one cell per seed


def _direct_cell(cell: Cell, ctx: Any, artifacts: Path) -> dict[str, Any]:
    from smisbench.benchmark.executor import execute_cell, identify_cell
    from smisbench.provenance import environment

    cell = cell.resolved(identify_cell(cell, ctx))  # keyed like a stored cell: the weights and code it evaluates
    outcome = execute_cell(cell, ctx)
    provenance = {"environment": environment(cell.device), "cell_identity": cell.identity(), **outcome.provenance}
    if outcome.artifacts:
        provenance["artifacts"] = [{"kind": a.kind, "path": str(artifacts / a.path), "sha256": a.sha256}
                                   for a in outcome.artifacts]
    notes = list(outcome.notes)
    missing = [k for k in catalog().produces(cell.metrics) if k not in outcome.values]
    if missing:
        notes.append(f"no value for {', '.join(missing)} (shown as missing)")
    return {"values": outcome.values, "protocol": {**cell.protocol, **outcome.protocol}, "provenance": provenance,
            "notes": notes}


def score(request: ScoreRequest, *, progress: bool = True, log: TextIO | None = None,
          command: str | None = None) -> ScoreResult:
    """Score ``request.model`` on ``request.dataset``; with ``request.store``, as a run in that store."""
    import sys

    log = log or sys.stdout
    spec = build_spec(request)
    out = Path(request.out) if request.out else None
    options = RunOptions(artifacts_dir=out)
    if request.store is not None:
        rows, where = _stored(request, spec, options, progress, log, command)
    else:
        where = None
        if out is not None:
            rows = _direct(spec, options, out)
        else:
            with tempfile.TemporaryDirectory(prefix="smisbench-score-") as tmp:
                rows = _direct(spec, options, Path(tmp))
    values, spread = _over_seeds(catalog().produces(spec.metrics), rows, spec.eval_seeds)
    row = rows[0]
    notes = list(dict.fromkeys(note for r in rows for note in r["notes"]))
    result = ScoreResult(request.model, request.dataset, request.split, row["protocol"].get("preset") or "",
                         list(spec.metrics), values, row["protocol"], row["provenance"], notes, where,
                         list(spec.eval_seeds), spread)
    if out is not None:
        from smisbench.io import atomic_write_text

        atomic_write_text(out / "score.json", json.dumps(result.to_json(), indent=1, sort_keys=True) + "\n")
    return result


def _over_seeds(keys: list[str], rows: list[dict[str, Any]], seeds: tuple[int, ...]
                ) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """Each value (the mean over seeds with several) and, for two seeds or more, its spread over seeds."""
    from smisbench.benchmark.uncertainty import summarise

    keys = keys + [k for r in rows for k in r["values"] if k not in keys]
    keys = list(dict.fromkeys(keys))
    values: dict[str, float] = {}
    spread: dict[str, dict[str, Any]] = {}
    for key in keys:
        per_seed = [r["values"].get(key, math.nan) for r in rows]
        summary = summarise(per_seed) if len(rows) > 1 else None
        values[key] = per_seed[0] if len(rows) == 1 else (summary.mean if summary else math.nan)
        if summary is not None:
            spread[key] = {"seeds": list(seeds), "values": per_seed, "mean": summary.mean, "std": summary.std,
                           "low": summary.low, "high": summary.high, "finite": summary.n}
    return values, spread


def format_result(result: ScoreResult) -> str:
    """The numbers as a short table in the paper's units."""
    lines = [f"score: {result.model} on {result.dataset}/{result.split} (preset {result.preset})"]
    if len(result.seeds) > 1:
        from smisbench.benchmark.uncertainty import describe

        lines.append(f"  {len(result.seeds)} seeds ({', '.join(map(str, result.seeds))}): {describe()}")
    for key, value in result.values.items():
        info = catalog().value(key)
        shown = "—" if value is None or not math.isfinite(value) else info.format(info.display(value))
        spread = result.spread.get(key)
        if spread and spread["std"] is not None and math.isfinite(value):
            low, high = sorted((info.display(spread["low"]), info.display(spread["high"])))
            shown = (mean_std(shown, info.format(abs(info.display(spread["std"]))))
                     + f"  (95% interval {info.format(low)} to {info.format(high)})")
        lines.append(f"  {info.label:<12} {shown}")
    lines += [f"  note: {note}" for note in result.notes]
    if result.store:
        s = result.store
        lines.append(f"stored: run {s['run_id']}, cell {s['cell_id']}{' (reused)' if s['reused'] else ''} "
                     f"in {s['path']}")
    return "\n".join(lines)
