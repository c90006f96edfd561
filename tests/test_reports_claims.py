"""Claims: a measured 0 is a number, not "not measured"; the value's direction decides which side must be smaller."""

from __future__ import annotations

import math

import pytest

from smisbench.benchmark.spec import ClaimSpec
from smisbench.reports.claims import ClaimResult


def _claim(value: str, model: float | None, reference: float | None, max_ratio: float = 0.5) -> ClaimResult:
    return ClaimResult(ClaimSpec("claim", value, "groupdnet", "vspade", max_ratio), model, reference)


@pytest.mark.parametrize("model, reference, verdict", [
    (0.0, 0.0, "holds"),  # both exactly 0: the model is not worse
    (0.01, 0.0, "does not hold"),  # any mOCD above a reference of 0 is worse
    (0.0, 0.2, "holds"),
    (0.05, 0.2, "holds"),
    (0.15, 0.2, "does not hold"),
])
def test_a_lower_is_better_value_of_zero_is_a_measurement(model, reference, verdict):
    result = _claim("mocd", model, reference)
    assert result.verdict == verdict
    assert "not measured" not in result.sentence()


def test_zero_reference_ratio_is_infinite_or_undefined_not_missing():
    assert _claim("mocd", 0.01, 0.0).ratio == math.inf
    both = _claim("mocd", 0.0, 0.0)
    assert math.isnan(both.ratio) and "undefined (both 0)" in both.sentence()


@pytest.mark.parametrize("model, reference, verdict", [
    (0.3, 0.1, "holds"),  # mCSD three times the reference: better, the claim "at most half as good" holds
    (0.1, 0.3, "does not hold"),
    (0.0, 0.1, "does not hold"),  # no class-specific diversity at all
    (0.1, 0.0, "holds"),
])
def test_a_higher_is_better_value_is_judged_the_other_way_round(model, reference, verdict):
    result = _claim("mcsd", model, reference)
    assert result.higher_is_better and result.verdict == verdict
    assert "higher is better" in result.sentence()


def test_only_a_missing_value_is_not_measured():
    for model, reference in ((None, 0.0), (0.0, None), (None, None)):
        result = _claim("mocd", model, reference)
        assert result.verdict == "not measured" and result.ratio is None
        assert "not measured" in result.sentence()
