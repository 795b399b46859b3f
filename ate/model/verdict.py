"""Verdicts of measurements, steps, units and panels, and how they combine."""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"  # the unit was measured and is out of limits: a bad unit
    ERROR = "ERROR"  # the unit could not be measured (timeout, garbage, crash): retest
    ABORTED = "ABORTED"  # the clamp opened or the operator stopped the panel
    EMPTY = "EMPTY"  # no board in the slot
    SKIPPED = "SKIPPED"  # a step not run because an earlier one failed

    @property
    def is_failure(self) -> bool:
        return self in (Verdict.FAIL, Verdict.ERROR)


# The worse verdict wins when steps combine into a unit verdict.
_SEVERITY = {
    Verdict.SKIPPED: 0,
    Verdict.EMPTY: 0,
    Verdict.PASS: 1,
    Verdict.FAIL: 2,
    Verdict.ERROR: 3,
    Verdict.ABORTED: 4,
}


def worst(*verdicts: Verdict) -> Verdict:
    """The most severe verdict; PASS for none."""
    return max(verdicts, key=_SEVERITY.__getitem__, default=Verdict.PASS)
