"""One model scored on one dataset, recorded in a results store as a run like any other.

A command that scores one thing (``score-samples``) writes a one-cell spec and runs it through
:func:`smisbench.benchmark.runner.run_spec` with its own executor, so the result gets a run, a
content-keyed cell, provenance and resume exactly as ``smisbench run`` gives them: ``runs``,
``compare``, ``baseline`` and ``report`` then treat it like any other run. Scoring the same
inputs again under the same protocol reuses the stored cell.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

import tomli_w

from smisbench.benchmark.cells import RunOptions
from smisbench.benchmark.runner import CellOutcome, Executor, run_spec
from smisbench.benchmark.spec import PROTOCOL_FIELDS, BenchmarkSpec, parse_spec
from smisbench.benchmark.store import Store
from smisbench.errors import SmisbenchError
from smisbench.metrics.evaluate import EvaluationResult


SINGLE_SOURCE = "(one-cell spec)"  # ends the spec source of such runs


def is_single(spec_source: str | None) -> bool:
    """Whether a run's spec source names a one-cell run (which states no claims of its own)."""
    return bool(spec_source) and spec_source.endswith(SINGLE_SOURCE)


def spec_protocol(protocol: dict[str, Any]) -> dict[str, Any]:
    """The fields of an evaluation's protocol a spec may carry (absent values left out, tuples as lists)."""
    out = {}
    for key, value in protocol.items():
        if key in PROTOCOL_FIELDS and PROTOCOL_FIELDS[key].spec and value is not None:
            out[key] = list(value) if isinstance(value, tuple) else value
    return out


def single_spec(*, name: str, table: str, model: dict[str, Any], dataset: dict[str, Any], metrics: list[str],
                protocol: dict[str, Any], seed: int, device: str, description: str = "") -> BenchmarkSpec:
    """A spec of one model x one dataset (``model``/``dataset``: the keys of a spec's [[models]]/[[datasets]])."""
    data = {"name": name, **({"description": description} if description else {}), "table": table, "seed": seed,
            "device": device, "metrics": list(metrics), "protocol": spec_protocol(protocol),
            "datasets": [{k: v for k, v in dataset.items() if v not in (None, {})}],
            "models": [{k: v for k, v in model.items() if v not in (None, {})}]}
    return parse_spec(tomli_w.dumps(data), f"{name} {SINGLE_SOURCE}")


def outcome_of(result: EvaluationResult) -> CellOutcome:
    """What the runner stores for an evaluation result."""
    provenance = dict(result.provenance)
    return CellOutcome(values={k: float(v) for k, v in result.values.items()}, protocol=dict(result.protocol),
                       provenance=provenance, notes=list(result.notes),
                       weights_sha256=dict(provenance.get("weights", {})))


def run_single(store: Store, spec: BenchmarkSpec, score: Executor, *, command: str, progress: bool = True,
               stream: TextIO | None = None) -> dict[str, Any]:
    """Run the one cell of ``spec`` into ``store`` (``score`` computes it unless the store holds it already);
    returns the stored cell (``Store.cell``: values, protocol, provenance, notes) with its ``run_id``.

    A failure inside ``score`` is recorded as a failed cell, as in any run, and then raised again.
    """
    raised: list[BaseException] = []

    def executor(cell: Any, ctx: Any) -> CellOutcome:
        try:
            return score(cell, ctx)
        except Exception as err:
            raised.append(err)
            raise

    # the model is a label of what was scored (a sample folder's model), not a registry name: not checked as one
    summary = run_spec(spec, store, executor, RunOptions(), progress=progress, stream=stream or sys.stderr,
                       command=command, check=False)
    if summary.failed:
        if raised and isinstance(raised[0], SmisbenchError):
            raise raised[0]
        raise SmisbenchError(f"scoring failed: {summary.failed[0][1].splitlines()[0]}",
                             f"see run {summary.run_id} in `smisbench runs --store {store.path}`")
    cell_id = store.finished_cell(summary.cells[0].key)
    return {**store.cell(cell_id), "run_id": summary.run_id}
