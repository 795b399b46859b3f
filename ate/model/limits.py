"""Limits with units, checked for sense when declared and applied to measurements.

A limit is low/high in one unit (either side may be open), or an exact expected value.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ate.model.units import UNITS, Quantity, convert, quantity_of, units_for
from ate.model.verdict import Verdict


@dataclass(frozen=True, slots=True)
class Limits:
    low: float | None = None
    high: float | None = None
    unit: str = ""
    expect: float | None = None  # exact match, for integer readings

    def __post_init__(self) -> None:
        quantity_of(self.unit)  # raises ValueError naming the allowed units
        for name in ("low", "high", "expect"):
            bound = getattr(self, name)
            if bound is None:
                continue
            if isinstance(bound, bool) or not isinstance(bound, int | float):
                raise ValueError(f"limit {name} must be a number, got {bound!r}")
            if not math.isfinite(bound):
                raise ValueError(f"limit {name} must be finite, got {bound!r}")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise ValueError(f"inverted limits: low {self.low} > high {self.high}")
        if self.expect is not None and (self.low is not None or self.high is not None):
            raise ValueError("give either expect or low/high, not both")

    def check_fits(self, quantity: Quantity) -> None:
        """Raise ValueError when this limit's unit does not measure `quantity`."""
        if UNITS[self.unit][0] is not quantity:
            allowed = ", ".join(repr(u) for u in units_for(quantity))
            raise ValueError(
                f"unit {self.unit!r} does not fit a {quantity} measurement; allowed: {allowed}"
            )

    def judge(self, value: object, unit: str | None = None) -> Verdict:
        """PASS when `value` (in `unit`, default this limit's unit) is within limits.

        A value that cannot be ordered against a number (NaN, an infinity, a bool, text,
        anything not an int or float) is ERROR: never judged, so never PASS by default.
        """
        if isinstance(value, bool) or not isinstance(value, int | float):
            return Verdict.ERROR
        if isinstance(value, float) and not math.isfinite(value):
            return Verdict.ERROR
        if unit is not None and unit != self.unit:
            value = convert(value, unit, self.unit)
            if not math.isfinite(value):  # overflowed in the conversion
                return Verdict.ERROR
        if self.expect is not None:
            return Verdict.PASS if value == self.expect else Verdict.FAIL
        if self.low is not None and value < self.low:
            return Verdict.FAIL
        if self.high is not None and value > self.high:
            return Verdict.FAIL
        return Verdict.PASS

    def describe(self) -> str:
        u = f" {self.unit}" if self.unit else ""
        if self.expect is not None:
            return f"== {_fmt(self.expect)}{u}"
        if self.low is not None and self.high is not None:
            return f"{_fmt(self.low)} .. {_fmt(self.high)}{u}"
        if self.low is not None:
            return f">= {_fmt(self.low)}{u}"
        if self.high is not None:
            return f"<= {_fmt(self.high)}{u}"
        return "any"

    def as_dict(self) -> dict[str, float | str | None]:
        return {"low": self.low, "high": self.high, "expect": self.expect, "unit": self.unit}


def _fmt(x: float) -> str:
    return f"{x:g}"
