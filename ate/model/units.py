"""Units a limit may carry, what each measures, and conversion between them.

A unit only fits a measurement of the same quantity: mA fits a current, V does not.
"""

from __future__ import annotations

from enum import StrEnum


class Quantity(StrEnum):
    CURRENT = "current"
    VOLTAGE = "voltage"
    POWER = "power"  # RF power, dBm (logarithmic: no scale to other units)
    FREQUENCY_ERROR = "frequency_error"
    RATIO = "ratio"
    COUNT = "count"  # plain numbers: register values, RSSI counts, levels


# unit symbol -> (quantity, factor to the quantity's base unit)
UNITS: dict[str, tuple[Quantity, float]] = {
    "A": (Quantity.CURRENT, 1.0),
    "mA": (Quantity.CURRENT, 1e-3),
    "uA": (Quantity.CURRENT, 1e-6),
    "V": (Quantity.VOLTAGE, 1.0),
    "mV": (Quantity.VOLTAGE, 1e-3),
    "dBm": (Quantity.POWER, 1.0),
    "ppm": (Quantity.FREQUENCY_ERROR, 1.0),
    "%": (Quantity.RATIO, 1.0),
    "": (Quantity.COUNT, 1.0),
}

ALLOWED_UNITS = tuple(u for u in UNITS if u)


def quantity_of(unit: str) -> Quantity:
    try:
        return UNITS[unit][0]
    except KeyError:
        raise ValueError(f"unknown unit {unit!r}; allowed: {', '.join(ALLOWED_UNITS)}") from None


def units_for(quantity: Quantity) -> tuple[str, ...]:
    return tuple(u for u, (q, _) in UNITS.items() if q is quantity)


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert between units of one quantity; raise ValueError across quantities."""
    if from_unit == to_unit:
        return value
    q_from, f_from = UNITS[from_unit]
    q_to, f_to = UNITS[to_unit]
    if q_from is not q_to:
        raise ValueError(f"cannot convert {from_unit} ({q_from}) to {to_unit} ({q_to})")
    return value * f_from / f_to
