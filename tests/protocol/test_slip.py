"""SLIP framing and ROM packets: round trips, split reads, garbage, escapes (hypothesis)."""

from __future__ import annotations

import functools
import operator
import struct

import pytest
from esptool.loader import ESPLoader
from hypothesis import given
from hypothesis import strategies as st

from ate.protocol.slip import (
    CHECKSUM_SEED,
    HEADER,
    Op,
    PacketError,
    Response,
    SlipDecoder,
    checksum,
    encode_command,
    encode_data_command,
    encode_response,
    parse_command,
    parse_response,
    slip_encode,
    slip_unescape,
)

# Payloads rich in the two special bytes, so escapes are exercised on most examples.
special = st.sampled_from([0xC0, 0xDB, 0xDC, 0xDD])
payload_bytes = st.lists(st.one_of(special, st.integers(0, 255)), min_size=1, max_size=300).map(
    bytes
)
payloads = st.lists(payload_bytes, min_size=1, max_size=6)
# Noise between frames: anything but C0, which would open a frame.
garbage = st.binary(max_size=40).map(lambda b: b.replace(b"\xc0", b""))


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, last = [], 0
    for p in points:
        pieces.append(data[last:p])
        last = p
    pieces.append(data[last:])
    return pieces


def test_known_escapes() -> None:
    assert slip_encode(b"\xc0") == b"\xc0\xdb\xdc\xc0"
    assert slip_encode(b"\xdb") == b"\xc0\xdb\xdd\xc0"
    assert slip_encode(b"\xdb\xdc") == b"\xc0\xdb\xdd\xdc\xc0"
    assert SlipDecoder().feed(b"\xc0\xdb\xdd\xdc\xc0") == [b"\xdb\xdc"]


def test_matches_esptool_framing() -> None:
    # esptool's ESPLoader.write() escapes DB first, then C0: the same bytes as ours.
    data = bytes(range(256)) * 2
    expected = b"\xc0" + data.replace(b"\xdb", b"\xdb\xdd").replace(b"\xc0", b"\xdb\xdc") + b"\xc0"
    assert slip_encode(data) == expected


@given(payloads)
def test_round_trip(frames: list[bytes]) -> None:
    stream = b"".join(slip_encode(p) for p in frames)
    assert SlipDecoder().feed(stream) == frames


@given(payloads, st.lists(st.integers(0, 10_000), max_size=8))
def test_split_reads_anywhere(frames: list[bytes], cuts: list[int]) -> None:
    stream = b"".join(slip_encode(p) for p in frames)
    decoder = SlipDecoder()
    out: list[bytes] = []
    for piece in split_at(stream, cuts):
        out += decoder.feed(piece)
    assert out == frames


@given(payloads, st.lists(garbage, min_size=7, max_size=7))
def test_garbage_between_frames_is_skipped(frames: list[bytes], noise: list[bytes]) -> None:
    stream = noise[0] + b"".join(slip_encode(p) + noise[i % 6 + 1] for i, p in enumerate(frames))
    assert SlipDecoder().feed(stream) == frames


@given(payloads)
def test_byte_at_a_time(frames: list[bytes]) -> None:
    stream = b"".join(slip_encode(p) for p in frames)
    decoder = SlipDecoder()
    out = [f for i in range(len(stream)) for f in decoder.feed(stream[i : i + 1])]
    assert out == frames


def test_joining_mid_frame_resynchronises() -> None:
    stream = slip_encode(b"first") + slip_encode(b"second")
    assert SlipDecoder().feed(stream[3:]) == [b"second"]


def test_bad_escape_drops_only_that_frame() -> None:
    decoder = SlipDecoder()
    assert decoder.feed(b"\xc0ab\xdb\x01cd\xc0" + slip_encode(b"ok")) == [b"ok"]
    assert decoder.dropped == 1
    assert slip_unescape(b"a\xdb") is None


def test_overlong_frame_is_dropped_and_buffer_stays_bounded() -> None:
    decoder = SlipDecoder(max_frame=100)
    out = decoder.feed(b"\xc0" + b"x" * 60)
    out += decoder.feed(b"y" * 60)
    assert decoder.buffered <= 100
    out += decoder.feed(b"z" * 1000 + b"\xc0" + slip_encode(b"next"))
    assert out == [b"next"]
    assert decoder.dropped == 1


@given(st.binary(max_size=2000))
def test_decoder_never_raises_and_stays_bounded(data: bytes) -> None:
    decoder = SlipDecoder(max_frame=256)
    for frame in decoder.feed(data):
        assert len(frame) <= 256
    assert decoder.buffered <= 256


@given(st.binary(max_size=5000))
def test_checksum_matches_esptool(data: bytes) -> None:
    assert checksum(data) == ESPLoader.checksum(data)
    assert checksum(data) == functools.reduce(operator.xor, data, CHECKSUM_SEED)


def test_sync_request_bytes() -> None:
    # What esptool writes for SYNC (seen in its --trace output).
    frame = encode_command(Op.SYNC, b"\x07\x07\x12\x20" + b"\x55" * 32)
    assert frame[:10] == bytes.fromhex("c0000824000000000007")
    assert len(frame) == 46


@given(st.integers(0, 255), st.binary(max_size=600), st.integers(0, 0xFFFFFFFF))
def test_command_round_trip(op: int, payload: bytes, value: int) -> None:
    (packet,) = SlipDecoder().feed(encode_command(op, payload, value))
    assert parse_command(packet).op == op
    assert parse_command(packet).payload == payload
    assert parse_command(packet).value == value


@given(st.binary(max_size=0x400), st.integers(0, 1000))
def test_data_command_carries_checksum_and_header(data: bytes, seq: int) -> None:
    (packet,) = SlipDecoder().feed(encode_data_command(Op.FLASH_DATA, data, seq))
    cmd = parse_command(packet)
    assert cmd.checksum_ok()
    block = cmd.data_block()
    assert (block.size, block.seq, block.data) == (len(data), seq, data)
    tampered = parse_command(packet[:4] + struct.pack("<I", cmd.value ^ 1) + packet[8:])
    assert not tampered.checksum_ok()


@given(st.integers(0, 255), st.integers(0, 0xFFFFFFFF), st.binary(max_size=100))
def test_response_round_trip(op: int, value: int, data: bytes) -> None:
    (packet,) = SlipDecoder().feed(encode_response(op, value, data))
    assert parse_response(packet) == Response(op, value, data)


def test_malformed_packets_are_rejected() -> None:
    with pytest.raises(PacketError):
        parse_command(b"\x00\x08")
    with pytest.raises(PacketError):  # a response is not a request
        parse_command(HEADER.pack(1, 8, 0, 0))
    with pytest.raises(PacketError):  # length field disagrees with the payload
        parse_command(HEADER.pack(0, 8, 5, 0) + b"abc")
    with pytest.raises(PacketError):
        parse_response(HEADER.pack(0, 8, 0, 0))
    with pytest.raises(PacketError):
        parse_command(HEADER.pack(0, Op.FLASH_DATA, 3, 0) + b"abc").data_block()
