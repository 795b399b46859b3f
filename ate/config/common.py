"""Pieces shared by sequence and fixture models: strict base model, durations, limits."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator

from ate.model.limits import Limits
from ate.model.units import ALLOWED_UNITS, Quantity

_DURATION_RE = re.compile(r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|min)?\s*$")
_SCALE = {"ms": 1e-3, "s": 1.0, "min": 60.0, None: 1.0}


class Strict(BaseModel):
    """Unknown fields are errors: a typo in a sequence must not pass silently."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


def _parse_duration(value: Any) -> Any:
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if not m:
            raise ValueError(f"duration {value!r}: write seconds (2.5), or '500ms', '2s', '1min'")
        return float(m.group(1)) * _SCALE[m.group(2)]
    return value


# Seconds; YAML may say 2, 2.5, "500ms", "2s" or "1min".
Duration = Annotated[float, BeforeValidator(_parse_duration)]


class LimitSpec(Strict):
    """`limits: {low: 20, high: 45, unit: mA}`; either side may be left open."""

    low: float | None = None
    high: float | None = None
    unit: str = ""
    expect: float | None = None

    @model_validator(mode="after")
    def _sense(self) -> LimitSpec:
        if self.unit not in ALLOWED_UNITS and self.unit != "":
            raise ValueError(f"unknown unit {self.unit!r}; allowed: {', '.join(ALLOWED_UNITS)}")
        if self.low is None and self.high is None and self.expect is None:
            raise ValueError("a limit needs low, high or expect")
        self.to_limits()  # inverted limits, expect mixed with a range
        return self

    def to_limits(self) -> Limits:
        return Limits(low=self.low, high=self.high, unit=self.unit, expect=self.expect)

    def for_quantity(self, quantity: Quantity) -> Limits:
        limits = self.to_limits()
        limits.check_fits(quantity)
        return limits
