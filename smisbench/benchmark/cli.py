"""``smisbench run | runs | specs | compare | baseline | score``: the benchmark harness on the command line."""

from __future__ import annotations

import argparse
import os

STORE_HELP = "results store file (default: $SMISBENCH_STORE or ./smisbench.sqlite)"


def _default_store() -> str:
    return os.environ.get("SMISBENCH_STORE", "smisbench.sqlite")


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="run a benchmark spec into the results store (resumes; --dry-run shows the plan)",
                         description="Run every cell of SPEC that the store does not hold yet.")
    run.add_argument("spec", help="a spec file (.toml) or a shipped spec name: table1, table2, ablations, demo")
    run.add_argument("--store", default=_default_store(), help=STORE_HELP)
    run.add_argument("--dry-run", action="store_true", help="print what would run and what is cached; run nothing")
    run.add_argument("--device", help="override the spec's device (cpu, cuda, cuda:1)")
    run.add_argument("--data-root", default=".", help="folder that relative dataset roots are under (default: .)")
    run.add_argument("--checkpoint-root", default=".",
                     help="folder that relative checkpoint paths are under (default: .)")
    run.add_argument("--artifacts", help="folder for grids, trained models and caches (default: beside the store, "
                                         "STORE.artifacts); under torchrun every rank must read it")
    run.add_argument("--executor", help="MODULE:FUNCTION to compute cells instead of the built-in executor")
    run.add_argument("--seeds", metavar="K|S1,S2,..",
                     help="evaluate every cell with K seeds (the spec's seed, seed+1, ...) or with these seeds, "
                          "instead of the spec's `seeds`; the model is the same, only the codes drawn differ")
    run.add_argument("--fail-fast", action="store_true", help="stop at the first failed cell")
    run.add_argument("--redo-incomplete", action="store_true",
                     help="also rerun finished cells that lack a value (a metric unavailable when they ran)")
    run.add_argument("--no-progress", action="store_true", help="no progress bar")
    run.set_defaults(func=_run)

    runs = sub.add_parser("runs", help="list the runs in a results store")
    runs.add_argument("--store", default=_default_store(), help=STORE_HELP)
    runs.set_defaults(func=_runs)

    specs = sub.add_parser("specs", help="list the shipped benchmark specs")
    specs.set_defaults(func=_specs)

    metrics = sub.add_parser(
        "metrics", help="every metric name a spec or `score` may list, the value keys each stores, and plug-ins'",
        description="The registered metrics (built-ins, then any registered by plug-ins) with the value keys each "
                    "stores and how `compare` judges each value (benchmark/metrics.toml).")
    metrics.add_argument("--json", action="store_true", help="machine-readable output")
    metrics.set_defaults(func=_metrics)

    compare = sub.add_parser(
        "compare", help="per-metric deltas between two runs (or a baseline file); exit 1 on a regression",
        description="Compare run B against run A (or against --baseline FILE). Runs are numbers or uuid "
                    "prefixes from `smisbench runs`, `latest` or `latest:SPEC`. Exit status 1 when any value "
                    "regressed beyond its tolerance (direction-aware; see metrics.toml). A value that A holds "
                    "for two seeds or more is judged by A's bootstrap 95 percent interval over seeds instead: worse "
                    "only when B's mean is outside it on the bad side and B's interval does not overlap it.")
    compare.add_argument("runs", nargs="+", metavar="RUN", help="RUN_A RUN_B, or RUN_B alone with --baseline")
    compare.add_argument("--baseline", help="a baseline JSON file (from `smisbench baseline`) used as A")
    compare.add_argument("--store", default=_default_store(), help=STORE_HELP)
    compare.add_argument("--tolerance", action="append", default=[], metavar="METRIC=TOL",
                         help="override a tolerance: fid=0.5 (absolute, stored units) or fps=10%% (relative)")
    compare.add_argument("--no-intervals", action="store_true",
                         help="judge every value by its fixed tolerance, even where A has an interval over seeds")
    compare.add_argument("--allow-missing", action="store_true", help="a value missing from B is not a regression")
    compare.add_argument("--allow-incomplete", action="store_true",
                         help="compare a run that is running, interrupted or failed (flagged in the output)")
    compare.set_defaults(func=_compare)

    baseline = sub.add_parser("baseline", help="save a run's numbers as a baseline JSON file for `compare`")
    baseline.add_argument("run", help="run number, uuid prefix, latest or latest:SPEC")
    baseline.add_argument("--out", required=True, help="baseline file to write")
    baseline.add_argument("--store", default=_default_store(), help=STORE_HELP)
    baseline.add_argument("--allow-incomplete", action="store_true",
                          help="save a run that is running, interrupted or failed")
    baseline.set_defaults(func=_baseline)

    from smisbench.benchmark.score_cli import register as register_score

    register_score(sub)


def load_executor(ref: str | None):
    """``MODULE:FUNCTION`` -> the function (None -> the built-in executor)."""
    if ref is None:
        return None
    import importlib

    from smisbench.errors import SmisbenchError

    module, sep, name = ref.partition(":")
    if not sep:
        raise SmisbenchError(f"--executor {ref!r} is not MODULE:FUNCTION", "write e.g. mypackage.cells:execute")
    try:
        func = getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as err:
        raise SmisbenchError(f"cannot load executor {ref!r}: {err}", "check the module is importable") from None
    return func


