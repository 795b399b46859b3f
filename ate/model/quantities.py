"""What a reading may physically be, per measured quantity: the one table of ranges.

A reading outside its quantity's range is not a bad unit but a broken measurement chain
(a shorted shunt, a reversed probe, a lying DUT), so it is ERROR and never judged against
a limit: a current of -5 mA passes `high: 10 mA` and must not. Ranges are in each
quantity's base unit (A, V, dBm, ppm, %, plain counts) and generous: they catch the
impossible, not the unusual. Imports ate.model.units only.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ate.model.units import UNITS, Quantity


@dataclass(frozen=True, slots=True)
class PhysicalRange:
    low: float
    high: float
    base_unit: str
    whole: bool = False  # counts are whole numbers
    why: str = ""


# Noise floors: a current-sense amplifier or DMM may read slightly below zero around
# zero; anything further below is a reversed or broken chain.
PHYSICAL_RANGES: dict[Quantity, PhysicalRange] = {
    Quantity.CURRENT: PhysicalRange(-50e-6, 10.0, "A", why="a supply current"),
    Quantity.VOLTAGE: PhysicalRange(-0.05, 60.0, "V", why="a rail or ADC voltage"),
    Quantity.POWER: PhysicalRange(
        -174.0, 40.0, "dBm", why="an RF power (thermal floor to +40 dBm)"
    ),
    Quantity.FREQUENCY_ERROR: PhysicalRange(-10_000.0, 10_000.0, "ppm", why="a frequency error"),
    Quantity.RATIO: PhysicalRange(0.0, 100.0, "%", why="a percentage"),
    # Unitless: levels, register values, ids and plugin numbers. Their parsers keep the
    # integer ones whole and non-negative; here only finiteness is asked.
    Quantity.COUNT: PhysicalRange(-math.inf, math.inf, "", why="a plain number"),
}


def reading_problem(value: object, unit: str) -> str | None:
    """Why `value` in `unit` cannot be a reading at all, or None when it can.

    Not a number (a bool is not a number), not finite, a fraction where a count is meant,
    or outside the quantity's physical range.
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{value!r} is not a number ({type(value).__name__})"
    if isinstance(value, float) and not math.isfinite(value):
        return f"{value!r} is not a finite number"
    quantity, factor = UNITS.get(unit, (Quantity.COUNT, 1.0))
    rng = PHYSICAL_RANGES[quantity]
    if rng.whole and isinstance(value, float) and not value.is_integer():
        return f"{value!r} is not a whole number, and {rng.why} is"
    base = value * factor if factor != 1.0 else value
    if not rng.low <= base <= rng.high:
        shown = f"{value:g} {unit}".rstrip()
        span = f"{rng.low:g} .. {rng.high:g} {rng.base_unit}".rstrip()
        return f"{shown} is outside the physical range of {rng.why} ({span})"
    return None
