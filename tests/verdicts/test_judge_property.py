"""Limits.judge over the whole input space: never a PASS for a value it cannot order.

Hypothesis draws every float (NaN, both infinities, -0.0, subnormals, the extremes),
ints of any size, bools, text and None, against every limit shape: low only, high only,
both, an equal pair, an exact expected value, and no bound at all.
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ate.model.limits import Limits
from ate.model.verdict import Verdict

finite = st.floats(allow_nan=False, allow_infinity=False, allow_subnormal=True)
bound = st.one_of(st.none(), finite, st.integers(-(2**60), 2**60))


@st.composite
def limits(draw: st.DrawFn) -> Limits:
    shape = draw(st.sampled_from(["low", "high", "both", "equal", "expect", "none"]))
    a, b = draw(finite), draw(finite)
    if shape == "low":
        return Limits(low=a)
    if shape == "high":
        return Limits(high=a)
    if shape == "both":
        return Limits(low=min(a, b), high=max(a, b))
    if shape == "equal":
        return Limits(low=a, high=a)
    if shape == "expect":
        return Limits(expect=a)
    return Limits()


anything = st.one_of(
    st.floats(allow_subnormal=True),  # NaN and the infinities included
    st.integers(),
    st.booleans(),
    st.text(max_size=8),
    st.none(),
    st.binary(max_size=4),
)


def _within(value: float, lim: Limits) -> bool:
    if lim.expect is not None:
        return value == lim.expect
    return (lim.low is None or value >= lim.low) and (lim.high is None or value <= lim.high)


@settings(max_examples=3000, derandomize=True)
@given(lim=limits(), value=anything)
def test_pass_exactly_when_a_finite_number_is_within(lim: Limits, value: Any) -> None:
    verdict = lim.judge(value)
    orderable = (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and (not isinstance(value, float) or math.isfinite(value))
    )
    if not orderable:
        assert verdict is Verdict.ERROR, (value, lim)
    elif _within(value, lim):
        assert verdict is Verdict.PASS, (value, lim)
    else:
        assert verdict is Verdict.FAIL, (value, lim)


@settings(max_examples=500, derandomize=True)
@given(lim=limits())
def test_nan_and_infinities_are_never_judged(lim: Limits) -> None:
    for value in (math.nan, -math.nan, math.inf, -math.inf):
        assert lim.judge(value) is Verdict.ERROR


def test_negative_zero_and_subnormals_are_ordinary_numbers() -> None:
    assert Limits(low=0.0).judge(-0.0) is Verdict.PASS
    assert Limits(expect=0).judge(-0.0) is Verdict.PASS
    assert Limits(high=0.0).judge(5e-324) is Verdict.FAIL
    assert Limits(low=5e-324).judge(5e-324) is Verdict.PASS


def test_a_conversion_that_overflows_is_not_judged() -> None:
    assert Limits(low=0.0, unit="uA").judge(1e303, "A") is Verdict.ERROR


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, True, "1"])
@pytest.mark.parametrize("field", ["low", "high", "expect"])
def test_a_limit_must_be_a_finite_number(field: str, bad: Any) -> None:
    with pytest.raises(ValueError, match=f"limit {field} must be"):
        Limits(**{field: bad})