def _run(args: argparse.Namespace) -> int:
    import sys
    from pathlib import Path

    from smisbench.benchmark.cells import RunOptions
    from smisbench.benchmark.runner import default_executor, run_spec
    from smisbench.benchmark.sharded import shard_command
    from smisbench.benchmark.spec import load_spec
    from smisbench.benchmark.spec_seeds import parse_seeds_option, with_seeds
    from smisbench.benchmark.store import Store
    from smisbench.benchmark.validate import check_spec

    spec = load_spec(args.spec)
    if args.seeds is not None:
        spec = with_seeds(spec, parse_seeds_option(args.seeds, spec.seed))
    options = RunOptions(data_root=Path(args.data_root), checkpoint_root=Path(args.checkpoint_root),
                         device=args.device, artifacts_dir=Path(args.artifacts) if args.artifacts else None)
    executor = load_executor(args.executor)
    check_spec(spec, options, availability=not args.dry_run)  # a spec that cannot run never opens the store

    def lead(executor) -> int:
        # a dry run only reads: it never creates the store (a missing one plans as empty)
        with Store(args.store, readonly=args.dry_run, missing_ok=args.dry_run) as store:
            summary = run_spec(spec, store, executor, options, dry_run=args.dry_run,
                               progress=not args.no_progress, fail_fast=args.fail_fast,
                               command=" ".join(["smisbench"] + sys.argv[1:]), redo_incomplete=args.redo_incomplete)
        return 0 if summary.ok else 1

    # under torchrun rank 0 runs the spec into the store; the other ranks share each cell's evaluation
    return shard_command(options.device or spec.device, executor or default_executor(), lead)


def _runs(args: argparse.Namespace) -> int:
    from smisbench.benchmark.store import Store

    with Store(args.store, readonly=True) as store:
        runs = store.runs()
    if not runs:
        print(f"{args.store}: no runs")
        return 0
    headers = ["run", "uuid", "spec", "table", "status", "started", "cells", "computed", "reused", "failed", "git",
               "process"]
    rows = [[str(r.run_id), r.uuid[:8], r.spec_name, r.table, r.status, r.started_at[:19], str(r.cells),
             str(r.computed), str(r.reused), str(r.failed), (r.git_commit or "—")[:12],
             f"{r.pid}@{r.hostname}" if r.pid is not None else "—"] for r in runs]
    widths = [max(len(x) for x in col) for col in zip(headers, *rows)]
    for line in [headers] + rows:
        print("  ".join(x.ljust(w) for x, w in zip(line, widths)).rstrip())
    return 0


def _specs(args: argparse.Namespace) -> int:
    from smisbench.benchmark.cells import expand_cells
    from smisbench.benchmark.spec import load_spec, shipped_specs

    for name in shipped_specs():
        spec = load_spec(name)
        cells = expand_cells(spec, hasher=lambda path: None)
        print(f"{name:<10} {len(cells):3d} cells  device {spec.device:<5} {spec.description}")
    return 0


def _metrics(args: argparse.Namespace) -> int:
    import json

    from smisbench.benchmark.catalog import catalog

    cat = catalog()
    rows = [{"name": e.name, "produces": list(e.produces), "description": e.description,
             "values": {k: {"label": cat.value(k).label, "direction": cat.value(k).direction} for k in e.produces}}
            for e in cat.metrics.values()]
    if args.json:
        print(json.dumps({"metrics": rows}, indent=2))
        return 0
    for row in rows:
        judged = ", ".join(f"{k} ({v['direction']} is better)" if v["direction"] != "equal" else k
                           for k, v in row["values"].items())
        print(f"{row['name']:17s} -> {judged}\n{'':17s}    {row['description']}")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from smisbench.benchmark.compare import (compare_values, completeness, format_deltas, load_baseline,
                                             parse_tolerance, values_of_run)
    from smisbench.benchmark.store import Store
    from smisbench.errors import SmisbenchError

    expected = 1 if args.baseline else 2
    if len(args.runs) != expected:
        raise SmisbenchError(
            f"compare takes {'one run with --baseline' if args.baseline else 'two runs'}, got {len(args.runs)}",
            "write `smisbench compare RUN_A RUN_B` or `smisbench compare --baseline FILE RUN_B`")
    overrides = dict(parse_tolerance(t) for t in args.tolerance)
    flags = []
    with Store(args.store, readonly=True) as store:
        if args.baseline:
            title_a, values_a = load_baseline(args.baseline)
        else:
            run_a = store.resolve_run(args.runs[0])
            flag_a = completeness(store, run_a, args.allow_incomplete)
            title_a, values_a = f"run {run_a}{flag_a and f' ({flag_a})'}", values_of_run(store, run_a)
            flags.append((run_a, flag_a))
        run_b = store.resolve_run(args.runs[-1])
        flag_b = completeness(store, run_b, args.allow_incomplete)
        flags.append((run_b, flag_b))
        values_b = values_of_run(store, run_b)
    deltas = compare_values(values_a, values_b, overrides, intervals=not args.no_intervals)
    if args.allow_missing:
        from dataclasses import replace

        deltas = [replace(d, verdict="same") if d.verdict == "missing" else d for d in deltas]
    for run_id, flag in dict(flags).items():
        if flag:
            print(f"warning: run {run_id} is {flag}; its numbers are not the full run's")
    print(format_deltas(deltas, title_a, f"run {run_b}{flag_b and f' ({flag_b})'}"))
    if not deltas:
        raise SmisbenchError("the two sides hold no numbers to compare", "compare runs that finished cells")
    return 1 if any(d.regression for d in deltas) else 0


def _baseline(args: argparse.Namespace) -> int:
    from smisbench.benchmark.compare import completeness, save_baseline
    from smisbench.benchmark.store import Store

    with Store(args.store, readonly=True) as store:
        run_id = store.resolve_run(args.run)
        flag = completeness(store, run_id, args.allow_incomplete)
        count = save_baseline(store, run_id, args.out)
    print(f"wrote {count} values of run {run_id}{flag and f' ({flag})'} to {args.out}")
    return 0
