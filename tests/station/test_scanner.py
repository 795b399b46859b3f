"""A serial barcode scanner through the station (a scanner's twin on a real socket):
each good scan fills the fixture's next slot without a label, a scan that is not a unit
label is refused (and said in the fixture's status), noise is dropped, and the next panel
takes the labels; a scanner that goes away is opened again."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ate.provision.identity import derive_serial
from tests.station.conftest import running, wait_status, write_station


def serial(n: int) -> str:
    return derive_serial(b"s" * 32, bytes([n]) * 6, prefix="AS3", digits=9)


async def test_scans_fill_the_slots_in_order(tmp_path: Path) -> None:
    clients: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()

    async def on_client(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await clients.put(writer)

    server = await asyncio.start_server(on_client, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    path = write_station(
        tmp_path,
        [("fx1", {"slots": 2})],
        label_scan="optional",
        fixtures_extra={"scanner": f"socket://127.0.0.1:{port}"},
    )
    async with running(path) as station:
        book = station.scans
        assert book is not None
        # The first panel over (its labels given back): scans are for the next one.
        await wait_status(station, lambda st: st.fixtures["fx1"].state == "done")
        changed = asyncio.Event()
        book.on_change = changed.set
        scanner = await asyncio.wait_for(clients.get(), 30)

        async def scan(raw: bytes) -> None:
            changed.clear()
            scanner.write(raw)
            await scanner.drain()

        await scan(serial(1).encode() + b"\r\n")
        await asyncio.wait_for(changed.wait(), 30)
        await scan(b"\x1b[noise\x07\r\nnot-a-label\r\n")
        await wait_status(
            station, lambda st: "scan refused" in (st.fixtures["fx1"].last_error or "")
        )
        await scan(serial(2).encode() + b"\n")
        await asyncio.wait_for(changed.wait(), 30)
        assert book.pending("fx1") == {1: serial(1), 2: serial(2)}
        # The scanner is unplugged and comes back: the station opens it again.
        scanner.close()
        scanner = await asyncio.wait_for(clients.get(), 30)
        # The next panel takes the labels.
        twin = station.twins["fx1"]
        twin.set_clamp(False)
        await wait_status(station, lambda st: st.fixtures["fx1"].state == "waiting")
        twin.set_clamp(True)
        await wait_status(station, lambda st: st.fixtures["fx1"].panels == 2)
        assert book.pending("fx1") == {}
        scanner.close()
    server.close()
