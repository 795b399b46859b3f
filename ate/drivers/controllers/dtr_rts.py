"""`dtr_rts`: a fixture with no controller MCU. Each slot's USB-UART adapter straps its
ESP32 through the classic auto-reset circuit of the devkits and esptool (two transistors:
EN is pulled low while RTS is asserted and DTR is not, IO0 while DTR is asserted and RTS
is not). Strapping opens the slot's port, drives the lines and closes it again, so that
esptool and the test firmware's client open it afterwards as usual; closing deasserts
both lines, which leaves EN and IO0 released and the chip where the sequence put it.

What it cannot do, by nature: switch slot power (the USB port powers the board), read a
clamp switch (`clamp: closed`: the station's `manual` or `button` trigger starts a
panel), light LEDs, sense current or read a DMM. Those calls answer EUNKNOWN, which a
sequence step sees as the step's ERROR, never as a pass.

Imports ate.drivers and pyserial.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Literal

import serial
from pydantic import Field

from ate.config.common import Strict
from ate.drivers.fixture import Buzz, CurrentReading, Led, Strap
from ate.drivers.line_client import DeviceError, DeviceGone
from ate.drivers.registry import Driver, DriverContext
from ate.protocol.lines import Notice


class Settings(Strict):
    """`controller: {driver: dtr_rts, options: {...}}`"""

    reset_s: float = Field(
        0.1, gt=0, le=1.0, description="EN held low (esptool's classic reset uses 0.1 s)"
    )
    strap_s: float = Field(
        0.05, gt=0, le=1.0, description="IO0 held low after EN is released (esptool: 0.05 s)"
    )
    clamp: Literal["closed"] = Field(
        "closed", description="no clamp switch: it always reads closed"
    )


# (DTR, RTS, hold) steps. Both lines asserted keeps EN and IO0 released (the circuit's
# transistors cancel), so every change goes through a state that resets nothing by
# accident.
def _download(s: Settings) -> list[tuple[bool, bool, float]]:
    return [(False, True, s.reset_s), (True, False, s.strap_s), (False, False, 0.0)]


def _run(s: Settings) -> list[tuple[bool, bool, float]]:
    return [(False, True, s.reset_s), (False, False, 0.0)]


class DtrRtsController:
    def __init__(self, ports: dict[int, Callable[[], str]], settings: Settings) -> None:
        self.ports = ports
        self.settings = settings
        self._clamp_opened = asyncio.Event()  # never set: there is no clamp to open

    def _url(self, slot: int) -> str:
        try:
            url = self.ports[slot]()
        except KeyError:
            raise DeviceError("strap", "EARG", f"no slot {slot} on this fixture") from None
        # RFC 2217 without waiting for the server to confirm each control line change.
        if url.startswith("rfc2217://") and "ign_set_control" not in url:
            url += ("&" if "?" in url else "?") + "ign_set_control"
        return url

    def _drive(self, slot: int, steps: list[tuple[bool, bool, float]]) -> None:
        try:
            port = serial.serial_for_url(self._url(slot), do_not_open=True, timeout=1)
            port.dtr, port.rts = False, False  # released while it opens
            port.open()
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceGone(f"slot {slot}: cannot open its port: {exc}") from None
        try:
            for dtr, rts, hold in steps:
                port.dtr, port.rts = dtr, rts
                if hold:
                    time.sleep(hold)
        finally:
            port.close()

    async def strap(self, slot: int, mode: Strap) -> None:
        steps = _download(self.settings) if mode == "boot" else _run(self.settings)
        await asyncio.to_thread(self._drive, slot, steps)

    async def power(self, slot: int, on: bool) -> None:
        # USB powers the board; "off" cannot be done. The run strap resets the chip, so
        # each panel still starts from a clean boot.
        return None

    async def present(self, slot: int) -> bool:
        def opens() -> bool:
            try:
                port = serial.serial_for_url(self._url(slot), do_not_open=True, timeout=1)
                port.dtr, port.rts = False, False
                port.open()
                port.close()
                return True
            except (serial.SerialException, OSError, ValueError, DeviceGone):
                return False

        return await asyncio.to_thread(opens)

    async def clamp_closed(self) -> bool:
        return True

    def clamp_event(self) -> asyncio.Event:
        return self._clamp_opened

    async def led(self, slot: int, state: Led) -> None:
        return None  # no LEDs: the operator reads the page

    async def buzzer(self, pattern: Buzz) -> None:
        raise DeviceError("buzzer.set", "EUNKNOWN", "a dtr_rts fixture has no buzzer")

    async def current(self, slot: int, samples: int) -> CurrentReading:
        raise DeviceError("isense.read", "EUNKNOWN", "a dtr_rts fixture has no current sense")

    async def dmm_volts(self, slot: int, rail: str) -> float:
        raise DeviceError("dmm.read", "EUNKNOWN", "a dtr_rts fixture has no DMM")

    def listen(
        self, on_notice: Callable[[Notice], None], on_lost: Callable[[Exception], None]
    ) -> None:
        return None  # nothing unsolicited: no clamp, no button, no controller to lose

    async def close(self) -> None:
        return None


async def _open(ctx: DriverContext) -> DtrRtsController:
    settings = ctx.settings if isinstance(ctx.settings, Settings) else Settings()
    return DtrRtsController(dict(ctx.slot_ports), settings)


DRIVER = Driver(
    "dtr_rts",
    "each slot's USB-UART adapter (DTR/RTS auto-reset circuit); no controller",
    _open,
    settings=Settings,
)
