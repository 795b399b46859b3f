"""The serial barcode scanner as an async iterator of scans, on a real socket:// port
(the scanner's twin) and on a real pty: codes trimmed and in order, whatever the line
ending; noise, non-ASCII and endless lines reported as bad scans, never raised; a
scanner that goes away ends the scans with DeviceGone."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator

import pytest

from ate.drivers.line_client import DeviceGone
from ate.drivers.scanner import MAX_SCAN, Scan, SerialScanner, scans
from ate.sim.scanner import SimScanner


async def take(it: AsyncIterator[Scan], n: int) -> list[Scan]:
    return [await asyncio.wait_for(anext(it), 10) for _ in range(n)]


async def test_scans_in_order_and_bad_ones_reported() -> None:
    async with SimScanner() as twin:
        it = scans(twin.url)
        first = asyncio.ensure_future(anext(it))  # opens the port
        await twin.scan("  AS3000000001 ")
        assert await asyncio.wait_for(first, 10) == Scan(code="AS3000000001")
        await twin.send(b"AS3000000002\rAS3000000003\n\r\n\x1b[2J\x07\r\n")
        await twin.send("caf\u00e9\r\n".encode() + b"x" * (MAX_SCAN + 5))
        assert await take(it, 5) == [
            Scan(code="AS3000000002"),
            Scan(code="AS3000000003"),
            Scan(bad="a scan with control characters or too long"),
            Scan(bad="a scan that is not ASCII text"),
            Scan(bad=f"a scan longer than {MAX_SCAN} characters"),
        ]
        # The rest of that endless line is dropped with it, not taken for a scan.
        await twin.send(b"x" * (MAX_SCAN + 5) + b"tail\r\n")
        await twin.scan("AS3000000004")
        assert await take(it, 1) == [Scan(code="AS3000000004")]
        twin.unplug()
        with pytest.raises(DeviceGone, match="went away"):
            await asyncio.wait_for(anext(it), 10)


async def test_scans_on_a_pty() -> None:
    master, slave = os.openpty()
    got: asyncio.Queue[str] = asyncio.Queue()
    # Opened before the "scanner" sends: opening a tty flushes what waited in it.
    scanner = await SerialScanner.open(os.ttyname(slave), got.put_nowait, baud=9600)
    try:
        os.write(master, b"SN-0042\r\nSN-0043\n")
        assert [await asyncio.wait_for(got.get(), 10) for _ in range(2)] == [
            "SN-0042",
            "SN-0043",
        ]
    finally:
        await scanner.close()
        os.close(master)
        os.close(slave)


async def test_a_scanner_that_is_not_there() -> None:
    with pytest.raises(DeviceGone, match="barcode scanner"):
        await anext(scans("socket://127.0.0.1:9"))
