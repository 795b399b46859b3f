"""A barcode scanner's simulated twin: a socket:// serial port on 127.0.0.1 that "scans"
codes (each written as a CR LF terminated line, as a scanner in serial mode sends it),
or any raw bytes a test wants a noisy or broken scanner to send. `unplug()` drops the
connection, as a scanner pulled from its USB port does.

    async with SimScanner() as twin:        # the station opens twin.url
        await twin.scan("AS3000000042")

May import the standard library only.
"""

from __future__ import annotations

import asyncio
from types import TracebackType


class SimScanner:
    def __init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._clients: asyncio.Queue[asyncio.StreamWriter] = asyncio.Queue()
        self._writer: asyncio.StreamWriter | None = None

    async def __aenter__(self) -> SimScanner:
        self._server = await asyncio.start_server(self._on_client, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.unplug()
        if self._server is not None:
            self._server.close()

    @property
    def url(self) -> str:
        assert self._server is not None, "use SimScanner as `async with`"
        return f"socket://127.0.0.1:{self._server.sockets[0].getsockname()[1]}"

    async def _on_client(self, _: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await self._clients.put(writer)

    async def connected(self, timeout: float = 30) -> None:
        """Wait until the scanner's reader has opened the port (again)."""
        if self._writer is None or self._writer.is_closing():
            self._writer = await asyncio.wait_for(self._clients.get(), timeout)

    async def send(self, raw: bytes) -> None:
        await self.connected()
        assert self._writer is not None
        self._writer.write(raw)
        await self._writer.drain()

    async def scan(self, code: str) -> None:
        await self.send(code.encode("ascii") + b"\r\n")

    def unplug(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None
