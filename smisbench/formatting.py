"""How numbers are shown: one rule for every table, so a tiny value never prints as a bare zero."""

from __future__ import annotations

import math


def decimals(value: float, digits: int) -> int:
    """``digits``, or more for a non-zero value that ``digits`` decimals would show as 0 (two significant digits).

    A 162-parameter model is 0.00016 M, not "0.0" M; 0 stays 0.0 and NaN/inf are left alone.
    """
    if value != 0 and math.isfinite(value) and abs(value) < 10.0 ** -digits:
        return 1 - math.floor(math.log10(abs(value)))
    return digits


def fixed(value: float, digits: int, width: int = 0) -> str:
    """``value`` with :func:`decimals` decimals, right-aligned in ``width``."""
    return f"{value:{width}.{decimals(value, digits)}f}"


PLUS_MINUS = "±"


def mean_std(mean: str, std: str) -> str:
    """A value over several seeds, as every output shows it: "mean ± std" (each side already formatted)."""
    return f"{mean} {PLUS_MINUS} {std}"
