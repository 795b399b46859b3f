"""A barcode scanner on a serial port (a USB scanner in its serial/CDC mode, or an RS-232
one): each scan arrives as one line ending in CR and/or LF. `SerialScanner` delivers
each scan to a callback as text: trimmed, printable ASCII, at most MAX_SCAN characters;
anything else (a noisy line, a stuck trigger's endless line) is reported to `on_bad` and
dropped, never passed on. A scanner that goes away is reported to `on_lost`; the owner
opens it again.

The keyboard-wedge kind needs nothing here: it types into the operator page.

Imports ate.drivers only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import serial
import serial_asyncio_fast

from ate.drivers.line_client import DeviceGone

MAX_SCAN = 128


class _ScanProtocol(asyncio.Protocol):
    def __init__(self, owner: SerialScanner) -> None:
        self.owner = owner
        self.buffer = bytearray()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            cut = min(
                (i for i in (self.buffer.find(b"\r"), self.buffer.find(b"\n")) if i >= 0),
                default=-1,
            )
            if cut < 0:
                if len(self.buffer) > MAX_SCAN:  # no end in sight: drop it, say so once
                    self.owner.on_bad(f"a scan longer than {MAX_SCAN} characters")
                    self.buffer.clear()
                return
            line, self.buffer = bytes(self.buffer[:cut]), self.buffer[cut + 1 :]
            if line.strip():
                self.owner.deliver(line)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.lost(exc)


class SerialScanner:
    def __init__(
        self,
        on_scan: Callable[[str], None],
        on_bad: Callable[[str], None] = lambda why: None,
    ) -> None:
        self.on_scan, self.on_bad = on_scan, on_bad
        self.closed = asyncio.Event()
        self._transport: asyncio.BaseTransport | None = None

    @classmethod
    async def open(
        cls,
        endpoint: str,
        on_scan: Callable[[str], None],
        on_bad: Callable[[str], None] = lambda why: None,
        baud: int = 9600,
    ) -> SerialScanner:
        scanner = cls(on_scan, on_bad)
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await serial_asyncio_fast.create_serial_connection(
                loop, lambda: _ScanProtocol(scanner), endpoint, baudrate=baud
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceGone(f"barcode scanner {endpoint}: {exc}") from None
        scanner._transport = transport
        return scanner

    def deliver(self, raw: bytes) -> None:
        try:
            text = raw.decode("ascii").strip()
        except UnicodeDecodeError:
            self.on_bad("a scan that is not ASCII text")
            return
        if len(text) > MAX_SCAN or not text.isprintable():
            self.on_bad("a scan with control characters or too long")
            return
        self.on_scan(text)

    def lost(self, exc: Exception | None) -> None:
        self.closed.set()

    async def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
        self.closed.set()
