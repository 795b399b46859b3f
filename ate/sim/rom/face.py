"""A unit's ROM side on a link it shares with the test firmware: the RomLoader, the flash
it boots from, and an optional wire-time model of the UART at the loader's baud rate.

The DUT server owns the link and the straps; this face only moves bytes and says what
the chip would boot. May import ate.sim.rom, ate.sim.boot and the standard library.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ate.sim.boot import BootedApp, NoApp, find_app
from ate.sim.rom.loader import LoaderEvent, RomLoader

_BITS_PER_BYTE = 10  # 8N1: start bit, eight data bits, stop bit
_APP_WINDOW = 2 * 1024 * 1024  # how far past the app offset an image may reach


class RomFace:
    def __init__(self, loader: RomLoader, *, wire_time: bool = False) -> None:
        self.loader = loader
        self.wire_time = wire_time
        self._write: Callable[[bytes], None] = lambda _data: None
        self._on_event: Callable[[LoaderEvent], None] = lambda _event: None
        # When each direction of the UART is next free (loop time): bytes queue behind
        # the ones still on the wire, as in a real UART.
        self._rx_free = 0.0
        self._tx_free = 0.0
        self.rx_bytes = 0  # host -> chip, for benchmarks and tests of the wire model
        self.tx_bytes = 0

    def attach(
        self, write: Callable[[bytes], None], on_event: Callable[[LoaderEvent], None]
    ) -> None:
        self._write = write
        self._on_event = on_event

    @property
    def in_download_mode(self) -> bool:
        return self.loader.active

    def _wire_s(self, nbytes: int) -> float:
        return nbytes * _BITS_PER_BYTE / self.loader.baud

    def from_host(self, data: bytes) -> None:
        """Bytes the host wrote. With wire time they reach the chip only after the
        UART at the current baud would have carried them."""
        self.rx_bytes += len(data)
        if not self.wire_time:
            self._process(data)
            return
        loop = asyncio.get_running_loop()
        self._rx_free = max(loop.time(), self._rx_free) + self._wire_s(len(data))
        loop.call_at(self._rx_free, self._process, data)

    def _process(self, data: bytes) -> None:
        if not self.loader.active:
            return  # reset or powered off while the bytes were on the wire
        out = self.loader.receive(data)
        if out:
            self._send(out)
        event = self.loader.take_event()
        if event is not None:
            self._on_event(event)

    def _send(self, data: bytes) -> None:
        self.tx_bytes += len(data)
        if not self.wire_time:
            self._write(data)
            return
        loop = asyncio.get_running_loop()
        self._tx_free = max(loop.time(), self._tx_free) + self._wire_s(len(data))
        loop.call_at(self._tx_free, self._write, data)

    def find_app(self) -> BootedApp | NoApp:
        """What the second stage finds at the app offset."""
        flash = self.loader.flash
        offset = self.loader.chip.app_offset
        window = min(_APP_WINDOW, flash.size - offset)
        return find_app(self.loader.chip.name, flash.read(offset, window))
