"""Claims a spec states (``[[claims]]``) checked against the measured numbers in the store."""

from __future__ import annotations

import math
from dataclasses import dataclass

from smisbench.benchmark.spec import BenchmarkSpec, ClaimSpec, parse_spec
from smisbench.benchmark.store import Store


@dataclass(frozen=True)
class ClaimResult:
    claim: ClaimSpec
    model_value: float | None
    reference_value: float | None

    @property
    def ratio(self) -> float | None:
        if self.model_value is None or self.reference_value is None or self.reference_value == 0:
            return None
        return self.model_value / self.reference_value

    @property
    def verdict(self) -> str:
        if self.ratio is None:
            return "not measured"
        return "holds" if self.ratio <= self.claim.max_ratio else "does not hold"

    def sentence(self) -> str:
        c = self.claim
        if self.ratio is None:
            return f"{c.text}: not measured (a value of {c.model} or {c.reference} is missing)."
        return (f"{c.text}: {c.value} {c.model} = {self.model_value:.4g}, {c.reference} = "
                f"{self.reference_value:.4g}, ratio {self.ratio:.3f} (needs <= {c.max_ratio:g}) -> {self.verdict}.")


def latest_spec(store: Store, table: str) -> BenchmarkSpec | None:
    """The spec of the newest run into ``table`` (claims are taken from it)."""
    run = store.latest_run_of_table(table)
    if run is None:
        return None
    return parse_spec(run["spec_text"], run["spec_source"] or f"run {run['run_id']}")


def check_claims(store: Store, table: str) -> list[ClaimResult]:
    spec = latest_spec(store, table)
    if spec is None or not spec.claims:
        return []
    values: dict[tuple[str, str, str], float] = {}
    for row in store.table_results(table):
        if math.isfinite(row["value"]):
            values[(row["model_id"], row["dataset_id"], row["metric"])] = row["value"]
    results = []
    for claim in spec.claims:
        dataset = claim.dataset or spec.datasets[0].id
        results.append(ClaimResult(claim, values.get((claim.model, dataset, claim.value)),
                                   values.get((claim.reference, dataset, claim.value))))
    return results
