"""Claims a spec states (``[[claims]]``) checked against the measured numbers in the store.

A claim says the model is at most ``max_ratio`` times as bad as the reference in the value's
direction (``metrics.toml``): for a lower-is-better value (FID, mOCD) model / reference <=
max_ratio, for a higher-is-better one (mCSD, LPIPS, mIoU) reference / model <= max_ratio. The
test is made without dividing (model <= max_ratio * reference), so a measured 0 is a number like
any other; only a value the store lacks makes a claim "not measured". A value measured with
several seeds is judged by its mean over them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from smisbench.benchmark.catalog import catalog
from smisbench.benchmark.compare import values_of_run
from smisbench.benchmark.spec import BenchmarkSpec, ClaimSpec, parse_spec
from smisbench.benchmark.store import Store


@dataclass(frozen=True)
class ClaimResult:
    claim: ClaimSpec
    model_value: float | None
    reference_value: float | None

    @property
    def higher_is_better(self) -> bool:
        return catalog().value(self.claim.value).direction == "higher"

    @property
    def measured(self) -> bool:
        return self.model_value is not None and self.reference_value is not None

    def _worse_better(self) -> tuple[float, float]:
        """(numerator, denominator) of the ratio: the side that should be smaller first."""
        model, reference = float(self.model_value), float(self.reference_value)
        return (reference, model) if self.higher_is_better else (model, reference)

    @property
    def ratio(self) -> float | None:
        """The claim's ratio in its direction; inf when only the denominator is 0, nan when both are."""
        if not self.measured:
            return None
        num, den = self._worse_better()
        if den == 0:
            return math.inf if num != 0 else math.nan
        return num / den

    @property
    def verdict(self) -> str:
        if not self.measured:
            return "not measured"
        num, den = self._worse_better()
        return "holds" if num <= self.claim.max_ratio * den else "does not hold"

    def sentence(self) -> str:
        c = self.claim
        if not self.measured:
            return f"{c.text}: not measured (a value of {c.model} or {c.reference} is missing)."
        ratio = self.ratio
        better, first, second = (("higher", c.reference, c.model) if self.higher_is_better
                                 else ("lower", c.model, c.reference))
        shown = f"{first}/{second}"
        need = f"{better} is better, needs {shown} <= {c.max_ratio:g}"
        value = "undefined (both 0)" if math.isnan(ratio) else f"{ratio:.3f}"
        return (f"{c.text}: {c.value} {c.model} = {self.model_value:.4g}, {c.reference} = "
                f"{self.reference_value:.4g}, ratio {shown} {value} ({need}) -> {self.verdict}.")


def latest_spec(store: Store, table: str) -> BenchmarkSpec | None:
    """The spec of the newest benchmark run into ``table`` (claims are taken from it); a one-cell run
    that scored a single model into the table (``smisbench.benchmark.single``) states no claims of its own."""
    from smisbench.benchmark.single import is_single

    runs = [r for r in store.runs() if r.table == table and not is_single(r.spec_source)]
    if not runs:
        return None
    run = store.run(runs[-1].run_id)
    return parse_spec(run["spec_text"], run["spec_source"] or f"run {run['run_id']}")


def check_claims(store: Store, table: str) -> list[ClaimResult]:
    spec = latest_spec(store, table)
    if spec is None or not spec.claims:
        return []
    from smisbench.benchmark.single import is_single

    values: dict[tuple[str, str, str], float] = {}  # the newest benchmark run's value of each model; over K seeds, their mean
    for run in (r for r in store.runs() if r.table == table and not is_single(r.spec_source)):
        for (model, dataset, _split, metric), entry in values_of_run(store, run.run_id).items():
            if math.isfinite(entry["value"]):
                values[(model, dataset, metric)] = entry["value"]
    results = []
    for claim in spec.claims:
        dataset = claim.dataset or spec.datasets[0].id
        results.append(ClaimResult(claim, values.get((claim.model, dataset, claim.value)),
                                   values.get((claim.reference, dataset, claim.value))))
    return results
