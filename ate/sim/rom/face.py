"""A unit's ROM side on a link it shares with the test firmware: the RomLoader, the flash
it boots from, and an optional wire-time model of the UART at the loader's baud rate.

The DUT server owns the link and the straps; this face only moves bytes and says what
the chip would boot. May import ate.sim.rom, ate.sim.boot and the standard library.
"""

from __future__ import annotations

from collections.abc import Callable

from ate.sim.boot import BootedApp, NoApp, find_app
from ate.sim.rom.loader import LoaderEvent, RomLoader
from ate.sim.rom.server import WirePacer

_APP_WINDOW = 2 * 1024 * 1024  # how far past the app offset an image may reach


class RomFace:
    def __init__(self, loader: RomLoader, *, wire_time: bool = False) -> None:
        self.loader = loader
        self.wire_time = wire_time
        self._write: Callable[[bytes], None] = lambda _data: None
        self._on_event: Callable[[LoaderEvent], None] = lambda _event: None
        # One pacer per direction, made on the serving loop in attach(): bytes queue
        # behind the ones still on the wire and move in 10 ms slices, so a long answer
        # (a stub read burst) starts arriving at once, as on a real UART.
        self._rx: WirePacer | None = None
        self._tx: WirePacer | None = None
        self.rx_bytes = 0  # host -> chip, for benchmarks and tests of the wire model
        self.tx_bytes = 0

    def attach(
        self, write: Callable[[bytes], None], on_event: Callable[[LoaderEvent], None]
    ) -> None:
        """Connect to the link; call on the event loop that serves it."""
        self._write = write
        self._on_event = on_event
        if self.wire_time:
            self._rx = WirePacer(self._process)
            self._tx = WirePacer(write)

    def detach(self) -> None:
        for pacer in (self._rx, self._tx):
            if pacer is not None:
                pacer.close()
        self._rx = self._tx = None

    @property
    def in_download_mode(self) -> bool:
        return self.loader.active

    def from_host(self, data: bytes) -> None:
        """Bytes the host wrote. With wire time they reach the chip only after the
        UART at the current baud would have carried them."""
        self.rx_bytes += len(data)
        if self._rx is None:
            self._process(data)
        else:
            self._rx.put(data, self.loader.baud)

    def _process(self, data: bytes) -> None:
        if not self.loader.active:
            return  # reset or powered off while the bytes were on the wire
        baud = self.loader.baud  # a CHANGE_BAUDRATE is answered at the old rate
        out = self.loader.receive(data)
        if out:
            self.tx_bytes += len(out)
            if self._tx is None:
                self._write(out)
            else:
                self._tx.put(out, baud)
        event = self.loader.take_event()
        if event is not None:
            self._on_event(event)

    def find_app(self) -> BootedApp | NoApp:
        """What the second stage finds at the app offset."""
        flash = self.loader.flash
        offset = self.loader.chip.app_offset
        window = min(_APP_WINDOW, flash.size - offset)
        return find_app(self.loader.chip.name, flash.read(offset, window))
