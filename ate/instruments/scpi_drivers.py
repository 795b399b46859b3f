"""SCPI drivers: `scpi_psu`, `scpi_dmm`, `scpi_mux`, `scpi_shield_box`.

Commands (SCPI-99 as Keysight, Rohde & Schwarz, Siglent, Rigol and Keithley 2000-series
instruments take them; a channel list `(@N)` addresses one output or relay):
- PSU: VOLT V[,(@N)], CURR A[,(@N)], OUTP ON|OFF[,(@N)], MEAS:VOLT? [(@N)], MEAS:CURR? [(@N)].
  `channels: {SLOT: N}` gives each slot its output; without it every slot shares the
  single output (name the supply in the steps' `uses:` then).
- DMM: MEAS:VOLT:DC?, MEAS:CURR:DC?; every slot shares it (a resource in `uses:`).
- Mux: ROUT:CLOS (@LIST), ROUT:OPEN (@LIST); `routes: {SLOT: {RAIL: LIST}}` names each
  slot's relays per rail; selecting opens what the last selection closed.
- Shield box (SCPI-ish, as the project's twin and LAN/serial boxes with a command set of
  this shape speak it): DOOR:OPEN, DOOR:CLOS, DOOR:STAT? -> OPEN|CLOSED|MOVING.
Every command is followed by SYST:ERR? unless `check_errors: false`.

Imports ate.config.common and ate.instruments only.
"""

from __future__ import annotations

import contextlib
import math
from typing import Annotated

from pydantic import Field

from ate.config.common import Int
from ate.instruments.base import InstrumentError, Reading
from ate.instruments.registry import InstrumentContext, InstrumentDriver, OpenInstrument
from ate.instruments.scpi import ScpiLink, ScpiSettings

ChannelList = Annotated[
    str, Field(pattern=r"^[0-9]{1,6}(,[0-9]{1,6}){0,31}$", description="e.g. 101 or 101,201")
]


def _setpoint(value: float, what: str) -> str:
    """A setpoint as sent: a NaN or negative one is a bug upstream, never sent."""
    if isinstance(value, bool) or not math.isfinite(value) or value < 0:
        raise InstrumentError(f"{what} {value!r}: a setpoint is a finite number >= 0")
    return f"{value:.6g}"


def _mean(values: list[float]) -> float:
    if not values:
        raise InstrumentError("a reading needs at least one sample")
    return sum(values) / len(values)


class _Shared:
    """An instrument that every slot reaches the same way (a DMM, a shield box)."""

    def __init__(self, link: ScpiLink) -> None:
        self.link = link

    def for_slot(self, slot: int) -> object:
        return self

    async def aclose(self) -> None:
        await self.link.aclose()


# ---- power supply --------------------------------------------------------------------


class PsuSettings(ScpiSettings):
    channels: dict[Int, Int] = Field(
        default_factory=dict,
        description="slot -> output channel (the (@N) of a multi-output supply); empty: "
        "one output for every slot",
    )


class ScpiPsuOutput:
    """One output of a SCPI power supply."""

    def __init__(self, link: ScpiLink, channel: int | None) -> None:
        self.link = link
        self.channel = channel

    def _arg(self, first: bool) -> str:
        if self.channel is None:
            return ""
        return f" (@{self.channel})" if first else f",(@{self.channel})"

    async def set_voltage(self, volts: float) -> None:
        await self.link.write(f"VOLT {_setpoint(volts, 'voltage')}{self._arg(False)}")

    async def set_current_limit(self, amps: float) -> None:
        await self.link.write(f"CURR {_setpoint(amps, 'current limit')}{self._arg(False)}")

    async def output(self, on: bool) -> None:
        await self.link.write(f"OUTP {'ON' if on else 'OFF'}{self._arg(False)}")

    async def measure_voltage(self) -> Reading:
        return Reading(await self.link.query_number(f"MEAS:VOLT?{self._arg(True)}"), "V")

    async def measure_current(self, samples: int = 1) -> Reading:
        query = f"MEAS:CURR?{self._arg(True)}"
        return Reading(_mean([await self.link.query_number(query) for _ in range(samples)]), "A")


