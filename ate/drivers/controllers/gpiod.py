"""`gpiod`: a fixture wired to the fixture PC's own GPIO (a Raspberry Pi class station),
through the kernel's character device and libgpiod v2 (the `gpiod` Python bindings, the
kernel's maintained interface; the sysfs GPIO interface is deprecated). Per slot a power
relay (or load switch), EN and IO0 lines (open drain, low = asserted) and an optional LED;
a clamp switch and an optional start button as inputs with edge events, debounced in
software (any chip, and the twin, behave alike), which become the same CLAMP and BUTTON
notices a controller MCU sends.

Lines are named by the chip's line names (as `gpioinfo` shows them) or by offset. The
hardware goes through `GpioLines`, a small seam: `GpiodLines` is the real chip, and
`SimGpioChip` (ate.drivers.controllers.gpio_sim) its twin for tests without a kernel
gpio-sim.

Imports ate.drivers; `gpiod` loads when a real chip is opened.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any, Protocol

from pydantic import Field

from ate.config.common import Strict
from ate.drivers.fixture import Buzz, CurrentReading, Led, Strap
from ate.drivers.line_client import DeviceError, DeviceGone
from ate.drivers.registry import Driver, DriverContext
from ate.protocol.lines import Notice

Line = int | str  # an offset, or a line name on the chip


class SlotLines(Strict):
    power: Line = Field(description="relay or load switch; high = powered")
    en: Line = Field(description="EN (CHIP_PU), open drain: driven low holds the chip in reset")
    io0: Line = Field(description="IO0 (GPIO0/GPIO9), open drain: low at reset = ROM loader")
    led: Line | None = Field(None, description="a verdict LED; on = PASS")


class Settings(Strict):
    """`controller: {driver: gpiod, options: {chip: /dev/gpiochip0, clamp: 17, ...}}`"""

    chip: str = Field(
        "/dev/gpiochip0",
        description="the GPIO chip's character device (sim:NAME: the in-process twin)",
    )
    clamp: Line = Field(description="clamp switch input")
    clamp_active_low: bool = Field(True, description="the switch pulls the line low when closed")
    button: Line | None = Field(None, description="start button or foot pedal input")
    slots: dict[int, SlotLines] = Field(min_length=1)
    reset_s: float = Field(0.1, gt=0, le=1.0, description="EN held low")
    strap_s: float = Field(0.05, gt=0, le=1.0, description="IO0 held low after EN rises")
    debounce_s: float = Field(
        0.02,
        ge=0,
        le=0.5,
        description="the clamp and the button count only once they hold a level this long "
        "(switch bounce)",
    )


class GpioLines(Protocol):
    """The few operations the driver needs from a GPIO chip."""

    def offset(self, line: Line) -> int: ...
    def request(
        self, outputs: dict[int, bool], inputs: list[int], open_drain: frozenset[int]
    ) -> None: ...
    def set(self, offset: int, value: bool) -> None: ...
    def get(self, offset: int) -> bool: ...
    def fileno(self) -> int: ...  # readable when edge events wait
    def edges(self) -> list[tuple[int, bool]]: ...  # (offset, rising), drained
    def close(self) -> None: ...


class GpiodLines:
    """A real chip through libgpiod v2."""

    def __init__(self, path: str) -> None:
        import gpiod  # only a station with GPIO needs the bindings

        self._gpiod = gpiod
        try:
            self._chip = gpiod.Chip(path)
        except OSError as exc:
            raise DeviceGone(f"GPIO chip {path}: {exc}") from None
        self._path = path
        self._request: object | None = None

    def offset(self, line: Line) -> int:
        if isinstance(line, int):
            return line
        try:
            return int(self._chip.line_offset_from_id(line))
        except (OSError, ValueError) as exc:
            raise DeviceGone(f"GPIO chip {self._path} has no line {line!r}: {exc}") from None

    def request(
        self, outputs: dict[int, bool], inputs: list[int], open_drain: frozenset[int]
    ) -> None:
        g = self._gpiod
        from gpiod.line import Direction, Drive, Edge, Value

        config: dict[int | tuple[int, ...], object] = {}
        for off, value in outputs.items():
            config[off] = g.LineSettings(
                direction=Direction.OUTPUT,
                drive=Drive.OPEN_DRAIN if off in open_drain else Drive.PUSH_PULL,
                output_value=Value.ACTIVE if value else Value.INACTIVE,
            )
        if inputs:
            config[tuple(inputs)] = g.LineSettings(
                direction=Direction.INPUT, edge_detection=Edge.BOTH
            )
        self._request = g.request_lines(self._path, consumer="ate", config=config)

    def set(self, offset: int, value: bool) -> None:
        from gpiod.line import Value

        self._req().set_value(offset, Value.ACTIVE if value else Value.INACTIVE)

    def get(self, offset: int) -> bool:
        from gpiod.line import Value

        return bool(self._req().get_value(offset) == Value.ACTIVE)

    def fileno(self) -> int:
        return int(self._req().fd)

    def edges(self) -> list[tuple[int, bool]]:
        from gpiod.edge_event import EdgeEvent

        return [
            (int(e.line_offset), e.event_type == EdgeEvent.Type.RISING_EDGE)
            for e in self._req().read_edge_events()
        ]

    def _req(self) -> Any:
        if self._request is None:
            raise DeviceGone(f"GPIO chip {self._path}: lines not requested")
        return self._request

    def close(self) -> None:
        with contextlib.suppress(Exception):
            if self._request is not None:
                self._req().release()
        with contextlib.suppress(Exception):
            self._chip.close()


class GpioController:
    """The FixtureController over GPIO lines."""

    def __init__(self, lines: GpioLines, settings: Settings) -> None:
        self.lines, self.settings = lines, settings
        o = lines.offset
        self._clamp = o(settings.clamp)
        self._button = o(settings.button) if settings.button is not None else None
        self._slots = {
            n: (o(s.power), o(s.en), o(s.io0), o(s.led) if s.led is not None else None)
            for n, s in settings.slots.items()
        }
        outputs: dict[int, bool] = {}
        for power, en, io0, led in self._slots.values():
            # Unpowered, EN and IO0 released (high), LED off: the safe state at start.
            outputs.update({power: False, en: True, io0: True})
            if led is not None:
                outputs[led] = False
        inputs = [self._clamp] + ([self._button] if self._button is not None else [])
        # EN and IO0 only ever pull low; released, the board's pull-ups (and EN's RC
        # delay) decide, as with the auto-reset transistors.
        straps = frozenset(x for _p, en, io0, _l in self._slots.values() for x in (en, io0))
        lines.request(outputs, inputs, straps)
        self._clamp_opened = asyncio.Event()
        self._listeners: list[Callable[[Notice], None]] = []
        # Debounce: an edge (re)arms a timer per input; when it fires, the level read then
        # is the input's state, told only if it differs from the last one told. A bounce
        # or a glitch shorter than debounce_s tells nothing.
        self._clamp_state = self._closed_level(lines.get(self._clamp))
        self._pressed = False
        self._timers: dict[int, asyncio.TimerHandle] = {}
        loop = asyncio.get_running_loop()
        loop.add_reader(lines.fileno(), self._on_edges)
        self._loop = loop

    def _closed_level(self, level: bool) -> bool:
        return not level if self.settings.clamp_active_low else level

    def _on_edges(self) -> None:
        for offset, _rising in self.lines.edges():
            if offset in (self._clamp, self._button):
                if (timer := self._timers.pop(offset, None)) is not None:
                    timer.cancel()
                self._timers[offset] = self._loop.call_later(
                    self.settings.debounce_s, self._settled, offset
                )

    def _settled(self, offset: int) -> None:
        self._timers.pop(offset, None)
        level = self.lines.get(offset)
        if offset == self._clamp:
            closed = self._closed_level(level)
            if closed != self._clamp_state:
                self._clamp_state = closed
                if not closed:
                    self._clamp_opened.set()
                self._tell(Notice("CLAMP", {"closed": "1" if closed else "0"}))
        elif offset == self._button:
            pressed = not level  # pressed pulls it low
            if pressed and not self._pressed:
                self._tell(Notice("BUTTON", {"pressed": "1"}))
            self._pressed = pressed

    def _tell(self, notice: Notice) -> None:
        for fn in self._listeners:
            fn(notice)

    def _slot(self, slot: int) -> tuple[int, int, int, int | None]:
        try:
            return self._slots[slot]
        except KeyError:
            raise DeviceError("slot", "EARG", f"no slot {slot} in the gpiod settings") from None

    async def power(self, slot: int, on: bool) -> None:
        self.lines.set(self._slot(slot)[0], on)

    async def strap(self, slot: int, mode: Strap) -> None:
        _, en, io0, _ = self._slot(slot)
        self.lines.set(io0, mode != "boot")  # IO0 low during reset: the ROM loader
        self.lines.set(en, False)
        await asyncio.sleep(self.settings.reset_s)
        self.lines.set(en, True)
        await asyncio.sleep(self.settings.strap_s)
        self.lines.set(io0, True)

    async def present(self, slot: int) -> bool:
        self._slot(slot)
        return True  # no presence input on a GPIO fixture: the ROM loader finds out

    async def clamp_closed(self) -> bool:
        closed = self._closed_level(self.lines.get(self._clamp))
        if closed:
            self._clamp_opened.clear()
        return closed

    def clamp_event(self) -> asyncio.Event:
        return self._clamp_opened

    async def led(self, slot: int, state: Led) -> None:
        led = self._slot(slot)[3]
        if led is not None:
            self.lines.set(led, state == "pass")

    async def buzzer(self, pattern: Buzz) -> None:
        raise DeviceError("buzzer.set", "EUNKNOWN", "no buzzer line in the gpiod settings")

    async def current(self, slot: int, samples: int) -> CurrentReading:
        raise DeviceError("isense.read", "EUNKNOWN", "a gpiod fixture has no current sense")

    async def dmm_volts(self, slot: int, rail: str) -> float:
        raise DeviceError("dmm.read", "EUNKNOWN", "a gpiod fixture has no DMM")

    def listen(
        self, on_notice: Callable[[Notice], None], on_lost: Callable[[Exception], None]
    ) -> None:
        self._listeners.append(on_notice)

    async def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        with contextlib.suppress(Exception):
            self._loop.remove_reader(self.lines.fileno())
        for power, _en, _io0, _led in self._slots.values():
            with contextlib.suppress(Exception):
                self.lines.set(power, False)  # leave every slot unpowered
        self.lines.close()


async def _open(ctx: DriverContext) -> GpioController:
    settings = ctx.settings
    assert isinstance(settings, Settings)  # validated when the fixture file loaded
    lines: GpioLines
    if settings.chip.startswith("sim:"):  # the twin: an in-process chip by that name
        from ate.drivers.controllers.gpio_sim import chip_named

        lines = chip_named(settings.chip[4:])
    else:
        lines = GpiodLines(settings.chip)
    try:
        return GpioController(lines, settings)
    except BaseException:
        lines.close()
        raise


DRIVER = Driver(
    "gpiod",
    "the fixture PC's GPIO lines (libgpiod v2): power, EN, IO0, LED per slot; clamp, button",
    _open,
    settings=Settings,
)
