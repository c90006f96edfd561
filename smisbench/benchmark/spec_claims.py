"""The claims of a benchmark spec (``[[claims]]``), parsed and checked against the spec's model and dataset ids.

A claim names a value (or a ratio of two), the models and references it compares and a bound; checking
it on measured numbers is :mod:`smisbench.reports.claims`.
"""

from __future__ import annotations

from dataclasses import dataclass

from smisbench.benchmark.catalog import catalog
from smisbench.benchmark.spec_reader import TableReader

CLAIM_KEYS = ("text", "value", "model", "reference", "max_ratio", "dataset", "given")
CONDITION_KEYS = ("value", "max_ratio")

REAL_ROW = "real"  # what claims call the real-data row (the real images scored by the same code)


@dataclass(frozen=True)
class ClaimCondition:
    """A further test on the same pairs that the claim needs (the paper's "at comparable FID")."""

    value: str
    max_ratio: float


@dataclass(frozen=True)
class ClaimSpec:
    """A claim checked on measured numbers: the model is at most ``max_ratio`` times as bad as the reference
    in the value's direction (model/reference for lower-is-better values, reference/model for higher).

    ``value`` is a value key or a ratio of two (``"mocd/mcsd"``); ``model`` and ``reference`` are model
    ids (or :data:`REAL_ROW`), one or several: the claim holds when it holds for every pair, and every
    ``given`` condition holds for every pair too.
    """

    text: str
    value: str
    model: str | tuple[str, ...]
    reference: str | tuple[str, ...]
    max_ratio: float
    dataset: str | None = None
    given: tuple[ClaimCondition, ...] = ()

    @property
    def models(self) -> tuple[str, ...]:
        return (self.model,) if isinstance(self.model, str) else tuple(self.model)

    @property
    def references(self) -> tuple[str, ...]:
        return (self.reference,) if isinstance(self.reference, str) else tuple(self.reference)


def _claim_value(reader: TableReader, name: str) -> str:
    value = reader.text(name, required=True)
    if value not in catalog().values and catalog().ratio(value) is None:
        raise reader.error(name, f"{value!r} is not allowed: neither a value key nor a ratio of two",
                           f"use one of: {', '.join(catalog().values)}, or A/B of a higher- and a lower-is-better "
                           "value (mocd/mcsd)")
    return value


def _claim_ids(reader: TableReader, name: str, model_ids: set[str]) -> str | tuple[str, ...]:
    raw = reader.get(name, (str, list), "a model id or an array of them", required=True)
    ids = (raw,) if isinstance(raw, str) else tuple(raw)
    if not ids:
        raise reader.error(name, "must name at least one model")
    for ident in ids:
        if not isinstance(ident, str) or (ident not in model_ids and ident != REAL_ROW):
            raise reader.error(name, f"no model with id {ident!r}",
                               f"use one of: {', '.join(sorted(model_ids))}, or {REAL_ROW!r} (the real-data row)")
    return raw if isinstance(raw, str) else ids


def _ratio(reader: TableReader) -> float:
    value = reader.get("max_ratio", (float,), "a number", required=True)
    if value <= 0:
        raise reader.error("max_ratio", "must be positive")
    return value


def parse_claim(reader: TableReader, model_ids: set[str], dataset_ids: set[str]) -> ClaimSpec:
    """One ``[[claims]]`` table; its models and dataset must be ids the spec defines."""
    reader.only(CLAIM_KEYS)
    given = []
    for sub in reader.tables("given"):
        sub.only(CONDITION_KEYS)
        given.append(ClaimCondition(_claim_value(sub, "value"), _ratio(sub)))
        sub.finish()
    claim = ClaimSpec(
        text=reader.text("text", required=True),
        value=_claim_value(reader, "value"),
        model=_claim_ids(reader, "model", model_ids),
        reference=_claim_ids(reader, "reference", model_ids),
        max_ratio=_ratio(reader),
        dataset=reader.text("dataset"),
        given=tuple(given),
    )
    if claim.dataset is not None and claim.dataset not in dataset_ids:
        raise reader.error("dataset", f"no dataset with id {claim.dataset!r}",
                           f"use one of: {', '.join(sorted(dataset_ids))}")
    reader.finish()
    return claim
