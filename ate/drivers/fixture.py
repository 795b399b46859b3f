"""The fixture controller: slot power, EN/IO0 strapping, clamp, LEDs, current and DMM.

`FixtureController` is the interface the scheduler and the station use; drivers that
implement it are chosen by name (ate.drivers.registry). `LineFixtureController` speaks
the ate line protocol to a controller MCU, real or its simulated twin in ate.sim.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from ate.drivers.line_client import LineClient, reply_field
from ate.protocol.fields import as_finite, as_level
from ate.protocol.lines import Notice

Strap = Literal["run", "boot"]
Led = Literal["off", "busy", "pass", "fail", "error"]
Buzz = Literal["off", "pass", "fail"]


@dataclass(frozen=True, slots=True)
class CurrentReading:
    mean_ma: float
    min_ma: float
    max_ma: float
    samples: int


class FixtureController(Protocol):
    async def power(self, slot: int, on: bool) -> None: ...
    async def strap(self, slot: int, mode: Strap) -> None: ...
    async def present(self, slot: int) -> bool: ...
    async def clamp_closed(self) -> bool: ...
    def clamp_event(self) -> asyncio.Event:
        """Set whenever the clamp opens; the panel aborts on it."""
        ...

    async def led(self, slot: int, state: Led) -> None: ...
    async def buzzer(self, pattern: Buzz) -> None: ...
    async def current(self, slot: int, samples: int) -> CurrentReading: ...
    async def dmm_volts(self, slot: int, rail: str) -> float: ...
    def listen(
        self, on_notice: Callable[[Notice], None], on_lost: Callable[[Exception], None]
    ) -> None:
        """Unsolicited news: CLAMP closed=0|1 and BUTTON pressed=1 notices, and the
        controller gone (a USB hub unplugged)."""
        ...

    async def close(self) -> None: ...


class LineFixtureController:
    """A fixture controller MCU on a serial port (or its twin on a pty)."""

    def __init__(self, line: LineClient, *, timeout: float = 0.5) -> None:
        self.line = line
        self.timeout = timeout
        self._clamp_opened = asyncio.Event()
        line.add_notice_listener(self._on_notice)

    @classmethod
    async def open(cls, endpoint: str, baud: int = 115200) -> LineFixtureController:
        return cls(await LineClient.open(endpoint, baud, name="fixture-controller"))

    def _on_notice(self, notice: Notice) -> None:
        if notice.name == "CLAMP" and notice.fields.get("closed") == "0":
            self._clamp_opened.set()

    def clamp_event(self) -> asyncio.Event:
        return self._clamp_opened

    def listen(
        self, on_notice: Callable[[Notice], None], on_lost: Callable[[Exception], None]
    ) -> None:
        self.line.add_notice_listener(on_notice)
        self.line.add_lost_listener(on_lost)

    async def _call(
        self, command: str, *args: object, timeout: float | None = None
    ) -> dict[str, str]:
        return await self.line.request(command, *args, timeout=timeout or self.timeout)

    async def power(self, slot: int, on: bool) -> None:
        await self._call("power.set", slot, int(on))

    async def strap(self, slot: int, mode: Strap) -> None:
        await self._call("strap", slot, mode)

    async def present(self, slot: int) -> bool:
        return (
            reply_field(await self._call("present.get", slot), "present", as_level, "present.get")
            == 1
        )

    async def clamp_closed(self) -> bool:
        closed = reply_field(await self._call("clamp.get"), "closed", as_level, "clamp.get") == 1
        if closed:
            self._clamp_opened.clear()
        return closed

    async def led(self, slot: int, state: Led) -> None:
        await self._call("led.set", slot, state)

    async def buzzer(self, pattern: Buzz) -> None:
        """Sound the buzzer (DeviceError EUNKNOWN from a controller without one)."""
        await self._call("buzzer.set", pattern)

    async def current(self, slot: int, samples: int) -> CurrentReading:
        f = await self._call(
            "isense.read", slot, f"samples={samples}", timeout=self.timeout + samples * 0.002
        )
        return CurrentReading(
            mean_ma=reply_field(f, "ma", as_finite, "isense.read"),
            min_ma=reply_field(f, "min", as_finite, "isense.read"),
            max_ma=reply_field(f, "max", as_finite, "isense.read"),
            samples=samples,
        )

    async def dmm_volts(self, slot: int, rail: str) -> float:
        # A DMM reading with mux settling takes tens of milliseconds.
        f = await self._call("dmm.read", slot, rail, timeout=max(self.timeout, 1.0))
        return reply_field(f, "v", as_finite, "dmm.read")

    async def close(self) -> None:
        await self.line.close()
