"""asyncio client for the ate line protocol over a serial port or socket:// URL.

One request in flight per device; a timeout, a corrupt reply or garbage never blocks
another device because every client is its own transport on the shared event loop.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, TypeVar

import serial
import serial_asyncio_fast

from ate.protocol.lines import (
    Corrupt,
    DeviceDecoder,
    ErrorReply,
    LogLine,
    Notice,
    Reply,
    encode_request,
    line_text,
)


class DeviceError(Exception):
    """The device answered ERR: it understood and refused or failed."""

    def __init__(self, command: str, code: str, message: str) -> None:
        self.command, self.code, self.message = command, code, message
        super().__init__(f"{command}: {code} {message}".rstrip())


class DeviceTimeout(Exception):
    """No usable reply within the deadline, after resending."""


class DeviceGone(Exception):
    """The port closed or failed underneath us."""


class DeviceRebooted(Exception):
    """The device booted again while it was being tested: its state (and perhaps which
    unit it is) is gone. Every later request on this client raises it too."""

    def __init__(self, name: str, evidence: str) -> None:
        self.evidence = evidence
        super().__init__(f"{name}: rebooted ({evidence})")


# What a boot looks like on the wire, besides the firmware's READY notice: the ROM's
# banner and reset-cause lines (ESP32-S3/C3 ROMs; the older ets banner of the ESP32).
_BOOT_BANNER = re.compile(r"^(ESP-ROM:|rst:0x[0-9a-f]+ |ets [A-Z][a-z]{2} +\d)")


class _Resend(Exception):
    """A corrupt reply arrived while waiting: resend now rather than wait out the timer."""


class _LineProtocol(asyncio.Protocol):
    __slots__ = ("_client",)

    def __init__(self, client: LineClient) -> None:
        self._client = client

    def data_received(self, data: bytes) -> None:
        self._client._on_bytes(data)

    def connection_lost(self, exc: Exception | None) -> None:
        self._client._on_lost(exc)


LogSink = Callable[[str], None]
T = TypeVar("T")

_SENT_KEPT = 256  # request ids remembered: a reply to one is at worst late


@dataclass(frozen=True, slots=True)
class WireLine:
    """One test-protocol line as text without its checksum: a request the host sent
    ("tx"; `resend` for a repeat under the same id) or a reply, notice or corrupt line
    from the device ("rx"; `corrupt` says why it was refused). `command` is the
    request's, for a reply the command of the request it answers (when this client
    sent it). Log lines are not wire lines: they reach `on_log`."""

    direction: Literal["tx", "rx"]
    text: str
    command: str = ""
    resend: bool = False
    corrupt: str = ""


WireTap = Callable[[WireLine], None]


class LineClient:
    """Request/reply over one port. Create with `await LineClient.open(...)`."""

    def __init__(self, name: str, on_log: LogSink | None = None) -> None:
        self.name = name
        self._on_log = on_log
        self._decoder = DeviceDecoder()
        self._transport: asyncio.BaseTransport | None = None
        self._next_id = 1
        self._pending_id = 0
        self._pending: asyncio.Future[Reply | ErrorReply] | None = None
        self._lock = asyncio.Lock()
        self._notice_waiters: list[tuple[str, asyncio.Future[Notice]]] = []
        self._notice_listeners: list[Callable[[Notice], None]] = []
        self._lost: Exception | None = None
        self._guarding = False  # a boot now is unexpected: the unit's state would be gone
        self._rebooted: DeviceRebooted | None = None
        self._lost_listeners: list[Callable[[Exception], None]] = []
        # Ids this client has used (-> command): a reply to one is at worst late; to any
        # other, a lie.
        self._sent: dict[int, str] = {}
        self._tap: WireTap | None = None
        self._violation: DeviceError | None = None
        self.stats = {"sent": 0, "resent": 0, "corrupt": 0, "stale": 0}

    @classmethod
    async def open(
        cls, endpoint: str, baud: int = 115200, *, name: str = "", on_log: LogSink | None = None
    ) -> LineClient:
        """Open a serial device path or a socket:// / rfc2217:// URL."""
        client = cls(name or endpoint, on_log)
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await serial_asyncio_fast.create_serial_connection(
                loop, lambda: _LineProtocol(client), endpoint, baudrate=baud
            )
        except (serial.SerialException, OSError, ValueError) as exc:
            raise DeviceGone(f"cannot open {endpoint}: {exc}") from None
        client._transport = transport
        return client

    # ---- receive path: runs inside data_received, must never raise ------------------

    def _on_bytes(self, data: bytes) -> None:
        for event in self._decoder.feed(data):
            if self._tap is not None and not isinstance(event, LogLine):
                self._tap_rx(self._tap, event)
            if isinstance(event, Reply | ErrorReply):
                fut = self._pending
                if fut is not None and event.id == self._pending_id and not fut.done():
                    fut.set_result(event)
                elif event.id in self._sent:
                    self.stats["stale"] += 1  # a late answer to an abandoned request
                else:
                    self._violated(f"a reply to request id {event.id}, which was never sent")
            elif isinstance(event, Notice):
                self._deliver_notice(event)
            elif isinstance(event, LogLine):
                if self._on_log is not None:
                    self._on_log(event.text)
                if self._guarding and _BOOT_BANNER.match(event.text):
                    self._boot_seen(f"boot banner {event.text[:40]!r}")
            elif isinstance(event, Corrupt):
                self.stats["corrupt"] += 1
                if self._on_log is not None:
                    self._on_log(f"[ate: corrupt line ({event.reason})] {event.text}")
                fut = self._pending
                if fut is not None and not fut.done():
                    fut.set_exception(_Resend())

    def _tap_rx(self, tap: WireTap, event: Reply | ErrorReply | Notice | Corrupt) -> None:
        if isinstance(event, Corrupt):
            tap(WireLine("rx", event.text, corrupt=event.reason))
        elif isinstance(event, Notice):
            tap(WireLine("rx", line_text(event)))
        else:
            tap(WireLine("rx", line_text(event), self._sent.get(event.id, "")))

    def _deliver_notice(self, notice: Notice) -> None:
        if self._on_log is not None:
            self._on_log(f"@* {notice.name} {notice.fields}")
        if self._guarding and notice.name == "READY":
            self._boot_seen("an unexpected READY")
        keep = []
        for name, fut in self._notice_waiters:
            if name == notice.name and not fut.done():
                fut.set_result(notice)
            elif not fut.done():
                keep.append((name, fut))
        self._notice_waiters = keep
        for listener in self._notice_listeners:
            listener(notice)

    def _violated(self, what: str) -> None:
        """The device broke the protocol in a way no honest firmware does: nothing it
        says can be trusted any more, so this and every later request fails."""
        if self._violation is None:
            self._violation = DeviceError("protocol", "EPROTO", what)
        if self._pending is not None and not self._pending.done():
            self._pending.set_exception(self._violation)

    def _boot_expected(self) -> bool:
        return any(name == "READY" and not fut.done() for name, fut in self._notice_waiters)

    def _boot_seen(self, evidence: str) -> None:
        """A boot while guarded: unless a step armed a READY (deep sleep wakes by
        booting), the unit rebooted under us; fail what waits and all that follows."""
        if self._boot_expected() or self._rebooted is not None:
            return
        self._rebooted = DeviceRebooted(self.name, evidence)
        if self._pending is not None and not self._pending.done():
            self._pending.set_exception(self._rebooted)

    def guard_reboots(self, on: bool = True) -> None:
        """From now on (until turned off) a boot nobody expects is DeviceRebooted."""
        self._guarding = on

    @property
    def rebooted(self) -> DeviceRebooted | None:
        return self._rebooted

    def _on_lost(self, exc: Exception | None) -> None:
        self._lost = DeviceGone(f"{self.name}: port closed" + (f" ({exc})" if exc else ""))
        if self._pending is not None and not self._pending.done():
            self._pending.set_exception(self._lost)
        for _, fut in self._notice_waiters:
            if not fut.done():
                fut.set_exception(self._lost)
        for listener in self._lost_listeners:
            listener(self._lost)

    # ---- API --------------------------------------------------------------------------

    def tap_wire(self, tap: WireTap | None) -> None:
        """Hand every protocol line, both ways, to `tap` (None: stop). It runs on the
        loop inside the receive path and must not raise."""
        self._tap = tap

    def add_notice_listener(self, listener: Callable[[Notice], None]) -> None:
        self._notice_listeners.append(listener)

    def add_lost_listener(self, listener: Callable[[Exception], None]) -> None:
        """Called once, on the loop, when the port closes or fails underneath us."""
        self._lost_listeners.append(listener)

    def expect_notice(self, name: str) -> asyncio.Future[Notice]:
        """A future for the next notice `name`; arm it before the action that causes it."""
        fut: asyncio.Future[Notice] = asyncio.get_running_loop().create_future()
        if self._lost is not None:
            fut.set_exception(self._lost)
        else:
            self._notice_waiters.append((name, fut))
        return fut

    async def request(
        self,
        command: str,
        *args: object,
        timeout: float = 0.5,
        attempts: int = 3,
    ) -> dict[str, str]:
        """Send `command`, return the reply's fields; raise DeviceError on ERR.

        `timeout` is per attempt; a resend reuses the id so the device answers from its
        cache instead of acting twice (PROTOCOL.md rule 4).
        """
        if self._rebooted is not None:
            raise self._rebooted
        if self._violation is not None:
            raise self._violation
        if self._lost is not None:
            raise self._lost
        transport = self._transport
        assert isinstance(transport, asyncio.WriteTransport)
        async with self._lock:
            req_id = self._next_id
            self._next_id = req_id % 0xFFFF + 1
            line = encode_request(req_id, command, *args)
            loop = asyncio.get_running_loop()
            self._pending_id = req_id
            self._sent.pop(req_id, None)  # ids wrap: this use is the newest
            self._sent[req_id] = command
            if len(self._sent) > _SENT_KEPT:
                del self._sent[next(iter(self._sent))]
            try:
                for attempt in range(attempts):
                    fut: asyncio.Future[Reply | ErrorReply] = loop.create_future()
                    self._pending = fut
                    # A leading newline flushes whatever half line noise left in the
                    # device's buffer, so the resend parses cleanly (rule 6).
                    transport.write(line if attempt == 0 else b"\n" + line)
                    if self._tap is not None:
                        # The request without its "*XXXX\n" checksum, as logs keep lines.
                        self._tap(WireLine("tx", line[:-6].decode(), command, attempt > 0))
                    self.stats["sent" if attempt == 0 else "resent"] += 1
                    try:
                        async with asyncio.timeout(timeout):
                            reply = await fut
                    except (TimeoutError, _Resend):
                        if self._rebooted is not None:
                            raise self._rebooted from None
                        if self._violation is not None:
                            raise self._violation from None
                        continue
                    if isinstance(reply, ErrorReply):
                        raise DeviceError(command, reply.code, reply.message)
                    return reply.fields
            finally:
                self._pending = None
                self._pending_id = 0
        raise DeviceTimeout(f"no reply to {command} after {attempts} attempts of {timeout:g} s")

    async def close(self) -> None:
        transport = self._transport
        if transport is not None and not transport.is_closing():
            transport.close()
        self._transport = None
        await asyncio.sleep(0)  # let connection_lost run before the port is reused

    @property
    def closed(self) -> bool:
        return self._transport is None or self._lost is not None


def reply_field(fields: dict[str, str], key: str, convert: Callable[[str], T], command: str) -> T:
    """A typed field of a reply, parsed strictly (ate.protocol.fields); a missing,
    malformed or non-finite one is the device's fault (EPROTO), its raw text quoted."""
    try:
        return convert(fields[key])
    except KeyError:
        raise DeviceError(command, "EPROTO", f"reply lacks {key}=") from None
    except (ValueError, OverflowError) as exc:
        raw = fields[key]
        shown = raw if len(raw) <= 60 else f"{raw[:60]}... ({len(raw)} characters)"
        raise DeviceError(command, "EPROTO", f"reply has unusable {key}={shown} ({exc})") from None
