"""The ate line protocol (firmware/test_fw/PROTOCOL.md), both directions, sans-IO.

The test firmware and the fixture controller speak it. Lines look like

    host -> device   !7 gpio.get 4*1A2B
    device -> host   @7 OK level=1*C0DE
                     @7 ERR EHW i2c nack at 0x68*BEEF
                     @* READY proto=1 fw=ate-testfw/1.0.0 mac=24:0a:c4:00:00:01*0F0F
    anything else    I (312) cpu_start: Starting scheduler   -> kept as a log line

`*XXXX` is CRC-16/CCITT-FALSE over the line before the `*`, so garbage on the wire
corrupts a reply detectably instead of silently changing a value.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

PROTOCOL_VERSION = 1
MAX_LINE = 4096  # longer runs without a newline are noise: dropped, never buffered forever

_TOKEN_RE = re.compile(r"[^\s*=]+")
_VALUE_RE = re.compile(r"[^\s*]*")
_COMMAND_RE = re.compile(r"[a-z][a-z0-9_]*(\.[a-z0-9_]+)*")
_CODE_RE = re.compile(r"E[A-Z0-9_]+")
_ANSI_RE = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
_ID_RE = re.compile(r"[0-9]{1,5}")  # ASCII digits only: '²'.isdigit() is True


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF): cheap on a microcontroller too."""
    return binascii.crc_hqx(data, 0xFFFF)


def _seal(body: str) -> bytes:
    raw = body.encode("ascii")
    return raw + b"*%04X\n" % crc16(raw)


def _format_fields(fields: Mapping[str, object]) -> str:
    parts = []
    for key, value in fields.items():
        text = str(value)
        if not _TOKEN_RE.fullmatch(key) or not _VALUE_RE.fullmatch(text):
            raise ValueError(f"field {key}={text!r} has whitespace, '*' or '=' in its key")
        parts.append(f"{key}={text}")
    return " ".join(parts)


def _format_args(args: Iterable[object]) -> str:
    out = []
    for arg in args:
        text = str(arg)
        if not text or not _VALUE_RE.fullmatch(text):
            raise ValueError(f"argument {text!r} is empty or has whitespace or '*'")
        out.append(text)
    return " ".join(out)


# ---- events ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Request:
    """A host request as the device sees it."""

    id: int
    command: str
    args: tuple[str, ...] = ()
    kwargs: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Reply:
    id: int
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class ErrorReply:
    id: int
    code: str
    message: str


@dataclass(frozen=True, slots=True)
class Notice:
    """An unsolicited line from the device: READY after boot, EVENT from a fixture."""

    name: str
    fields: dict[str, str]


@dataclass(frozen=True, slots=True)
class LogLine:
    """Anything that is not protocol: ESP-IDF logs, ROM boot text, stray bytes."""

    text: str


@dataclass(frozen=True, slots=True)
class Corrupt:
    """A line that looked like protocol but failed its checksum or grammar."""

    text: str
    reason: str


DeviceEvent = Reply | ErrorReply | Notice | LogLine | Corrupt
HostEvent = Request | LogLine | Corrupt


# ---- encoders -------------------------------------------------------------------------


def encode_request(req_id: int, command: str, *args: object, **kwargs: object) -> bytes:
    if not 1 <= req_id <= 0xFFFF:
        raise ValueError(f"request id {req_id} outside 1..65535")
    if not _COMMAND_RE.fullmatch(command):
        raise ValueError(f"command {command!r} is not a dotted lowercase name")
    body = f"!{req_id} {command}"
    if args:
        body += " " + _format_args(args)
    if kwargs:
        body += " " + _format_fields(kwargs)
    return _seal(body)


def encode_reply(req_id: int, fields: Mapping[str, object] | None = None) -> bytes:
    body = f"@{req_id} OK"
    if fields:
        body += " " + _format_fields(fields)
    return _seal(body)


def encode_error(req_id: int, code: str, message: str) -> bytes:
    if not _CODE_RE.fullmatch(code):
        raise ValueError(f"error code {code!r} must look like EHW, EARG, ...")
    # A device may echo host text in a message: keep it ASCII and without a '*' that
    # would be read as the start of the checksum.
    message = " ".join(message.encode("ascii", "replace").decode().replace("*", "?").split())
    return _seal(f"@{req_id} ERR {code} {message or '-'}")


def encode_notice(name: str, fields: Mapping[str, object] | None = None) -> bytes:
    if not name.isupper() or not name.isalpha():
        raise ValueError(f"notice name {name!r} must be uppercase letters")
    body = f"@* {name}"
    if fields:
        body += " " + _format_fields(fields)
    return _seal(body)


# ---- lines as text (logs) -------------------------------------------------------------


def line_text(event: Reply | ErrorReply | Notice) -> str:
    """The device line `event` was read from, without its checksum: how a log keeps it
    (readable, and a copy edited by hand is still well-formed; `seal_text` re-seals it)."""
    if isinstance(event, Notice):
        head = f"@* {event.name}"
    elif isinstance(event, Reply):
        head = f"@{event.id} OK"
    else:
        return f"@{event.id} ERR {event.code} {event.message}".rstrip()
    fields = " ".join(f"{k}={v}" for k, v in event.fields.items())
    return f"{head} {fields}" if fields else head


def seal_text(body: str) -> bytes:
    """`body` as a line on the wire: its bytes (UTF-8), the checksum, the newline. The
    checksum is over the ASCII view of the text, as the decoder checks it."""
    return body.encode("utf-8") + b"*%04X\n" % crc16(body.encode("ascii", "replace"))


def parse_device_text(body: str) -> DeviceEvent:
    """A device line as `line_text` gives it (no checksum), classified."""
    return parse_device_line(seal_text(body).decode("utf-8")[:-1])


