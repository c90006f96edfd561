"""Regression tracking: per-metric deltas between two runs (or a saved baseline) with a verdict each.

Whether a change is better or worse depends on the metric (lower FID is better, higher mCSD is
better, a changed parameter count is a change); directions and tolerances come from
metrics.toml and can be overridden per metric. A regression makes ``smisbench compare`` exit 1.

A run with several seeds (``seeds = K``) gives each value K seed-level numbers; the value is
their mean, and where the reference side A has two seeds or more its bootstrap 95 % interval
of the mean (``uncertainty``) replaces the fixed tolerance (:func:`interval_verdict`): B's mean
inside A's interval is the same; outside it, the change counts only when B's own interval (if B
has one) does not overlap A's, since overlapping intervals are no evidence of a change. The
fixed tolerance still judges a value whose reference has one seed, whose seeds all gave the same
number (a zero-width interval: the value does not depend on the seed, such as a parameter count
or the FID of a model without codes, so the seeds say nothing about its noise), and a value
whose tolerance is overridden on the command line (``--tolerance``; ``--no-intervals`` for all).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from smisbench.benchmark.catalog import ValueInfo, catalog
from smisbench.benchmark.store import Store, now
from smisbench.benchmark.uncertainty import Spread, summarise
from smisbench.errors import SmisbenchError
from smisbench.formatting import mean_std
from smisbench.io import atomic_write_text

BASELINE_FORMAT = "smisbench-baseline"
REGRESSIONS = ("worse", "changed", "missing")

Key = tuple[str, str, str, str]  # model id, dataset id, split, value key


@dataclass(frozen=True)
class Tolerance:
    abs: float = 0.0
    rel: float = 0.0

    def at(self, reference: float) -> float:
        return max(self.abs, self.rel * abs(reference) if math.isfinite(reference) else 0.0)


@dataclass(frozen=True)
class Delta:
    model: str
    dataset: str
    split: str
    metric: str
    a: float | None
    b: float | None
    tolerance: float
    verdict: str  # better, same, worse, changed, missing, new
    spread_a: Spread | None = None  # the seeds of each side (an interval with two or more)
    spread_b: Spread | None = None
    rule: str = "tolerance"  # what judged it: "tolerance" or "interval" (A's bootstrap interval)

    @property
    def delta(self) -> float | None:
        return None if self.a is None or self.b is None else self.b - self.a

    @property
    def regression(self) -> bool:
        return self.verdict in REGRESSIONS


def parse_tolerance(text: str) -> tuple[str, Tolerance]:
    """``fid=0.5`` (absolute, stored units) or ``fps=10%`` (relative) for one value key."""
    key, sep, amount = text.partition("=")
    key, amount = key.strip(), amount.strip()
    try:
        if not sep or not key:
            raise ValueError
        if amount.endswith("%"):
            tolerance = Tolerance(rel=float(amount[:-1]) / 100.0)
        else:
            tolerance = Tolerance(abs=float(amount))
    except ValueError:
        raise SmisbenchError(f"tolerance {text!r} is not METRIC=NUMBER or METRIC=PERCENT%",
                             "write e.g. --tolerance fid=0.5 or --tolerance fps=10%") from None
    if tolerance.abs < 0 or tolerance.rel < 0:
        raise SmisbenchError(f"tolerance {text!r} is negative", "give a tolerance of 0 or more")
    return key, tolerance


def _tolerance_for(info: ValueInfo, overrides: dict[str, Tolerance]) -> Tolerance:
    return overrides.get(info.key, Tolerance(info.abs_tolerance, info.rel_tolerance))


def verdict(info: ValueInfo, a: float | None, b: float | None, tolerance: Tolerance) -> tuple[str, float]:
    """Judge one value: B against reference A."""
    a_ok = a is not None and math.isfinite(a)
    b_ok = b is not None and math.isfinite(b)
    if not a_ok:
        return ("new" if b_ok else "same"), 0.0
    if not b_ok:
        return "missing", 0.0
    allowed = tolerance.at(a)
    change = b - a
    if abs(change) <= allowed:
        return "same", allowed
    if info.direction == "equal":
        return "changed", allowed
    improved = change > 0 if info.direction == "higher" else change < 0
    return ("better" if improved else "worse"), allowed


def interval_verdict(info: ValueInfo, a: Spread, b: Spread) -> str:
    """Judge B's mean against A's bootstrap interval (see the module doc); A must have a non-zero-width interval."""
    if a.contains(b.mean) or a.overlaps(b):
        return "same"
    if info.direction == "equal":
        return "changed"
    improved = b.mean > a.high if info.direction == "higher" else b.mean < a.low
    return "better" if improved else "worse"


def _entry(model_label: str, seeds: dict[int, float]) -> dict[str, Any]:
    """One compared value: the mean over its finite seed-level numbers (nan if none), and the numbers by seed."""
    spread = summarise(seeds.values())
    return {"value": math.nan if spread is None else spread.mean, "model_label": model_label, "seeds": seeds}


def values_of_run(store: Store, run_id: int) -> dict[Key, dict[str, Any]]:
    """Per value key: ``value`` (the mean over the run's seeds), ``model_label`` and ``seeds`` {seed: value}."""
    seeds: dict[Key, dict[int, float]] = {}
    labels: dict[Key, str] = {}
    for row in store.run_results(run_id):
        key = (row["model_id"], row["dataset_id"], row["split"], row["metric"])
        seeds.setdefault(key, {})[int(row["seed"])] = row["value"]
        labels[key] = row["model_label"]
    return {key: _entry(labels[key], by_seed) for key, by_seed in seeds.items()}


def completeness(store: Store, run_id: int, allow: bool) -> str:
    """'' for a finished run; for a running, interrupted or failed one the flag to show when ``allow``,
    else the error and its fix (its numbers are not the full run's, so a comparison would mislead)."""
    info = store.run_info(run_id)
    if info.status == "finished":
        return ""
    held = f"{info.computed + info.reused} finished cell(s)" + (f", {info.failed} failed" if info.failed else "")
    if allow:
        return f"{info.status.upper()}, incomplete: {held}"
    spec = info.spec_source or info.spec_name
    fix = {"running": "wait until it finishes (`smisbench runs` shows its state)",
           "failed": f"fix what failed and run its spec ({spec}) again: `smisbench run` reuses the finished cells",
           }.get(info.status, f"run its spec ({spec}) again: `smisbench run` resumes it into a new run; "
                              "compare that one")
    raise SmisbenchError(f"run {run_id} is {info.status} ({held}), so its numbers are incomplete",
                         f"{fix}, or pass --allow-incomplete to use what it holds")


def save_baseline(store: Store, run_id: int, path: str | Path) -> int:
    """Write a run's numbers to a JSON baseline file (kept in a user's repository for CI)."""
    run = store.run(run_id)
    values = [
        {"model_id": k[0], "dataset_id": k[1], "split": k[2], "metric": k[3], "model_label": v["model_label"],
         "value": None if not math.isfinite(v["value"]) else v["value"],
         "seeds": [[seed, None if not math.isfinite(x) else x] for seed, x in sorted(v["seeds"].items())]}
        for k, v in sorted(values_of_run(store, run_id).items())
    ]
    if not values:
        raise SmisbenchError(f"run {run_id} holds no numbers", "save a baseline from a run that finished cells")
    doc = {"format": BASELINE_FORMAT, "version": 1, "created_at": now(), "store": str(store.path),
           "run_id": run_id, "run_uuid": run["uuid"], "spec_name": run["spec_name"],
           "spec_sha256": run["spec_sha256"], "git_commit": run["git_commit"], "values": values}
    atomic_write_text(path, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return len(values)


def load_baseline(path: str | Path) -> tuple[str, dict[Key, dict[str, Any]]]:
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SmisbenchError(f"no baseline file {path}", "save one with `smisbench baseline RUN --out FILE`") from None
    except json.JSONDecodeError as err:
        raise SmisbenchError(f"baseline {path} is not JSON ({err})",
                             "save it again with `smisbench baseline`") from None
    if doc.get("format") != BASELINE_FORMAT:
        raise SmisbenchError(f"{path} is not a smisbench baseline", "save one with `smisbench baseline RUN --out FILE`")
    values = {}
    for item in doc["values"]:
        value = math.nan if item["value"] is None else float(item["value"])
        # the seed-level numbers (a baseline without them, from before seeds were kept, has none)
        seeds = {int(seed): math.nan if x is None else float(x) for seed, x in item.get("seeds", [])}
        values[(item["model_id"], item["dataset_id"], item["split"], item["metric"])] = {
            "value": value, "model_label": item.get("model_label", item["model_id"]), "seeds": seeds}
    return f"baseline {path.name} (run {doc.get('run_id')} of {doc.get('spec_name')})", values


def compare_values(a: dict[Key, dict[str, Any]], b: dict[Key, dict[str, Any]],
                   overrides: dict[str, Tolerance] | None = None, intervals: bool = True) -> list[Delta]:
    """A delta per value key present in either side, in a stable order.

    With ``intervals`` a value whose A side has a bootstrap interval over seeds (of non-zero
    width) and no tolerance override is judged by the interval; everything else by its tolerance.
    """
    overrides = overrides or {}
    out = []
    for key in sorted(set(a) | set(b)):
        model, dataset, split, metric = key
        info = catalog().value(metric)
        va = a[key]["value"] if key in a else None
        vb = b[key]["value"] if key in b else None
        spread_a = summarise(a[key].get("seeds", {}).values()) if key in a else None
        spread_b = summarise(b[key].get("seeds", {}).values()) if key in b else None
        label = (b.get(key) or a.get(key))["model_label"]
        name, allowed = verdict(info, va, vb, _tolerance_for(info, overrides))
        rule = "tolerance"
        usable = (intervals and metric not in overrides and spread_a is not None and spread_a.width > 0
                  and spread_b is not None)
        if usable and name not in ("missing", "new"):
            name, rule = interval_verdict(info, spread_a, spread_b), "interval"
        out.append(Delta(label if label == model else f"{label} ({model})", dataset, split, metric,
                         None if va is None or not math.isfinite(va) else va,
                         None if vb is None or not math.isfinite(vb) else vb, allowed, name,
                         spread_a, spread_b, rule))
    return out


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.6g}"


def _side(mean: float | None, spread: Spread | None) -> str:
    """A side's value; with several seeds "mean ± std (K seeds)"."""
    if mean is None or spread is None or spread.std is None:
        return _fmt(mean)
    return f"{mean_std(f'{mean:.6g}', f'{spread.std:.3g}')} ({spread.n} seeds)"


def _allowed(delta: Delta) -> str:
    if delta.rule == "interval":
        return f"A's 95% CI [{delta.spread_a.low:.6g}, {delta.spread_a.high:.6g}]"
    return f"{delta.tolerance:.3g}"


def format_deltas(deltas: list[Delta], title_a: str, title_b: str) -> str:
    """A plain-text table of the deltas and a one-line summary."""
    headers = ["model", "dataset", "metric", "A", "B", "B - A", "tolerance", "verdict"]
    rows = [[d.model, f"{d.dataset}/{d.split}", d.metric, _side(d.a, d.spread_a), _side(d.b, d.spread_b),
             "—" if d.delta is None else f"{d.delta:+.4g}", _allowed(d),
             d.verdict.upper() if d.regression else d.verdict] for d in deltas]
    widths = [max(len(str(x)) for x in col) for col in zip(headers, *rows)]
    lines = [f"A = {title_a}", f"B = {title_b}",
             "  ".join(h.ljust(w) for h, w in zip(headers, widths)),
             "  ".join("-" * w for w in widths)]
    lines += ["  ".join(str(x).ljust(w) for x, w in zip(row, widths)) for row in rows]
    regressions = sum(d.regression for d in deltas)
    counts = {v: sum(d.verdict == v for d in deltas) for v in ("better", "same", "worse", "changed", "missing", "new")}
    lines.append(f"{len(deltas)} values: " + ", ".join(f"{n} {v}" for v, n in counts.items() if n)
                 + (f" -> {regressions} regression(s)" if regressions else " -> no regression"))
    return "\n".join(lines)
