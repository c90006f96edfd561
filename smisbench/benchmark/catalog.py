"""The metric catalog: which metric names a spec may list (the metric registry) and how each stored
value is judged (metrics.toml).

A metric's name and the value keys it stores are written once, where it is registered
(:func:`smisbench.metrics.registry.register_metric`); a changed tolerance or a unit fix is one
edit in metrics.toml. Both are shared by spec validation, ``compare`` and the reports.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from smisbench.packaged import packaged_toml

DIRECTIONS = ("higher", "lower", "equal")


@dataclass(frozen=True)
class ValueInfo:
    """One stored number: label, better direction, regression tolerance and display units."""

    key: str
    label: str
    direction: str
    abs_tolerance: float = 0.0
    rel_tolerance: float = 0.0
    scale: float = 1.0
    digits: int = 3
    computable: bool = True

    def tolerance(self, reference: float) -> float:
        """Allowed change around ``reference`` before a change counts (the larger of abs and rel)."""
        rel = self.rel_tolerance * abs(reference) if math.isfinite(reference) else 0.0
        return max(self.abs_tolerance, rel)

    def display(self, stored: float) -> float:
        """A stored value in the paper's units."""
        return stored * self.scale

    def format(self, shown: float) -> str:
        """``digits`` decimals; a non-zero value too small for them (0.004 M parameters) gets two significant digits."""
        return f"{shown:.{self.decimals(shown)}f}"

    def decimals(self, shown: float) -> int:
        from smisbench.formatting import decimals

        return decimals(shown, self.digits)


@dataclass(frozen=True)
class Catalog:
    values: dict[str, ValueInfo]

    @property
    def metrics(self) -> dict[str, Any]:
        """Every registered metric (built-ins, then plug-ins) by name: ``MetricEntry`` with ``produces``."""
        from smisbench.metrics.registry import registered_entries

        return {entry.name: entry for entry in registered_entries()}

    def value(self, key: str) -> ValueInfo:
        """Info for a value key or a ratio ``"a/b"``; unknown keys (extra numbers an evaluator stores) are
        informational."""
        if key in self.values:
            return self.values[key]
        derived = self.ratio(key)
        if derived is not None:
            return derived
        return ValueInfo(key=key, label=key, direction="equal", abs_tolerance=math.inf)

    def ratio(self, key: str) -> ValueInfo | None:
        """A derived value ``"a/b"`` (mOCD per unit of mCSD, say); None when ``key`` is not a ratio of two
        known values judged in opposite directions (only then does the ratio have a better direction)."""
        a, sep, b = key.partition("/")
        if not sep or a not in self.values or b not in self.values:
            return None
        da, db = self.values[a].direction, self.values[b].direction
        if {da, db} != {"higher", "lower"}:
            return None
        return ValueInfo(key=key, label=f"{self.values[a].label}/{self.values[b].label}", direction=da,
                         digits=3)

    def produces(self, metrics: list[str] | tuple[str, ...]) -> list[str]:
        keys: list[str] = []
        for name in metrics:
            for key in self.metrics[name].produces:
                if key not in keys:
                    keys.append(key)
        return keys


def _parse(data: dict) -> Catalog:
    values = {}
    for key, body in data["values"].items():
        if body["direction"] not in DIRECTIONS:
            raise ValueError(f"metrics.toml: values.{key}.direction must be one of {DIRECTIONS}")
        tolerance = body.get("tolerance", {})
        values[key] = ValueInfo(
            key=key,
            label=str(body.get("label", key)),
            direction=body["direction"],
            abs_tolerance=float(tolerance.get("abs", 0.0)),
            rel_tolerance=float(tolerance.get("rel", 0.0)),
            scale=float(body.get("scale", 1.0)),
            digits=int(body.get("digits", 3)),
            computable=bool(body.get("computable", True)),
        )
    return Catalog(values)


@functools.lru_cache(maxsize=1)
def catalog() -> Catalog:
    """The shipped catalog (read once)."""
    return _parse(packaged_toml("smisbench.benchmark", "metrics.toml"))
