"""Uncertainty over seeds: mean ± std and the bootstrap interval of the mean, on known numbers."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smisbench.benchmark.uncertainty import BOOTSTRAP_RESAMPLES, Spread, bootstrap_interval, summarise


def test_mean_and_sample_std_of_known_numbers():
    spread = summarise([1.0, 2.0, 3.0, 4.0])
    assert spread.n == 4 and spread.mean == 2.5
    assert spread.std == pytest.approx(math.sqrt(5.0 / 3.0))  # ddof = 1: sum of squares 5 over 3
    assert spread.low <= spread.mean <= spread.high


def test_interval_is_reproducible_and_matches_the_normal_approximation():
    values = list(range(1, 11))  # mean 5.5, population std 2.872, so the mean's bootstrap std is 0.908
    first, again = bootstrap_interval(values), bootstrap_interval(values)
    assert first == again  # a fixed generator seed: the same numbers give the same interval
    half = 1.96 * np.std(values) / math.sqrt(len(values))
    assert first[0] == pytest.approx(5.5 - half, abs=0.25) and first[1] == pytest.approx(5.5 + half, abs=0.25)
    assert bootstrap_interval(values, seed=1) != first  # the seed is what fixes it
    assert BOOTSTRAP_RESAMPLES == 1000


def test_two_seeds_give_their_range():
    # resampling two values gives only a, (a+b)/2 and b, a quarter of the time each end: the 2.5 % and
    # 97.5 % quantiles are the two values themselves
    spread = summarise([10.0, 12.0])
    assert (spread.low, spread.high) == (10.0, 12.0) and spread.mean == 11.0


def test_one_value_has_no_spread_and_non_finite_values_are_left_out():
    one = summarise([3.0])
    assert (one.mean, one.std, one.low, one.high, one.has_interval) == (3.0, None, None, None, False)
    assert summarise([math.nan, 2.0, 4.0]).values == (2.0, 4.0)
    assert summarise([math.nan, None]) is None
    with pytest.raises(ValueError):
        bootstrap_interval([1.0])


def test_equal_values_give_a_zero_width_interval():
    spread = summarise([0.5, 0.5, 0.5])
    assert spread.std == 0.0 and (spread.low, spread.high) == (0.5, 0.5) and spread.width == 0.0


def test_scaled_contains_and_overlaps():
    spread = Spread((0.1, 0.2), 0.15, 0.07, 0.1, 0.2)
    percent = spread.scaled(100.0)
    assert percent.mean == pytest.approx(15.0) and percent.std == pytest.approx(7.0)
    assert (percent.low, percent.high) == pytest.approx((10.0, 20.0))
    assert spread.contains(0.15) and not spread.contains(0.25)
    assert spread.overlaps(Spread((0.19, 0.3), 0.25, 0.1, 0.19, 0.3))
    assert not spread.overlaps(Spread((0.21, 0.3), 0.25, 0.1, 0.21, 0.3))
    assert not spread.overlaps(Spread((0.15,), 0.15))  # a single value has no interval to overlap


def test_per_item_terms_bootstrap_the_same_way():
    """The interval takes any terms, e.g. per-map mCSD terms, should a cell store them."""
    rng = np.random.default_rng(5)
    terms = rng.normal(0.03, 0.01, size=200)
    low, high = bootstrap_interval(terms)
    assert low < terms.mean() < high and high - low == pytest.approx(2 * 1.96 * terms.std() / math.sqrt(200),
                                                                      rel=0.2)
