"""A unit's ROM side on a link it shares with the test firmware: the RomLoader, the flash
it boots from, an optional wire-time model of the UART at the loader's baud rate, and
the optional line-time model's chip time (ate.sim.timing), slept on the serving loop.

Under the line-time model the face also keeps `critical_s`: the model's own time for
what this unit's ROM side did (wire both ways at the baud, chip time not hidden behind
the wire), as if the host answered instantly; the benchmark's floor is made of it.

The DUT server owns the link and the straps; this face only moves bytes and says what
the chip would boot. May import ate.sim.rom, ate.sim.boot, ate.sim.prod_boot,
ate.sim.timing and the standard library.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from ate.sim.boot import BootedApp, NoApp, find_app
from ate.sim.prod_boot import ProductionApp, boot
from ate.sim.rom.loader import LoaderEvent, RomLoader
from ate.sim.rom.server import BITS_PER_BYTE, WirePacer
from ate.sim.timing import LineTimes

_APP_WINDOW = 2 * 1024 * 1024  # how far past the app offset an image may reach


class RomFace:
    def __init__(
        self, loader: RomLoader, *, wire_time: bool = False, timing: LineTimes | None = None
    ) -> None:
        self.loader = loader
        self.timing = timing
        self.wire_time = wire_time or timing is not None  # the line model includes the wire
        loader.timing = timing
        # The chip takes host bytes one chunk at a time, after the work it is doing.
        self._inbox: asyncio.Queue[tuple[int, bytes]] | None = None
        self._chip: asyncio.Task[None] | None = None
        self._chip_free = 0.0  # loop time when the stub's writes behind its acks end
        # The model's own clock (see the module docstring): when the host's bytes, the
        # chip's answers and the chip's background work would end with an instant host.
        self._v_rx = self._v_tx = self._v_chip = 0.0
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
        if self.timing is not None:
            self._inbox = asyncio.Queue()
            self._chip = asyncio.get_running_loop().create_task(self._chip_loop())
        if self.wire_time:
            self._rx = WirePacer(self._process if self._inbox is None else self._to_chip)
            self._tx = WirePacer(write)

    def detach(self) -> None:
        for pacer in (self._rx, self._tx):
            if pacer is not None:
                pacer.close()
        self._rx = self._tx = None
        if self._chip is not None:
            self._chip.cancel()
        self._chip = self._inbox = None

    @property
    def critical_s(self) -> float:
        """The line-time model's time for this unit's ROM side so far (0 without it)."""
        return max(self._v_rx, self._v_tx, self._v_chip)

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
        self._answer(self.loader.receive(data), baud)

    def _answer(self, out: bytes, baud: int) -> None:
        if out:
            self.tx_bytes += len(out)
            if self._tx is None:
                self._write(out)
            else:
                self._tx.put(out, baud)
        event = self.loader.take_event()
        if event is not None:
            self._on_event(event)

    # ---- the line-time model ----------------------------------------------------------

    def _to_chip(self, data: bytes) -> None:
        """Bytes off the wire into the chip's receive buffer (the UART FIFO and the
        stub's ring buffer hold them while the chip works)."""
        if self._inbox is not None:
            self._inbox.put_nowait((self.loader.generation, data))

    async def _chip_loop(self) -> None:
        assert self._inbox is not None
        loop = asyncio.get_running_loop()
        while True:
            generation, data = await self._inbox.get()
            loader = self.loader
            if generation != loader.generation or not loader.active:
                continue  # reset or powered off while the bytes were on the wire
            wait = self._chip_free - loop.time()
            if wait > 0:  # still writing what it acked: the bytes wait in the buffer
                await asyncio.sleep(wait)
                if generation != loader.generation or not loader.active:
                    continue
            baud = loader.baud
            commands = loader.stats.commands
            out = loader.receive(data)
            busy, after = loader.take_work()
            self._account(len(data), len(out), baud, busy, after, loader.stats.commands > commands)
            if busy > 0:
                await asyncio.sleep(busy)
                if generation != loader.generation:
                    continue  # the answer dies with the reset
            self._chip_free = loop.time() + after
            self._answer(out, baud)

    def _account(self, rx: int, tx: int, baud: int, busy: float, after: float, acted: bool) -> None:
        """Advance the model's clock by one chunk: its bytes follow the last answer (the
        host sends when it has what it waited for); a command in it starts when the chip
        is free, answers after `busy`, and keeps the chip `after` longer."""
        per_byte = BITS_PER_BYTE / baud
        self._v_rx = max(self._v_rx, self._v_tx) + rx * per_byte
        if not acted:
            return
        start = max(self._v_rx, self._v_chip)
        self._v_chip = start + busy + after
        self._v_tx = start + busy + tx * per_byte

    def find_app(self) -> BootedApp | NoApp:
        """What the second stage finds at the app offset."""
        flash = self.loader.flash
        offset = self.loader.chip.app_offset
        window = min(_APP_WINDOW, flash.size - offset)
        return find_app(self.loader.chip.name, flash.read(offset, window))

    def boot_flash(self) -> BootedApp | NoApp | ProductionApp:
        """What a boot from flash runs, the security eFuses as they are (ate.sim.prod_boot):
        flash encryption, secure boot and which app."""
        return boot(self.loader.chip.name, self.loader.flash, self.loader.efuses)
