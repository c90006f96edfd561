"""The paper's printed tables (paper_numbers.toml) as typed data, for reports to print beside ours."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

from smisbench.packaged import packaged_toml


@dataclass(frozen=True)
class Column:
    """One table column: a value key measured on one dataset."""

    dataset: str
    value: str

    @classmethod
    def parse(cls, text: str) -> "Column":
        dataset, sep, value = text.partition(":")
        if not sep or not dataset or not value:
            raise ValueError(f"column {text!r} is not DATASET:VALUE")
        return cls(dataset, value)

    def __str__(self) -> str:
        return f"{self.dataset}:{self.value}"


@dataclass(frozen=True)
class PaperTable:
    name: str
    title: str
    source: str
    columns: tuple[Column, ...]
    rows: dict[str, tuple[float, ...]]  # row label -> numbers in column order (nan = not printed)
    notes: tuple[str, ...] = ()

    def value(self, row: str, column: Column) -> float | None:
        """The paper's number, or None where the paper has no such row/column/number."""
        if row not in self.rows or column not in self.columns:
            return None
        number = self.rows[row][self.columns.index(column)]
        return None if math.isnan(number) else number


def _parse(data: dict) -> dict[str, PaperTable]:
    tables = {}
    for name, body in data["tables"].items():
        columns = tuple(Column.parse(c) for c in body["columns"])
        rows = {}
        for label, numbers in body["rows"].items():
            if len(numbers) != len(columns):
                raise ValueError(f"paper_numbers.toml: tables.{name}.rows.{label} has {len(numbers)} numbers "
                                 f"for {len(columns)} columns")
            rows[label] = tuple(float(n) for n in numbers)
        tables[name] = PaperTable(name, body["title"], body.get("source", ""), columns, rows,
                                  tuple(body.get("notes", ())))
    return tables


@functools.lru_cache(maxsize=1)
def paper_tables() -> dict[str, PaperTable]:
    """Every table the paper prints, by the name specs use in ``table = ...``."""
    return _parse(packaged_toml("smisbench.benchmark", "paper_numbers.toml"))
