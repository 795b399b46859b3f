"""Helpers for the sim tests: a host-side client on pyserial-asyncio-fast, a fast board."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

import serial_asyncio_fast

from ate.protocol.lines import (
    Corrupt,
    DeviceDecoder,
    DeviceEvent,
    ErrorReply,
    LogLine,
    Notice,
    Reply,
    encode_request,
)
from ate.sim.board import BoardSpec, SimBoard
from ate.sim.dut_server import DutServer, Transport

FAST_BOARD: dict[str, Any] = {
    "board": "test-board",
    "chip": "esp32s3",
    "firmware": "ate-testfw/1.2.3",
    "mac_prefix": "24:0a:c4",
    "gpio": {"count": 40, "reserved": [30], "loopbacks": [[4, 5], [6, 7]], "levels": {0: 1}},
    "i2c": [
        {"bus": 0, "address": 0x68, "registers": {0x75: 0x68}},
        {"bus": 0, "address": 0x44, "registers": {0x7E: 0x54, 0x7F: 0x49}},
    ],
    "spi": [{"bus": 1, "jedec": 0xEF4017}],
    "adc": {3: {"mv": 1650, "spread_mv": 4, "noise_mv": 2}},
    "rails": {"3v3": {"v": 3.3, "spread": 0.015}, "1v8": {"v": 1.8, "spread": 0.01}},
    "current_ma": {
        "idle": {"nominal": 32, "spread": 2},
        "active": {"nominal": 85, "spread": 4},
        "light_sleep": {"nominal": 0.8, "spread": 0.05},
        "deep_sleep": {"nominal": 0.012, "spread": 0.001},
    },
    "latency_ms": {"default": 0.0},
    "boot_ms": 20,
    "boot_noise": True,
}


def make_spec(**changes: Any) -> BoardSpec:
    """The fast test board with top-level keys replaced (faults={...}, boot_ms=0, ...)."""
    return BoardSpec.model_validate({**FAST_BOARD, **changes})


class LineClient:
    """What a host does on a real line: pyserial-asyncio-fast plus the codec."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.decoder = DeviceDecoder()
        self.events: list[DeviceEvent] = []
        self._queue: asyncio.Queue[DeviceEvent] = asyncio.Queue()
        self._next_id = 0
        self._pump_task = asyncio.get_running_loop().create_task(self._pump())

    @classmethod
    async def open(cls, url: str) -> LineClient:
        reader, writer = await serial_asyncio_fast.open_serial_connection(url=url, baudrate=115200)
        return cls(reader, writer)

    async def _pump(self) -> None:
        while data := await self.reader.read(4096):
            for event in self.decoder.feed(data):
                self.events.append(event)
                self._queue.put_nowait(event)

    async def close(self) -> None:
        self._pump_task.cancel()
        self.writer.close()
        with contextlib.suppress(asyncio.CancelledError, OSError):
            await self._pump_task

    @property
    def eof(self) -> bool:
        return self._pump_task.done()

    def new_id(self) -> int:
        self._next_id = self._next_id % 0xFFFF + 1
        return self._next_id

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def next(self, want: Callable[[DeviceEvent], bool], timeout: float = 3.0) -> DeviceEvent:
        async with asyncio.timeout(timeout):
            while True:
                event = await self._queue.get()
                if want(event):
                    return event

    async def notice(self, name: str, timeout: float = 3.0) -> Notice:
        event = await self.next(lambda e: isinstance(e, Notice) and e.name == name, timeout)
        assert isinstance(event, Notice)
        return event

    async def request(
        self,
        command: str,
        *args: object,
        req_id: int | None = None,
        timeout: float = 3.0,
        resend_on_corrupt: int = 0,
        **kwargs: object,
    ) -> Reply | ErrorReply:
        """Send one request; resend the same id on a corrupt reply (rule 3)."""
        rid = req_id if req_id is not None else self.new_id()
        line = encode_request(rid, command, *args, **kwargs)
        for _ in range(resend_on_corrupt + 1):
            self.send(line)
            event = await self.next(
                lambda e: (
                    isinstance(e, Corrupt) or (isinstance(e, Reply | ErrorReply) and e.id == rid)
                ),
                timeout,
            )
            if isinstance(event, Reply | ErrorReply):
                return event
        raise AssertionError(f"{command}: still corrupt after {resend_on_corrupt} resends")

    async def ok(self, command: str, *args: object, **kwargs: Any) -> dict[str, str]:
        reply = await self.request(command, *args, **kwargs)
        assert isinstance(reply, Reply), reply
        return reply.fields

    async def err(self, command: str, *args: object, **kwargs: Any) -> str:
        reply = await self.request(command, *args, **kwargs)
        assert isinstance(reply, ErrorReply), reply
        return reply.code

    def answered(self, rid: int) -> bool:
        return any(isinstance(e, Reply | ErrorReply) and e.id == rid for e in self.events)

    def logs(self) -> list[str]:
        return [e.text for e in self.events if isinstance(e, LogLine)]


class Duts:
    """Starts DutServers with clients attached; everything is closed at teardown."""

    def __init__(self) -> None:
        self.servers: list[DutServer] = []
        self.clients: list[LineClient] = []

    async def server(
        self,
        spec: BoardSpec | None = None,
        *,
        seed: int = 7,
        slot: int = 1,
        transport: Transport = "pty",
    ) -> DutServer:
        server = DutServer(SimBoard(spec or make_spec(), seed, slot), transport)
        await server.start()
        self.servers.append(server)
        return server

    async def client(self, server: DutServer) -> LineClient:
        client = await LineClient.open(server.endpoint)
        self.clients.append(client)
        return client

    async def booted(
        self, spec: BoardSpec | None = None, **kwargs: Any
    ) -> tuple[DutServer, LineClient, Notice]:
        """A powered board past READY, with a client that saw the whole boot."""
        server = await self.server(spec, **kwargs)
        client = await self.client(server)
        server.power(True)
        ready = await client.notice("READY")
        return server, client, ready

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
        for server in self.servers:
            await server.stop()
