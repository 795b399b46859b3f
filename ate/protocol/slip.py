"""SLIP framing and the ESP ROM loader's command packets (esptool's wire format), sans-IO.

Owns: the SLIP encoder and stream decoder, the request/response packet codec and the
data-block checksum. Pure functions and small state machines, no I/O; imports nothing
outside the standard library (ate.protocol may import ate.model only).

    frame     C0 <payload with C0 -> DB DC, DB -> DB DD> C0
    request   <BBHI  00, op, len(payload), checksum   + payload
    response  <BBHI  01, op, len(data), value         + data (+ status bytes at its end)
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from enum import IntEnum

END = 0xC0
ESC = 0xDB
ESC_END = 0xDC
ESC_ESC = 0xDD

_END = b"\xc0"
_ESC = b"\xdb"
_ESC_END_SEQ = b"\xdb\xdc"
_ESC_ESC_SEQ = b"\xdb\xdd"

# A stub data block is 16 KiB; escaped it is at most twice that plus its header. Anything
# longer is noise and is dropped rather than buffered without bound.
MAX_FRAME = 64 * 1024

DIRECTION_REQUEST = 0x00
DIRECTION_RESPONSE = 0x01
HEADER = struct.Struct("<BBHI")
DATA_HEADER = struct.Struct("<IIII")
CHECKSUM_SEED = 0xEF


class Op(IntEnum):
    """Command opcodes (esptool's ESPLoader.ESP_CMDS)."""

    FLASH_BEGIN = 0x02
    FLASH_DATA = 0x03
    FLASH_END = 0x04
    MEM_BEGIN = 0x05
    MEM_END = 0x06
    MEM_DATA = 0x07
    SYNC = 0x08
    WRITE_REG = 0x09
    READ_REG = 0x0A
    SPI_SET_PARAMS = 0x0B
    SPI_ATTACH = 0x0D
    READ_FLASH_SLOW = 0x0E
    CHANGE_BAUDRATE = 0x0F
    FLASH_DEFL_BEGIN = 0x10
    FLASH_DEFL_DATA = 0x11
    FLASH_DEFL_END = 0x12
    SPI_FLASH_MD5 = 0x13
    GET_SECURITY_INFO = 0x14
    ERASE_FLASH = 0xD0
    ERASE_REGION = 0xD1
    READ_FLASH = 0xD2
    RUN_USER_CODE = 0xD3


# Commands whose checksum field covers the data after their 16-byte block header.
CHECKSUMMED = frozenset({Op.FLASH_DATA, Op.FLASH_DEFL_DATA, Op.MEM_DATA})

SYNC_PAYLOAD = b"\x07\x07\x12\x20" + b"\x55" * 32


class PacketError(ValueError):
    """A SLIP frame that is not a well-formed packet of the expected direction."""


# ---- SLIP ---------------------------------------------------------------------------


def slip_encode(payload: bytes) -> bytes:
    """One SLIP frame: C0, the escaped payload, C0 (esptool's framing)."""
    return _END + payload.replace(_ESC, _ESC_ESC_SEQ).replace(_END, _ESC_END_SEQ) + _END


def slip_unescape(raw: bytes) -> bytes | None:
    """The payload of an escaped frame body, or None if it holds a bad escape sequence."""
    if _ESC not in raw:
        return raw
    # Every DB in a valid body leads an escape pair, so removing the valid pairs must
    # leave no DB behind (and C0 cannot occur inside a body at all).
    if _ESC in raw.replace(_ESC_END_SEQ, b"").replace(_ESC_ESC_SEQ, b""):
        return None
    return raw.replace(_ESC_END_SEQ, _END).replace(_ESC_ESC_SEQ, _ESC)


class SlipDecoder:
    """Bytes in, complete frames out.

    Like the ROM and esptool's own reader, bytes outside a frame are skipped until a C0
    opens one; C0 C0 is an empty frame and keeps the frame open (so a reader that joins
    mid-frame resynchronises on the next frame). Frames with a bad escape, or longer than
    `max_frame` escaped bytes, are dropped and counted in `dropped`.
    """

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        if max_frame < 1:
            raise ValueError("max_frame must be positive")
        self.max_frame = max_frame
        self.dropped = 0
        self._buf = bytearray()
        self._in_frame = False

    def reset(self) -> None:
        """Forget any half-received frame (a reset device loses it)."""
        self._buf.clear()
        self._in_frame = False

    @property
    def buffered(self) -> int:
        """Escaped bytes of the frame being received."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[bytes]:
        frames: list[bytes] = []
        pos = 0
        n = len(data)
        while pos < n:
            end = data.find(_END, pos)
            if not self._in_frame:
                if end < 0:
                    return frames  # garbage between frames
                self._in_frame = True
                pos = end + 1
                continue
            stop = n if end < 0 else end
            if len(self._buf) + (stop - pos) > self.max_frame:
                # Too long to be a packet: drop it and look for the next opening C0.
                self.dropped += 1
                self._buf.clear()
                self._in_frame = False
                pos = stop
                continue
            self._buf += data[pos:stop]
            if end < 0:
                return frames
            pos = end + 1
            if not self._buf:
                continue  # C0 C0: the first one closed nothing; the frame stays open
            payload = slip_unescape(bytes(self._buf))
            self._buf.clear()
            self._in_frame = False
            if payload is None:
                self.dropped += 1
            else:
                frames.append(payload)
        return frames


# ---- packets ------------------------------------------------------------------------


def checksum(data: bytes, seed: int = CHECKSUM_SEED) -> int:
    """The ROM's data checksum: XOR of all bytes, seeded 0xEF."""
    if not data:
        return seed & 0xFF
    # XOR-fold the whole block as one integer: linear time in C, not a Python loop.
    x = int.from_bytes(data, "little")
    width = 1
    while width < len(data):
        width *= 2
    while width > 1:
        width //= 2
        bits = 8 * width
        x = (x >> bits) ^ (x & ((1 << bits) - 1))
    return (x ^ seed) & 0xFF


@dataclass(frozen=True, slots=True)
class Command:
    """A host request: opcode, the 32-bit checksum/value field and the payload."""

    op: int
    value: int
    payload: bytes

    def data_block(self) -> DataBlock:
        """The `<IIII` size, seq header and data of FLASH_DATA, FLASH_DEFL_DATA, MEM_DATA."""
        if len(self.payload) < DATA_HEADER.size:
            raise PacketError(f"op {self.op:#04x}: {len(self.payload)} bytes, no block header")
        size, seq, _, _ = DATA_HEADER.unpack_from(self.payload)
        return DataBlock(size=size, seq=seq, data=self.payload[DATA_HEADER.size :])

    def checksum_ok(self) -> bool:
        """Whether the checksum field matches the block data (data commands only)."""
        return self.value == checksum(self.payload[DATA_HEADER.size :])


@dataclass(frozen=True, slots=True)
class DataBlock:
    size: int
    seq: int
    data: bytes


@dataclass(frozen=True, slots=True)
class Response:
    """A device answer: opcode, the 32-bit value field and the data (status at its end)."""

    op: int
    value: int
    data: bytes


def encode_command(op: int, payload: bytes = b"", value: int | None = None) -> bytes:
    """A request as a SLIP frame; data commands get their checksum unless `value` is given."""
    if value is None:
        value = checksum(payload[DATA_HEADER.size :]) if op in CHECKSUMMED else 0
    return slip_encode(HEADER.pack(DIRECTION_REQUEST, op, len(payload), value) + payload)


def encode_data_command(op: int, data: bytes, seq: int) -> bytes:
    """FLASH_DATA/FLASH_DEFL_DATA/MEM_DATA with its block header and checksum."""
    return encode_command(op, DATA_HEADER.pack(len(data), seq, 0, 0) + data)


def _unpack(packet: bytes, want: int, kind: str) -> tuple[int, int, bytes]:
    """(op, value, body) of a packet going in direction `want`; PacketError otherwise."""
    if len(packet) < HEADER.size:
        raise PacketError(f"{len(packet)} bytes is shorter than a header")
    direction, op, size, value = HEADER.unpack_from(packet)
    if direction != want:
        raise PacketError(f"direction {direction:#04x} is not a {kind}")
    body = packet[HEADER.size :]
    if size != len(body):
        raise PacketError(f"op {op:#04x}: header says {size} bytes, {len(body)} follow")
    return op, value, body


def parse_command(packet: bytes) -> Command:
    """A request from an unescaped frame; PacketError if it is not one."""
    op, value, payload = _unpack(packet, DIRECTION_REQUEST, "request")
    return Command(op=op, value=value, payload=payload)


def encode_response(op: int, value: int = 0, data: bytes = b"") -> bytes:
    """A response as a SLIP frame; `data` already carries its status bytes."""
    return slip_encode(HEADER.pack(DIRECTION_RESPONSE, op, len(data), value & 0xFFFFFFFF) + data)


def parse_response(packet: bytes) -> Response:
    """A response from an unescaped frame; PacketError if it is not one."""
    op, value, data = _unpack(packet, DIRECTION_RESPONSE, "response")
    return Response(op=op, value=value, data=data)
