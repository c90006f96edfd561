"""Claims a spec states (``[[claims]]``) checked against the measured numbers in the store.

A claim says the model is at most ``max_ratio`` times as bad as the reference in the value's
direction (``metrics.toml``): for a lower-is-better value (FID, mOCD) model / reference <=
max_ratio, for a higher-is-better one (mCSD, LPIPS, mIoU) reference / model <= max_ratio. The
test is made without dividing (model <= max_ratio * reference), so a measured 0 is a number like
any other; only a value the store lacks makes a claim "not measured".

A claim may name several models or references (it must hold for every pair), a derived value
``"a/b"`` (mOCD per unit of mCSD: lower is better), conditions it needs on the same pairs
(``given``: "at comparable FID"), and the real-data row (``REAL_ROW``), whose values the caller
passes in (``extra_rows``). Thresholds are the claim's own: a claim that does not hold is printed
as not holding, with its numbers. A value measured with
several seeds is judged by its mean over them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from smisbench.benchmark.catalog import catalog
from smisbench.benchmark.compare import values_of_run
from smisbench.benchmark.spec import BenchmarkSpec, parse_spec
from smisbench.benchmark.spec_claims import ClaimSpec
from smisbench.benchmark.store import Store

Values = Mapping[tuple[str, str, str], float]  # (row id, dataset id, value key) -> stored value


@dataclass(frozen=True)
class ClaimResult:
    """One comparison: ``value`` of ``model`` against ``reference`` (the claim's own when not given)."""

    claim: ClaimSpec
    model_value: float | None
    reference_value: float | None
    value: str | None = None
    model: str | None = None
    reference: str | None = None
    max_ratio: float | None = None

    @property
    def key(self) -> str:
        return self.value or self.claim.value

    @property
    def model_id(self) -> str:
        return self.model or self.claim.models[0]

    @property
    def reference_id(self) -> str:
        return self.reference or self.claim.references[0]

    @property
    def limit(self) -> float:
        return self.claim.max_ratio if self.max_ratio is None else self.max_ratio

    @property
    def higher_is_better(self) -> bool:
        return catalog().value(self.key).direction == "higher"

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
        return "holds" if num <= self.limit * den else "does not hold"

    def numbers(self) -> str:
        """The comparison with its numbers and what it needs, without the claim's text."""
        model, reference = self.model_id, self.reference_id
        if not self.measured:
            missing = [who for who, v in ((model, self.model_value), (reference, self.reference_value)) if v is None]
            return f"{self.key} of {' and '.join(missing)} not measured"
        ratio = self.ratio
        better, first, second = (("higher", reference, model) if self.higher_is_better else ("lower", model, reference))
        shown = f"{first}/{second}"
        value = "undefined (both 0)" if math.isnan(ratio) else f"{ratio:.3f}"
        return (f"{self.key} {model} = {self.model_value:.4g}, {reference} = {self.reference_value:.4g}, ratio "
                f"{shown} {value} ({better} is better, needs {shown} <= {self.limit:g}) -> {self.verdict}")

    def sentence(self) -> str:
        if not self.measured:
            return (f"{self.claim.text}: not measured (a value of {self.model_id} or {self.reference_id} "
                    f"is missing).")
        return f"{self.claim.text}: {self.numbers()}."


@dataclass(frozen=True)
class ClaimCheck:
    """A whole claim: its comparisons over every (model, reference) pair and its conditions on them."""

    claim: ClaimSpec
    comparisons: tuple[ClaimResult, ...]
    conditions: tuple[ClaimResult, ...] = field(default=())

    @property
    def results(self) -> tuple[ClaimResult, ...]:
        return self.comparisons + self.conditions

    @property
    def verdict(self) -> str:
        verdicts = [r.verdict for r in self.results]
        if "not measured" in verdicts:
            return "not measured"
        return "holds" if all(v == "holds" for v in verdicts) else "does not hold"

    def sentence(self) -> str:
        parts = "; ".join(r.numbers() for r in self.comparisons)
        if self.conditions:
            parts += "; given " + "; ".join(r.numbers() for r in self.conditions)
        return f"{self.claim.text}: {parts} => {self.verdict}."


def value_of(values: Values, row: str, dataset: str, key: str) -> float | None:
    """A stored value, or a ratio ``a/b`` of two (inf for x/0 with x > 0, nan for 0/0); None when missing."""
    if "/" not in key:
        value = values.get((row, dataset, key))
        return None if value is None or not math.isfinite(value) else float(value)
    a, b = (value_of(values, row, dataset, part) for part in key.split("/", 1))
    if a is None or b is None:
        return None
    if b == 0:
        return math.inf if a > 0 else math.nan
    return a / b


def evaluate_claims(claims: Iterable[ClaimSpec], values: Values, default_dataset: str) -> list[ClaimCheck]:
    """Every claim against ``values`` (store rows and any extra rows, by id)."""
    out = []
    for claim in claims:
        dataset = claim.dataset or default_dataset
        pairs = [(m, r) for m in claim.models for r in claim.references]

        def compare(key: str, limit: float | None) -> tuple[ClaimResult, ...]:
            return tuple(ClaimResult(claim, value_of(values, m, dataset, key), value_of(values, r, dataset, key),
                                     key, m, r, limit) for m, r in pairs)

        out.append(ClaimCheck(claim, compare(claim.value, None),
                              tuple(c for cond in claim.given for c in compare(cond.value, cond.max_ratio))))
    return out


def latest_spec(store: Store, table: str) -> BenchmarkSpec | None:
    """The spec of the newest benchmark run into ``table`` (claims are taken from it); a one-cell run
    that scored a single model into the table (``smisbench.benchmark.single``) states no claims of its own."""
    from smisbench.benchmark.single import is_single

    runs = [r for r in store.runs() if r.table == table and not is_single(r.spec_source)]
    if not runs:
        return None
    run = store.run(runs[-1].run_id)
    return parse_spec(run["spec_text"], run["spec_source"] or f"run {run['run_id']}")


def store_values(store: Store, table: str) -> dict[tuple[str, str, str], float]:
    """The newest finite value of every (model id, dataset id, value key) of the table's benchmark runs
    (one-cell user runs state no claims); over K seeds, their mean."""
    from smisbench.benchmark.single import is_single

    values: dict[tuple[str, str, str], float] = {}
    for run in (r for r in store.runs() if r.table == table and not is_single(r.spec_source)):
        for (model, dataset, _split, metric), entry in values_of_run(store, run.run_id).items():
            if math.isfinite(entry["value"]):
                values[(model, dataset, metric)] = entry["value"]
    return values


def check_claims(store: Store, table: str, extra_rows: Mapping[str, Mapping[tuple[str, str], float]] | None = None,
                 spec: BenchmarkSpec | None = None) -> list[ClaimCheck]:
    """The claims of ``spec`` (default: the newest run's spec) on the store's values of ``table``.

    ``extra_rows`` maps a row id (``REAL_ROW``) to {(dataset id, value key): value}.
    """
    spec = spec or latest_spec(store, table)
    if spec is None or not spec.claims:
        return []
    values = store_values(store, table)
    for row, row_values in (extra_rows or {}).items():
        for (dataset, key), value in row_values.items():
            values[(row, dataset, key)] = value
    return evaluate_claims(spec.claims, values, spec.datasets[0].id)
