"""Pieces shared by sequence and fixture models: strict base model, durations, limits."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    StrictBool,
    StrictInt,
    WithJsonSchema,
    model_validator,
)

from ate.model.limits import Limits
from ate.model.units import ALLOWED_UNITS, Quantity

_DURATION_PATTERN = r"^\s*([0-9]*\.?[0-9]+)\s*(ms|s|min)?\s*$"
_DURATION_RE = re.compile(_DURATION_PATTERN)
_SCALE = {"ms": 1e-3, "s": 1.0, "min": 60.0, None: 1.0}
# Upper bounds, in seconds. A step that needs longer is a hung DUT, not a test; a typo
# (`timeout: 2000` for 2 s) must not hold a panel for half an hour.
MAX_TIMEOUT = 600.0
MAX_SETTLE = 60.0


class FieldError(ValueError):
    """A ValueError about one part of the value being validated, so that the loader can
    point at that part: `at` is the path below the validator's own location, e.g.
    ("unit",) from a limits validator, or (3, "name") from a validator of a list."""

    def __init__(self, message: str, at: tuple[str | int, ...] = ()) -> None:
        super().__init__(message)
        self.at = at

    def within(self, *outer: str | int) -> FieldError:
        """The same error, seen from a validator `outer` levels further out."""
        return FieldError(str(self), (*outer, *self.at))


class Strict(BaseModel):
    """Unknown fields are errors: a typo in a sequence must not pass silently. Numbers are
    finite: a NaN limit compares false both ways, an infinite one passes everything."""

    model_config = ConfigDict(
        extra="forbid", frozen=True, populate_by_name=True, allow_inf_nan=False
    )


def not_bool(value: Any) -> Any:
    # pydantic's lax number types read true as 1: `retries: yes` must not mean one retry.
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {'true' if value else 'false'}")
    return value


# Whole numbers and flags as YAML wrote them: no true for 1, no "5" for 5, no 1 for true.
Int = StrictInt
Bool = StrictBool
# A number: YAML's int or float, or text that reads as one (YAML 1.1 keeps `1e-3` text);
# never a boolean, never NaN or infinity.
Number = Annotated[float, BeforeValidator(not_bool)]


def _parse_duration(value: Any) -> Any:
    not_bool(value)
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if not m:
            raise ValueError(f"duration {value!r}: write seconds (2.5), or '500ms', '2s', '1min'")
        seconds = float(m.group(1)) * _SCALE[m.group(2)]
        if not math.isfinite(seconds):
            shown = value if len(value) <= 40 else value[:37] + "..."
            raise ValueError(f"duration {shown!r} is not a finite number; numbers must be finite")
        return seconds
    return value


# Seconds; YAML may say 2, 2.5, "500ms", "2s" or "1min". The JSON Schema says so too, or
# editors would flag every "2s" (pydantic would describe only the float).
def _duration_schema(maximum: float) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "anyOf": [
                {"type": "number", "minimum": 0, "maximum": maximum},
                {"type": "string", "pattern": _DURATION_PATTERN},
            ],
            "description": f"seconds (2.5) or a string: '500ms', '2s', '1min'; at most "
            f"{maximum:g} s",
        }
    )


# A step's timeout and a settle time; the models also bound them with le=.
Timeout = Annotated[float, BeforeValidator(_parse_duration), _duration_schema(MAX_TIMEOUT)]
Settle = Annotated[float, BeforeValidator(_parse_duration), _duration_schema(MAX_SETTLE)]


class LimitSpec(Strict):
    """`limits: {low: 20, high: 45, unit: mA}`; either side may be left open."""

    low: Number | None = None
    high: Number | None = None
    unit: str = ""
    expect: Number | None = None

    # Each check names the field it is about (FieldError.at) so that the error points at
    # the offending value rather than at the whole `limits:` mapping.
    @model_validator(mode="after")
    def _sense(self) -> LimitSpec:
        if self.unit not in ALLOWED_UNITS and self.unit != "":
            raise FieldError(
                f"unknown unit {self.unit!r}; allowed: {', '.join(ALLOWED_UNITS)} "
                "(or no unit for plain numbers)",
                ("unit",),
            )
        if self.low is None and self.high is None and self.expect is None:
            raise ValueError("a limit needs low, high or expect")
        if self.low is not None and self.high is not None and self.low > self.high:
            raise FieldError(
                f"inverted limits: low {self.low:g} is above high {self.high:g}", ("low",)
            )
        if self.expect is not None and (self.low is not None or self.high is not None):
            raise FieldError("give either expect or low/high, not both", ("expect",))
        self.to_limits()  # any rule Limits adds later
        return self

    def to_limits(self) -> Limits:
        return Limits(low=self.low, high=self.high, unit=self.unit, expect=self.expect)

    def for_quantity(self, quantity: Quantity) -> Limits:
        """These limits for a `quantity` measurement; FieldError at `unit` if it does not fit."""
        limits = self.to_limits()
        try:
            limits.check_fits(quantity)
        except ValueError as exc:
            raise FieldError(str(exc), ("unit",)) from None
        return limits