# ---- line parsing ---------------------------------------------------------------------


def _unseal(line: str, required: bool) -> tuple[str, str | None]:
    """Split `body*XXXX` and check it. Returns (body, error or None)."""
    star = line.rfind("*")
    if star >= 0 and len(line) - star == 5:
        body, tail = line[:star], line[star + 1 :]
        try:
            want = int(tail, 16)
        except ValueError:
            return line, "bad checksum digits"
        if crc16(body.encode("ascii", "replace")) != want:
            return body, "checksum mismatch"
        return body, None
    return line, "missing checksum" if required else None


def _split_fields(tokens: list[str]) -> tuple[list[str], dict[str, str]] | None:
    args: list[str] = []
    kwargs: dict[str, str] = {}
    for tok in tokens:
        key, eq, value = tok.partition("=")
        if eq:
            if not key:
                return None
            kwargs[key] = value
        elif kwargs:
            return None  # positional after key=value
        else:
            args.append(tok)
    return args, kwargs


def parse_device_line(line: str) -> DeviceEvent:
    """Classify one line from a device (without its newline)."""
    start = _protocol_start(line, "@")
    if start < 0:
        return LogLine(_ANSI_RE.sub("", line))
    text = line[start:]
    body, problem = _unseal(text, required=True)
    if problem:
        return Corrupt(text, problem)
    head, _, rest = body[1:].partition(" ")
    tokens = rest.split()
    if head == "*":
        if not tokens or not tokens[0].isalpha() or not tokens[0].isupper():
            return Corrupt(text, "notice without a NAME")
        split = _split_fields(tokens[1:])
        if split is None or split[0]:
            return Corrupt(text, "notice fields must be key=value")
        return Notice(tokens[0], split[1])
    if not _ID_RE.fullmatch(head):
        return Corrupt(text, "reply id is not a number")
    req_id = int(head)
    if tokens[:1] == ["OK"]:
        split = _split_fields(tokens[1:])
        if split is None or split[0]:
            return Corrupt(text, "reply fields must be key=value")
        return Reply(req_id, split[1])
    if tokens[:1] == ["ERR"] and len(tokens) >= 2 and _CODE_RE.fullmatch(tokens[1]):
        return ErrorReply(req_id, tokens[1], " ".join(tokens[2:]))
    return Corrupt(text, "reply is neither OK nor ERR <code>")


def parse_host_line(line: str, *, require_checksum: bool = False) -> HostEvent:
    """Classify one line from the host. A person at a terminal may omit the checksum."""
    start = _protocol_start(line, "!")
    if start < 0:
        stripped = line.strip()
        return LogLine(stripped)
    text = line[start:].rstrip()
    body, problem = _unseal(text, required=require_checksum)
    if problem:
        return Corrupt(text, problem)
    head, _, rest = body[1:].partition(" ")
    tokens = rest.split()
    if not _ID_RE.fullmatch(head) or not 1 <= int(head) <= 0xFFFF:
        return Corrupt(text, "request id must be 1..65535")
    if not tokens or not _COMMAND_RE.fullmatch(tokens[0]):
        return Corrupt(text, "request without a command")
    if any("*" in tok for tok in tokens):
        return Corrupt(text, "'*' is only allowed before the checksum")
    split = _split_fields(tokens[1:])
    if split is None:
        return Corrupt(text, "positional arguments must come before key=value")
    return Request(int(head), tokens[0], tuple(split[0]), split[1])


def _protocol_start(line: str, marker: str) -> int:
    """Index of the first `marker` that starts a protocol line, or -1.

    Garbage may precede a reply on the same line (no newline between them); the reply
    still starts at `@` followed by a digit or `*`.
    """
    i = line.find(marker)
    while i >= 0:
        nxt = line[i + 1 : i + 2]
        if "0" <= nxt <= "9" or (nxt == "*" and marker == "@"):
            return i
        i = line.find(marker, i + 1)
    return -1


# ---- the stream decoders -------------------------------------------------------------


class LineSplitter:
    """Bytes in, complete lines out. Bounded: an over-long run is dropped as noise."""

    __slots__ = ("_buf", "_dropping")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._dropping = False

    def feed(self, data: bytes) -> list[str]:
        self._buf += data
        lines: list[str] = []
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > MAX_LINE:
                    del self._buf[:]
                    self._dropping = True
                return lines
            raw = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            if self._dropping or nl > MAX_LINE:  # over-long: never a valid reply
                self._dropping = False
                continue
            if raw.endswith(b"\r"):
                raw = raw[:-1]
            lines.append(raw.decode("utf-8", "replace"))

    @property
    def pending(self) -> int:
        return len(self._buf)


class DeviceDecoder:
    """Host side: bytes from a device in, DeviceEvents out."""

    __slots__ = ("_lines",)

    def __init__(self) -> None:
        self._lines = LineSplitter()

    def feed(self, data: bytes) -> list[DeviceEvent]:
        events: list[DeviceEvent] = []
        for line in self._lines.feed(data):
            if not line:
                continue
            start = _protocol_start(line, "@")
            if start > 0:  # noise glued to the front of a reply stays in the DUT's log
                events.append(LogLine(_ANSI_RE.sub("", line[:start])))
            events.append(parse_device_line(line))
        return events


class HostDecoder:
    """Device side (simulators, fixture twins): bytes from the host in, HostEvents out."""

    __slots__ = ("_lines", "require_checksum")

    def __init__(self, *, require_checksum: bool = False) -> None:
        self._lines = LineSplitter()
        self.require_checksum = require_checksum

    def feed(self, data: bytes) -> list[HostEvent]:
        return [
            parse_host_line(line, require_checksum=self.require_checksum)
            for line in self._lines.feed(data)
            if line.strip()
        ]
