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


# ----------------------------------------------------------------------------- the paper's findings (demo.toml)
from smisbench.benchmark.catalog import catalog  # noqa: E402
from smisbench.benchmark.spec import REAL_ROW, load_spec, parse_spec  # noqa: E402
from smisbench.reports.claims import evaluate_claims, value_of  # noqa: E402

D = "synthetic"


def _paper_like() -> dict[tuple[str, str, str], float]:
    """Numbers shaped like the paper's: every finding holds."""
    rows = {
        "groupdnet": {"mcsd": 0.026, "mocd": 0.003, "fid": 10.0, "fps": 12.0, "locality": 0.9, "miou": 0.80},
        "vspade": {"mcsd": 0.030, "mocd": 0.18, "fid": 10.0, "fps": 20.0, "locality": 0.3},
        "bicyclegan": {"mcsd": 0.031, "mocd": 0.21, "fid": 40.0, "fps": 60.0, "locality": 0.2, "miou": 0.70},
        "dscgan": {"mcsd": 0.024, "mocd": 0.16, "fid": 38.0, "fps": 60.0, "locality": 0.2, "miou": 0.75},
        "groupnet": {"fps": 8.0}, "mulnet": {"fps": 6.0}, "groupdnet_wo_split": {"mocd": 0.019},
        "pix2pixhd": {"miou": 0.78}, "spade": {"miou": 0.79}, REAL_ROW: {"miou": 0.95},
    }
    return {(row, D, key): value for row, values in rows.items() for key, value in values.items()}


def _verdicts(values) -> list[str]:
    return [c.verdict for c in evaluate_claims(load_spec("demo").claims, values, D)]


def test_the_paper_findings_hold_on_paper_like_numbers():
    assert _verdicts(_paper_like()) == ["holds"] * 5


@pytest.mark.parametrize("finding, row, key, planted", [
    (0, "vspade", "mocd", 0.01),  # GroupDNet's mOCD/mCSD no longer at most a third of VSPADE's
    (0, "groupdnet", "fid", 30.0),  # ... nor at comparable FID (the given condition fails)
    (1, "mulnet", "fps", 13.0),  # MulNet faster than GroupDNet
    (2, "groupdnet_wo_split", "mocd", 0.001),  # removing the split lowered mOCD
    (3, "spade", "miou", 0.97),  # a generator above the real ceiling
    (4, "dscgan", "locality", 0.95),  # locality ranks DSCGAN above GroupDNet
])
def test_a_planted_counter_example_does_not_hold(finding, row, key, planted):
    values = _paper_like()
    values[(row, D, key)] = planted
    verdicts = _verdicts(values)
    assert verdicts[finding] == "does not hold"
    assert verdicts[:finding] + verdicts[finding + 1:] == ["holds"] * 4
    check = evaluate_claims(load_spec("demo").claims, values, D)[finding]
    assert "does not hold" in check.sentence() and f"{planted:.4g}" in check.sentence()


def test_one_missing_pair_makes_the_claim_not_measured_and_says_which():
    values = _paper_like()
    del values[("dscgan", D, "mcsd")]
    check = evaluate_claims(load_spec("demo").claims, values, D)[0]
    assert check.verdict == "not measured" and "mocd/mcsd of dscgan not measured" in check.sentence()


def test_ratio_values_take_their_direction_from_the_numerator():
    assert catalog().value("mocd/mcsd").direction == "lower" and catalog().value("mcsd/mocd").direction == "higher"
    assert catalog().ratio("fid/mocd") is None and catalog().ratio("fid") is None
    values = {("a", D, "mocd"): 0.0, ("a", D, "mcsd"): 0.0, ("b", D, "mocd"): 0.1, ("b", D, "mcsd"): 0.0}
    assert math.isnan(value_of(values, "a", D, "mocd/mcsd")) and value_of(values, "b", D, "mocd/mcsd") == math.inf
    assert value_of(values, "c", D, "mocd/mcsd") is None


SPEC = """
name = "t"
metrics = ["fid"]
[[datasets]]
name = "synthetic"
[[models]]
name = "groupdnet"
[[models]]
name = "vspade"
[[claims]]
text = "x"
value = "VALUE"
model = MODEL
reference = REFERENCE
max_ratio = 0.5
"""


def _spec(value="mocd/mcsd", model='"groupdnet"', reference='["vspade", "real"]', extra=""):
    return parse_spec(SPEC.replace("VALUE", value).replace("MODEL", model).replace("REFERENCE", reference) + extra)


def test_spec_claims_take_lists_ratios_the_real_row_and_conditions():
    claim = _spec(extra='given = [{ value = "fid", max_ratio = 1.25 }]\n').claims[0]
    assert claim.models == ("groupdnet",) and claim.references == ("vspade", REAL_ROW)
    assert claim.value == "mocd/mcsd" and claim.given[0].value == "fid" and claim.given[0].max_ratio == 1.25


@pytest.mark.parametrize("edit, key, words", [
    ({"value": "fid/mocd"}, "claims[0].value", "not allowed"),
    ({"reference": '["vspade", "spade"]'}, "claims[0].reference", "no model with id 'spade'"),
    ({"model": "[]"}, "claims[0].model", "at least one"),
    ({"extra": 'given = [{ value = "fid" }]\n'}, "claims[0].given[0].max_ratio", "missing"),
])
def test_bad_claims_name_the_key(edit, key, words):
    from smisbench.benchmark.spec import SpecError

    with pytest.raises(SpecError) as err:
        _spec(**edit)
    assert err.value.key == key and words in str(err.value)
