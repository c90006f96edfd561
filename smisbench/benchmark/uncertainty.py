"""Uncertainty over seeds: mean ± std and a bootstrap 95 % interval of the mean.

A spec run with K seeds (``seeds = K``) gives every value K seed-level numbers: the same model,
the same images, other codes drawn (the mCSD/mOCD/LPIPS sets, the code of each image FID
sees). :func:`summarise` turns them into the mean, the sample standard deviation (ddof = 1) and
a percentile bootstrap interval of the mean: ``BOOTSTRAP_RESAMPLES`` = 1000 resamples (with
replacement) of the K seed-level values, drawn from a generator with the fixed seed
``BOOTSTRAP_SEED``, so the same numbers always give the same interval.

The interval is **over seeds, not over images**: it says how far the value moves when the codes
change, for this model and this image set. With few seeds it is crude (K = 2 has only three
possible resampled means, so the interval is the two values' range); run 5 or more for a
usable one. An interval over images or label maps would need the per-item terms (each map's
mCSD/mOCD, each image's contribution to FID); the store keeps only each cell's totals (the
cell details hold per-class CSD/OCD, not per-map terms), so reports offer the over-seeds
interval only. :func:`bootstrap_interval` itself takes any per-item terms, should they be stored.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np

BOOTSTRAP_RESAMPLES = 1000
BOOTSTRAP_SEED = 0
LEVEL = 0.95


def bootstrap_interval(values: Iterable[float], resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                       level: float = LEVEL) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (reproducible: a fixed generator seed)."""
    data = np.asarray(list(values), dtype=np.float64)
    if data.size < 2:
        raise ValueError("a bootstrap interval needs at least two values")
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, data.size, size=(resamples, data.size))].mean(axis=1)
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(means, [tail, 1.0 - tail])
    return float(low), float(high)


@dataclass(frozen=True)
class Spread:
    """One value over seeds: the seed-level numbers, their mean, std and the bootstrap interval of the mean."""

    values: tuple[float, ...]
    mean: float
    std: float | None = None  # None with a single value
    low: float | None = None  # bootstrap interval of the mean (None with a single value)
    high: float | None = None

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def has_interval(self) -> bool:
        return self.low is not None and self.high is not None

    @property
    def width(self) -> float:
        return (self.high - self.low) if self.has_interval else 0.0

    def contains(self, x: float) -> bool:
        return self.has_interval and self.low <= x <= self.high

    def overlaps(self, other: "Spread") -> bool:
        return self.has_interval and other.has_interval and self.low <= other.high and other.low <= self.high

    def scaled(self, factor: float) -> "Spread":
        """The same spread in other units (a report's scale: percent, millions)."""
        low, high = (None, None) if not self.has_interval else sorted((self.low * factor, self.high * factor))
        return Spread(tuple(v * factor for v in self.values), self.mean * factor,
                      None if self.std is None else self.std * abs(factor), low, high)


def summarise(values: Iterable[float]) -> Spread | None:
    """Mean, std and (for two values or more) the bootstrap interval of the finite ``values``; None if none is."""
    finite = tuple(float(v) for v in values if v is not None and math.isfinite(float(v)))
    if not finite:
        return None
    mean = float(np.mean(finite))
    if len(finite) == 1:
        return Spread(finite, mean)
    low, high = bootstrap_interval(finite)
    return Spread(finite, mean, float(np.std(finite, ddof=1)), low, high)


def describe() -> str:
    """One sentence for report notes: what the ± and the interval are."""
    return (f"mean ± std over seeds (sample std); the CSV adds a {LEVEL:.0%} percentile bootstrap interval of the "
            f"mean ({BOOTSTRAP_RESAMPLES} resamples of the seed-level values, generator seed {BOOTSTRAP_SEED}): "
            "an interval over seeds (the codes drawn), not over images.")
