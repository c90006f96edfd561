"""A speed ratio from alternating rounds: each round times the baseline, then the candidate, at once.

On this shared VM the speed drifts by 15 % or more over minutes, so a ratio of two medians taken minutes
apart carries that drift; pairs taken seconds apart do not, and their median ratio is the steadier number.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class PairedRatio:
    baseline_seconds: tuple[float, ...]
    candidate_seconds: tuple[float, ...]

    @property
    def ratios(self) -> tuple[float, ...]:
        """Per round: baseline time over candidate time (how many times faster the candidate is)."""
        return tuple(b / c for b, c in zip(self.baseline_seconds, self.candidate_seconds))

    @property
    def median(self) -> float:
        return statistics.median(self.ratios)

    def summary(self) -> str:
        return (f"median of {len(self.ratios)} alternating pairs {self.median:.2f}x "
                f"(range {min(self.ratios):.2f}-{max(self.ratios):.2f})")


def paired_ratio(baseline: Callable[[], object], candidate: Callable[[], object], rounds: int = 5,
                 baseline_context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
                 clock: Callable[[], float] = time.perf_counter) -> PairedRatio:
    """Time ``baseline`` (inside a fresh ``baseline_context()``) and then ``candidate``, ``rounds`` times."""
    base, cand = [], []
    for _ in range(rounds):
        with baseline_context():
            start = clock()
            baseline()
            base.append(clock() - start)
        start = clock()
        candidate()
        cand.append(clock() - start)
    return PairedRatio(tuple(base), tuple(cand))
