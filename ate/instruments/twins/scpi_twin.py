"""The SCPI twins: a line-oriented server core and a power supply (its current from a load
model), a DMM (its reading from a source, e.g. the rail a mux twin has closed), a relay
mux and a shield box. Fault injection lives here: `replies` replaces the answer to a
query (NaN, 9.9E37, garbage), `idn` can be any instrument's.

Imports nothing from ate.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import threading
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

NO_ERROR = '+0,"No error"'
_CHANNELS = re.compile(r"\(@([0-9]{1,6}(?:,[0-9]{1,6})*)\)")


class CommandError(Exception):
    """A SCPI error the twin queues for SYST:ERR? (code, message)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def channel_list(args: str) -> list[int]:
    found = _CHANNELS.search(args)
    return [int(c) for c in found.group(1).split(",")] if found else []


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise CommandError(-104, "Data type error") from None


class ScpiTwin:
    """One instrument: `handle(line)` -> reply or None. Subclasses add `command`."""

    def __init__(self, idn: str) -> None:
        self.idn = idn
        self.errors: deque[tuple[int, str]] = deque()
        self.replies: dict[str, str] = {}  # query header -> the reply to give instead
        self.silent: set[str] = set()  # headers it never answers (a hung instrument)
        self.delays: dict[str, float] = {}  # header -> seconds before it answers (a slow one)
        self.received: list[str] = []  # every line, for tests to read
        self.port = 0  # where it listens, once serving
        self._server: asyncio.Server | None = None
        self._clients: dict[asyncio.Task[None], asyncio.StreamWriter] = {}

    def handle(self, line: str) -> str | None:
        line = line.strip()
        self.received.append(line)
        header, _, args = line.partition(" ")
        header = header.upper()
        if header in self.silent:
            return None
        if header in self.replies:
            return self.replies[header]
        if header == "*IDN?":
            return self.idn
        if header == "SYST:ERR?":
            if self.errors:
                code, message = self.errors.popleft()
                return f'{code:+d},"{message}"'
            return NO_ERROR
        if header in ("*RST", "*CLS"):
            self.errors.clear()
            return None
        try:
            return self.command(header, args.strip())
        except CommandError as exc:
            self.errors.append((exc.code, str(exc)))
            return None

    def command(self, header: str, args: str) -> str | None:
        raise CommandError(-113, "Undefined header")

    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on host:port (0: a free one); the port it listens on."""
        self._server = await asyncio.start_server(self._client, host, port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    @property
    def resource(self) -> str:
        """Its VISA resource string, for pyvisa-py."""
        return f"TCPIP::127.0.0.1::{self.port}::SOCKET"

    async def aclose(self) -> None:
        """Stop listening and end every connection (each handler ends on its own: a
        cancelled stream handler would be reported as an error by asyncio)."""
        if self._server is not None:
            self._server.close()
        for writer in list(self._clients.values()):
            writer.close()
        if self._clients:
            await asyncio.gather(*self._clients, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._clients[task] = writer
        try:
            while line := await reader.readline():
                text = line.decode("ascii", "replace")
                reply = self.handle(text)
                delay = self.delays.get(text.strip().partition(" ")[0].upper())
                if delay:
                    await asyncio.sleep(delay)  # the instrument is slow: it answers late
                if reply is not None:
                    writer.write(reply.encode() + b"\n")
                    await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            del self._clients[task]
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()


@dataclass
class PsuChannel:
    volts: float = 0.0
    limit: float = 1.0
    on: bool = False
    load_ohms: float = 1e12  # what the channel drives (the DUT as a resistance)
    # Or the load as a model: amps drawn at a voltage (a simulated board's power mode).
    load: Callable[[float], float] | None = None

    def demand(self) -> float:
        return self.load(self.volts) if self.load is not None else self.volts / self.load_ohms


class PsuTwin(ScpiTwin):
    """A power supply with `outputs` channels; each channel's current is V/R of its load,
    held at the current limit (the voltage then falls: constant-current mode)."""

    def __init__(self, idn: str = "ATE,SIM-PSU,0001,1.0", outputs: int = 1) -> None:
        super().__init__(idn)
        self.channels = {n: PsuChannel() for n in range(1, outputs + 1)}

    def _chosen(self, args: str) -> list[PsuChannel]:
        numbers = channel_list(args) or [1]
        if any(n not in self.channels for n in numbers):
            raise CommandError(-222, "Data out of range")
        return [self.channels[n] for n in numbers]

    def current(self, ch: PsuChannel) -> float:
        return min(ch.demand(), ch.limit) if ch.on else 0.0

    def command(self, header: str, args: str) -> str | None:
        value = args.split(",", 1)[0].strip()
        if header in ("VOLT", "SOUR:VOLT"):
            for ch in self._chosen(args):
                ch.volts = _number(value)
            return None
        if header in ("CURR", "SOUR:CURR"):
            for ch in self._chosen(args):
                ch.limit = _number(value)
            return None
        if header in ("OUTP", "OUTP:STAT"):
            if value.upper() not in ("ON", "OFF", "1", "0"):
                raise CommandError(-224, "Illegal parameter value")
            for ch in self._chosen(args):
                ch.on = value.upper() in ("ON", "1")
            return None
        if header == "MEAS:CURR?":
            return ",".join(f"{self.current(ch):+.6E}" for ch in self._chosen(args))
        if header == "MEAS:VOLT?":
            out = []
            for ch in self._chosen(args):
                # At the current limit the supply holds the current and its voltage sags.
                limited = ch.on and ch.demand() > ch.limit > 0
                volts = ch.volts * ch.limit / ch.demand() if limited else ch.volts
                out.append(f"{volts if ch.on else 0.0:+.6E}")
            return ",".join(out)
        raise CommandError(-113, "Undefined header")


class DmmTwin(ScpiTwin):
    def __init__(
        self,
        idn: str = "ATE,SIM-DMM,0001,1.0",
        volts: Callable[[], float] = lambda: 0.0,
        amps: Callable[[], float] = lambda: 0.0,
    ) -> None:
        super().__init__(idn)
        self.volts = volts
        self.amps = amps

    def command(self, header: str, args: str) -> str | None:
        if header in ("MEAS:VOLT:DC?", "MEAS:VOLT?"):
            return f"{self.volts():+.9E}"
        if header in ("MEAS:CURR:DC?", "MEAS:CURR?"):
            return f"{self.amps():+.9E}"
        if header.startswith("CONF:"):
            return None
        raise CommandError(-113, "Undefined header")


class MuxTwin(ScpiTwin):
    """Relays by number; `level()` is what the closed relay connects (its `rails` value),
    9.9E37 when none or several are closed (a DMM reading an open input overflows)."""

    def __init__(self, idn: str = "ATE,SIM-MUX,0001,1.0", rails: dict[int, float] | None = None):
        super().__init__(idn)
        self.rails = dict(rails or {})
        self.closed: set[int] = set()

    def level(self) -> float:
        if len(self.closed) != 1:
            return 9.9e37
        return self.rails.get(next(iter(self.closed)), 9.9e37)

    def command(self, header: str, args: str) -> str | None:
        if header == "ROUT:OPEN:ALL":
            self.closed.clear()
            return None
        chosen = channel_list(args)
        if header in ("ROUT:CLOS", "ROUT:OPEN") and not chosen:
            raise CommandError(-109, "Missing parameter")
        if header == "ROUT:CLOS":
            self.closed.update(chosen)
            return None
        if header == "ROUT:OPEN":
            self.closed.difference_update(chosen)
            return None
        if header == "ROUT:CLOS?":
            return ",".join("1" if c in self.closed else "0" for c in chosen)
        raise CommandError(-113, "Undefined header")


class ShieldBoxTwin(ScpiTwin):
    def __init__(self, idn: str = "ATE,SIM-SHIELD,0001,1.0") -> None:
        super().__init__(idn)
        self.door_closed = False

    def command(self, header: str, args: str) -> str | None:
        if header == "DOOR:OPEN":
            self.door_closed = False
            return None
        if header == "DOOR:CLOS":
            self.door_closed = True
            return None
        if header == "DOOR:STAT?":
            return "CLOSED" if self.door_closed else "OPEN"
        raise CommandError(-113, "Undefined header")


@dataclass
class TwinThread:
    """Twins served from a private event loop in a thread (for code that has no loop of
    its own running, e.g. `ate sim`): `ports[name]` once started."""

    twins: dict[str, ScpiTwin]
    ports: dict[str, int] = field(default_factory=dict)

    @contextlib.contextmanager
    def running(self) -> Iterator[dict[str, int]]:
        loop = asyncio.new_event_loop()
        started = threading.Event()

        async def start() -> None:
            for name, twin in self.twins.items():
                self.ports[name] = await twin.serve()
            started.set()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(start())
            loop.run_forever()

        thread = threading.Thread(target=run, name="scpi-twins", daemon=True)
        thread.start()
        started.wait(10)
        try:
            yield self.ports
        finally:

            async def stop() -> None:
                for twin in self.twins.values():
                    await twin.aclose()

            asyncio.run_coroutine_threadsafe(stop(), loop).result(10)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()
