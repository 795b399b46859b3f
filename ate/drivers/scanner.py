"""A barcode scanner on a serial port (a USB scanner in its serial/CDC mode, or an RS-232
one): each scan arrives as one line ending in CR and/or LF. `SerialScanner` delivers
each scan to a callback as text: trimmed, printable ASCII, at most MAX_SCAN characters;
anything else (a noisy line, a stuck trigger's endless line) is reported to `on_bad` and
dropped, never passed on. A scanner that goes away is reported to `on_lost`; the owner
opens it again. `scans()` is the same as an async iterator of `Scan`s (a good code, or
what was wrong with a bad one), ending in DeviceGone when the scanner goes away.
ate.sim.scanner is the twin that scans codes onto a socket:// port.

The keyboard-wedge kind needs nothing here: it types into the operator page.

Imports ate.drivers only.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import serial
import serial_asyncio_fast

from ate.drivers.line_client import DeviceGone

MAX_SCAN = 128


@dataclass(frozen=True, slots=True)
class Scan:
    """One scan: `code` when it was good, else `bad` says what was wrong with it."""

    code: str | None = None
    bad: str | None = None


class _ScanProtocol(asyncio.Protocol):
    def __init__(self, owner: SerialScanner) -> None:
        self.owner = owner
        self.buffer = bytearray()
        self.overlong = False  # inside a line already reported too long: drop to its end

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            cut = min(
                (i for i in (self.buffer.find(b"\r"), self.buffer.find(b"\n")) if i >= 0),
                default=-1,
            )
            if cut < 0:
                if len(self.buffer) > MAX_SCAN:  # no end in sight: drop it, say so once
                    if not self.overlong:
                        self.owner.on_bad(f"a scan longer than {MAX_SCAN} characters")
                    self.overlong = True
                    self.buffer.clear()
                return
            line, self.buffer = bytes(self.buffer[:cut]), self.buffer[cut + 1 :]
            if self.overlong:  # the end of a line already dropped: never a scan of its own
                self.overlong = False
            elif line.strip():
                self.owner.deliver(line)

    def connection_lost(self, exc: Exception | None) -> None:
        self.owner.lost(exc)


class SerialScanner:
    def __init__(
        self,
        on_scan: Callable[[str], None],
        on_bad: Callable[[str], None] = lambda why: None,
        on_lost: Callable[[], None] = lambda: None,
    ) -> None:
        self.on_scan, self.on_bad, self.on_lost = on_scan, on_bad, on_lost
        self.closed = asyncio.Event()
        self._transport: asyncio.BaseTransport | None = None

    @classmethod
    async def open(
        cls,
        endpoint: str,
        on_scan: Callable[[str], None],
        on_bad: Callable[[str], None] = lambda why: None,
        baud: int = 9600,
        on_lost: Callable[[], None] = lambda: None,
    ) -> SerialScanner:
        scanner = cls(on_scan, on_bad, on_lost)
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
        if not self.closed.is_set():
            self.closed.set()
            self.on_lost()

    async def close(self) -> None:
        self.closed.set()  # closed by its owner: not lost
        if self._transport is not None:
            self._transport.close()


async def scans(endpoint: str, baud: int = 9600) -> AsyncIterator[Scan]:
    """Each scan from the scanner on `endpoint` as it comes, bad ones as `Scan(bad=...)`
    (never raised); DeviceGone when it cannot be opened or goes away."""
    queue: asyncio.Queue[Scan | None] = asyncio.Queue()
    scanner = await SerialScanner.open(
        endpoint,
        lambda code: queue.put_nowait(Scan(code=code)),
        lambda why: queue.put_nowait(Scan(bad=why)),
        baud,
        lambda: queue.put_nowait(None),
    )
    try:
        while (scan := await queue.get()) is not None:
            yield scan
        raise DeviceGone(f"barcode scanner {endpoint} went away")
    finally:
        await scanner.close()
