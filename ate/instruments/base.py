"""The instrument protocols (what a step may ask of a supply, a DMM, a mux, a shield box),
the reading they return and the errors they raise. Pure interfaces: no I/O, no imports
from ate beyond the model.

Each instrument object is bound to one slot's channel (the registry does the binding), so
a step never names a channel or a driver: it names a role.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

# The roles the built-in steps read through (a fixture file may name others for plugins).
SUPPLY = "supply"
DMM = "dmm"
MUX = "mux"
SHIELD = "shield"


class InstrumentError(Exception):
    """An instrument did not give a reading it can stand behind (no answer, an error
    queue entry, NaN, an overflow marker, text): the step is ERROR, never judged."""


class InstrumentMismatch(InstrumentError):
    """The instrument at the address is not the one the fixture file expects (*IDN?):
    bad input, found before the panel starts."""


@dataclass(frozen=True, slots=True)
class Reading:
    """A value in the unit the instrument gives it (the fixture MCU reads mA, a SCPI
    meter A); the step converts once, to its limits' unit."""

    value: float
    unit: str


@runtime_checkable
class PowerSupply(Protocol):
    async def set_voltage(self, volts: float) -> None: ...
    async def set_current_limit(self, amps: float) -> None: ...
    async def output(self, on: bool) -> None: ...
    async def measure_voltage(self) -> Reading: ...
    async def measure_current(self, samples: int = 1) -> Reading:
        """The mean of `samples` readings."""
        ...


@runtime_checkable
class Dmm(Protocol):
    async def measure_volts_dc(self) -> Reading: ...
    async def measure_amps_dc(self, samples: int = 1) -> Reading: ...


@runtime_checkable
class RelayMux(Protocol):
    async def select(self, route: str) -> None:
        """Connect `route` (a rail name: this slot's channel for it) and nothing else."""
        ...

    async def open_all(self) -> None: ...


@runtime_checkable
class ShieldBox(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def closed(self) -> bool: ...