class _OpenPsu:
    def __init__(self, link: ScpiLink, channels: dict[int, int]) -> None:
        self.link = link
        self.channels = channels

    def for_slot(self, slot: int) -> object:
        if not self.channels:
            return ScpiPsuOutput(self.link, None)
        if slot not in self.channels:
            raise InstrumentError(
                f"instrument {self.link.name!r} has no channel for slot {slot} "
                f"(channels: {self.channels})"
            )
        return ScpiPsuOutput(self.link, self.channels[slot])

    async def aclose(self) -> None:
        await self.link.aclose()


async def _open_psu(ctx: InstrumentContext) -> OpenInstrument:
    settings: PsuSettings = ctx.settings
    return _OpenPsu(await ScpiLink.open(ctx.role, settings, ctx.base_dir), dict(settings.channels))


PSU = InstrumentDriver("scpi_psu", ("PowerSupply",), _open_psu, PsuSettings)


# ---- DMM ------------------------------------------------------------------------------


class ScpiDmm(_Shared):
    async def measure_volts_dc(self) -> Reading:
        return Reading(await self.link.query_number("MEAS:VOLT:DC?"), "V")

    async def measure_amps_dc(self, samples: int = 1) -> Reading:
        query = "MEAS:CURR:DC?"
        return Reading(_mean([await self.link.query_number(query) for _ in range(samples)]), "A")


async def _open_dmm(ctx: InstrumentContext) -> OpenInstrument:
    return ScpiDmm(await ScpiLink.open(ctx.role, ctx.settings, ctx.base_dir))


DMM = InstrumentDriver("scpi_dmm", ("Dmm",), _open_dmm, ScpiSettings)


# ---- relay multiplexer ------------------------------------------------------------------


class MuxSettings(ScpiSettings):
    routes: dict[Int, dict[str, ChannelList]] = Field(
        description="slot -> {rail: channel list}, e.g. {1: {3v3: '101', vbat: '102'}}",
    )


class ScpiMuxSlot:
    def __init__(self, mux: _OpenMux, slot: int) -> None:
        self.mux = mux
        self.slot = slot

    async def select(self, route: str) -> None:
        channels = self.mux.routes.get(self.slot, {}).get(route)
        if channels is None:
            raise InstrumentError(
                f"instrument {self.mux.link.name!r} has no route {route!r} for slot {self.slot}"
            )
        await self.open_all()
        await self.mux.link.write(f"ROUT:CLOS (@{channels})")
        self.mux.closed = channels

    async def open_all(self) -> None:
        if self.mux.closed is not None:
            await self.mux.link.write(f"ROUT:OPEN (@{self.mux.closed})")
            self.mux.closed = None


class _OpenMux:
    def __init__(self, link: ScpiLink, routes: dict[int, dict[str, str]]) -> None:
        self.link = link
        self.routes = routes
        self.closed: str | None = None  # what the last selection closed

    def for_slot(self, slot: int) -> object:
        return ScpiMuxSlot(self, slot)

    async def aclose(self) -> None:
        # Closing anyway: the relays open when the mux powers down.
        with contextlib.suppress(InstrumentError):
            await ScpiMuxSlot(self, 0).open_all()
        await self.link.aclose()


async def _open_mux(ctx: InstrumentContext) -> OpenInstrument:
    settings: MuxSettings = ctx.settings
    link = await ScpiLink.open(ctx.role, settings, ctx.base_dir)
    mux = _OpenMux(link, {s: dict(r) for s, r in settings.routes.items()})
    await link.write("ROUT:OPEN:ALL")  # start from a known state, whatever the last run left
    return mux


MUX = InstrumentDriver("scpi_mux", ("RelayMux",), _open_mux, MuxSettings)


# ---- shield box -------------------------------------------------------------------------

_DOOR = {"OPEN": False, "CLOSED": True}


class ScpiShieldBox(_Shared):
    async def open(self) -> None:
        await self.link.write("DOOR:OPEN")

    async def close(self) -> None:
        await self.link.write("DOOR:CLOS")

    async def closed(self) -> bool:
        state = await self.link.query("DOOR:STAT?")
        if state not in _DOOR:
            raise InstrumentError(
                f"instrument {self.link.name!r}: DOOR:STAT? answered {state[:40]!r}; "
                "the door is known closed only on CLOSED"
            )
        return _DOOR[state]


async def _open_shield(ctx: InstrumentContext) -> OpenInstrument:
    return ScpiShieldBox(await ScpiLink.open(ctx.role, ctx.settings, ctx.base_dir))


SHIELD_BOX = InstrumentDriver("scpi_shield_box", ("ShieldBox",), _open_shield, ScpiSettings)
