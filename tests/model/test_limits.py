"""Limits and units: sense checks at declaration, judgement with unit conversion."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ate.model.limits import Limits
from ate.model.units import Quantity, convert
from ate.model.verdict import Verdict, worst


def test_inverted_limits_are_refused() -> None:
    with pytest.raises(ValueError, match="inverted"):
        Limits(low=5, high=1, unit="mA")


def test_unknown_unit_names_the_allowed_ones() -> None:
    with pytest.raises(ValueError, match="allowed: A, mA, uA, V, mV, dBm, ppm, %"):
        Limits(low=1, unit="ohm")


def test_unit_must_fit_the_quantity() -> None:
    Limits(low=1, unit="mA").check_fits(Quantity.CURRENT)
    with pytest.raises(ValueError, match="does not fit a current measurement; allowed: 'A'"):
        Limits(low=1, unit="V").check_fits(Quantity.CURRENT)


def test_expect_and_range_are_exclusive() -> None:
    with pytest.raises(ValueError, match="either expect or low/high"):
        Limits(low=1, expect=2)


@pytest.mark.parametrize(
    ("limits", "value", "unit", "verdict"),
    [
        (Limits(low=20, high=45, unit="mA"), 32.0, None, Verdict.PASS),
        (Limits(low=20, high=45, unit="mA"), 0.050, "A", Verdict.FAIL),
        (Limits(low=20, high=45, unit="mA"), 0.030, "A", Verdict.PASS),
        (Limits(low=5, high=25, unit="uA"), 0.012, "mA", Verdict.PASS),
        (Limits(high=3.4, unit="V"), 3401, "mV", Verdict.FAIL),
        (Limits(low=-65, unit="dBm"), -70, None, Verdict.FAIL),
        (Limits(expect=0x68), 0x68, None, Verdict.PASS),
        (Limits(expect=0x68), 0x69, None, Verdict.FAIL),
    ],
)
def test_judge(limits: Limits, value: float, unit: str | None, verdict: Verdict) -> None:
    assert limits.judge(value, unit) is verdict


@given(st.floats(-1e6, 1e6), st.floats(-1e6, 1e6), st.floats(-1e6, 1e6))
def test_judge_matches_interval_membership(a: float, b: float, x: float) -> None:
    low, high = min(a, b), max(a, b)
    expected = Verdict.PASS if low <= x <= high else Verdict.FAIL
    assert Limits(low=low, high=high, unit="V").judge(x) is expected


@given(st.floats(1e-9, 1e3))
def test_convert_round_trip(x: float) -> None:
    assert convert(convert(x, "mA", "uA"), "uA", "mA") == pytest.approx(x)


def test_convert_across_quantities_is_refused() -> None:
    with pytest.raises(ValueError, match="cannot convert"):
        convert(1.0, "mA", "V")


def test_describe() -> None:
    assert Limits(low=20, high=45, unit="mA").describe() == "20 .. 45 mA"
    assert Limits(high=3.4, unit="V").describe() == "<= 3.4 V"
    assert Limits(expect=1).describe() == "== 1"


def test_worst_verdict() -> None:
    assert worst() is Verdict.PASS
    assert worst(Verdict.PASS, Verdict.FAIL) is Verdict.FAIL
    assert worst(Verdict.FAIL, Verdict.ERROR, Verdict.PASS) is Verdict.ERROR
    assert worst(Verdict.ERROR, Verdict.ABORTED) is Verdict.ABORTED
