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


def timer(run: Callable[[], object],
          context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
          clock: Callable[[], float] = time.perf_counter) -> Callable[[], float]:
    """A callable that runs ``run`` once (inside a fresh ``context()``) and returns its seconds."""

    def measure() -> float:
        with context():
            start = clock()
            run()
            return clock() - start

    return measure


def paired_ratio(baseline: Callable[[], float], candidate: Callable[[], float], rounds: int = 5) -> PairedRatio:
    """``rounds`` pairs of timings, the baseline then the candidate; each callable returns its seconds
    (:func:`timer`, or a process of its own that times itself)."""
    base, cand = [], []
    for _ in range(rounds):
        base.append(baseline())
        cand.append(candidate())
    return PairedRatio(tuple(base), tuple(cand))
