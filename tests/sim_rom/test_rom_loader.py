"""The sans-IO ROM loader: commands as bytes in, answers as bytes out (no sockets)."""

from __future__ import annotations

import hashlib
import random
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ate.protocol.slip import (
    SYNC_PAYLOAD,
    Op,
    Response,
    SlipDecoder,
    encode_command,
    encode_data_command,
    parse_response,
    slip_encode,
)
from ate.sim.rom.chips import ESP32C3, ESP32S3, ChipProfile
from ate.sim.rom.efuses import EfuseBank
from ate.sim.rom.flash import SparseFlash
from ate.sim.rom.loader import ROM_BAUD, LoaderEvent, RomLoader

MIB = 1024 * 1024
ROM_OK = b"\x00\x00\x00\x00"
STUB_OK = b"\x00\x00"
EFUSE = 0x60007000
SPI = 0x60002000


class Host:
    """Plays esptool's side against a RomLoader, frame by frame."""

    def __init__(self, chip: ChipProfile = ESP32S3, mac: str = "aa:bb:cc:dd:ee:01") -> None:
        self.flash = SparseFlash(chip.default_flash_size)
        self.efuses = EfuseBank(chip, mac=mac)
        self.loader = RomLoader(chip, self.flash, self.efuses)
        self.banner = self.loader.reset()
        self.decoder = SlipDecoder()

    def frames(self, data: bytes) -> list[bytes]:
        return self.decoder.feed(self.loader.receive(data))

    def send(self, op: int, payload: bytes = b"", value: int | None = None) -> list[Response]:
        return [parse_response(f) for f in self.frames(encode_command(op, payload, value))]

    def cmd(self, op: int, payload: bytes = b"", value: int | None = None) -> Response:
        (answer,) = self.send(op, payload, value)
        return answer

    def data(self, op: int, data: bytes, seq: int) -> Response:
        (answer,) = [parse_response(f) for f in self.frames(encode_data_command(op, data, seq))]
        return answer

    def read_reg(self, addr: int) -> int:
        return self.cmd(Op.READ_REG, struct.pack("<I", addr)).value

    def write_reg(self, addr: int, value: int, mask: int = 0xFFFFFFFF) -> Response:
        return self.cmd(Op.WRITE_REG, struct.pack("<IIII", addr, value, mask, 0))

    def start_stub(self) -> None:
        entry = min(self.loader.chip.stub_entries)
        assert self.cmd(Op.MEM_BEGIN, struct.pack("<IIII", 4, 1, 0x1800, 0x40378000)).data == ROM_OK
        assert self.data(Op.MEM_DATA, b"\x00" * 4, 0).data == ROM_OK
        frames = self.frames(encode_command(Op.MEM_END, struct.pack("<II", 0, entry)))
        assert parse_response(frames[0]).data == ROM_OK
        assert frames[1:] == [b"OHAI"]
        assert self.loader.stub_running

    def spi_command(self, opcode: int, read_bits: int, addr: int | None = None) -> int:
        """esptool's run_spiflash_command through the SPI registers."""
        flags = 1 << 31 | 1 << 28
        if addr is not None:
            flags |= 1 << 30
            self.write_reg(SPI + 0x1C, (24 - 1) << 26 | (8 - 1))  # USR1: address, dummy
            self.write_reg(SPI + 0x04, addr)
        self.write_reg(SPI + 0x28, read_bits - 1)  # MISO_DLEN
        self.write_reg(SPI + 0x18, flags)  # USR
        self.write_reg(SPI + 0x20, 7 << 28 | opcode)  # USR2
        self.write_reg(SPI + 0x58, 0)  # W0
        self.write_reg(SPI + 0x00, 1 << 18)  # CMD: USR
        assert self.read_reg(SPI + 0x00) & 1 << 18 == 0, "CMD_USR must clear by itself"
        return self.read_reg(SPI + 0x58)


def status(resp: Response) -> bytes:
    return resp.data[-4:] if len(resp.data) >= 4 else resp.data


def test_reset_banner_and_defaults() -> None:
    host = Host()
    assert host.banner.startswith(b"ESP-ROM:esp32s3-")
    assert b"boot:0x0 (DOWNLOAD(USB/UART0))" in host.banner
    assert host.banner.endswith(b"waiting for download\r\n")
    assert host.loader.baud == ROM_BAUD
    assert not host.loader.stub_running


def test_silent_until_reset() -> None:
    chip = ESP32S3
    loader = RomLoader(chip, SparseFlash(), EfuseBank(chip))
    assert loader.receive(encode_command(Op.SYNC, SYNC_PAYLOAD)) == b""
    loader.reset()
    assert loader.receive(encode_command(Op.SYNC, SYNC_PAYLOAD)) != b""


def test_sync_answers_eight_times_nonzero_in_rom_zero_in_stub() -> None:
    host = Host()
    answers = host.send(Op.SYNC, SYNC_PAYLOAD)
    assert len(answers) == 8
    assert {a.value for a in answers} == {0x20120707}
    assert {a.data for a in answers} == {ROM_OK}
    host.start_stub()
    answers = host.send(Op.SYNC, SYNC_PAYLOAD)
    assert len(answers) == 8
    assert {(a.value, a.data) for a in answers} == {(0, STUB_OK)}


def test_security_info_and_mac_words() -> None:
    host = Host(mac="12:34:56:78:9a:bc")
    info = host.cmd(Op.GET_SECURITY_INFO)
    assert len(info.data) == 20 + 4
    flags, crypt_cnt, *_purposes, chip_id, _api = struct.unpack("<IBBBBBBBBII", info.data[:20])
    assert (flags, crypt_cnt, chip_id) == (0, 0, 9)
    # esptool's ESP32S3ROM.read_mac: word 0x44 = bytes 2-5, low half of 0x48 = bytes 0-1
    mac = struct.pack(">II", host.read_reg(EFUSE + 0x48), host.read_reg(EFUSE + 0x44))[2:]
    assert mac.hex(":") == "12:34:56:78:9a:bc"


def test_write_reg_applies_mask_read_modify_write() -> None:
    host = Host()
    ram = 0x3FC90000
    assert host.write_reg(ram, 0x12345678).data == ROM_OK
    host.write_reg(ram, 0xFFFFFFFF, 0x0000FF00)
    assert host.read_reg(ram) == 0x1234FF78
    # several entries in one command, as espefuse sends with delay_after_us
    payload = struct.pack("<IIII", ram, 0, 0xFF, 0) + struct.pack(
        "<IIII", ram + 4, 7, ~0 & 0xFFFFFFFF, 0
    )
    host.cmd(Op.WRITE_REG, payload)
    assert (host.read_reg(ram), host.read_reg(ram + 4)) == (0x1234FF00, 7)


def test_efuse_read_registers_are_read_only() -> None:
    host = Host()
    before = host.read_reg(EFUSE + 0x44)
    host.write_reg(EFUSE + 0x44, 0)
    assert host.read_reg(EFUSE + 0x44) == before


def test_unknown_command_is_refused_like_the_rom() -> None:
    host = Host()
    answer = host.cmd(0x55)
    # Another opcode with status 01 05: the shape esptool turns into UnsupportedCommandError.
    assert answer.op != 0x55
    assert answer.data[:2] == b"\x01\x05"
    host.start_stub()
    answer = host.cmd(0x55)
    assert (answer.op, answer.data) == (0x55, b"\xff\x00")  # stub: "command not implemented"


def test_stub_only_commands_are_refused_in_rom() -> None:
    host = Host()
    assert host.cmd(Op.ERASE_REGION, struct.pack("<II", 0, 0x1000)).data[:2] == b"\x01\x05"


def test_lying_length_field_is_an_invalid_message() -> None:
    host = Host()
    frame = slip_encode(struct.pack("<BBHI", 0, Op.READ_REG, 9, 0) + b"\x00" * 4)
    (answer,) = [parse_response(f) for f in host.frames(frame)]
    assert (answer.op, answer.data[:2]) == (Op.READ_REG, b"\x01\x05")


def rom_flash_begin(host: Host, offset: int, size: int, block: int = 0x400) -> Response:
    blocks = (size + block - 1) // block
    return host.cmd(Op.FLASH_BEGIN, struct.pack("<IIIII", size, blocks, block, offset, 0))


def test_rom_write_checks_checksum_and_sequence() -> None:
    host = Host()
    assert rom_flash_begin(host, 0x10000, 0x800).data == ROM_OK
    block = bytes(range(256)) * 4
    bad = host.cmd(Op.FLASH_DATA, struct.pack("<IIII", len(block), 0, 0, 0) + block, value=0)
    assert bad.data[:2] == b"\x01\x07"  # checksum error
    assert host.data(Op.FLASH_DATA, block, 1).data[:2] == b"\x01\x05"  # seq 1 before 0
    assert host.data(Op.FLASH_DATA, block, 0).data == ROM_OK
    assert host.data(Op.FLASH_DATA, block, 1).data == ROM_OK
    assert host.flash.read(0x10000, 0x800) == block * 2


def test_rom_flash_size_limit_follows_spi_set_params() -> None:
    host = Host()
    # The ROM believes in 2 MB until told otherwise (esp-idf#10959: 0x0106 in SDM).
    assert rom_flash_begin(host, 0x200000, 0x1000).data[:2] == b"\x01\x06"
    params = struct.pack("<IIIIII", 0, 8 * MIB, 0x10000, 0x1000, 0x100, 0xFFFF)
    assert host.cmd(Op.SPI_SET_PARAMS, params).data == ROM_OK
    assert rom_flash_begin(host, 0x200000, 0x1000).data == ROM_OK
    # Telling it about 16 MB does not grow an 8 MB chip.
    params = struct.pack("<IIIIII", 0, 16 * MIB, 0x10000, 0x1000, 0x100, 0xFFFF)
    host.cmd(Op.SPI_SET_PARAMS, params)
    assert rom_flash_begin(host, 8 * MIB, 0x1000).data[:2] == b"\x01\x06"


def test_rom_begin_erases_and_program_ands() -> None:
    host = Host()
    host.flash.program(0x3000, b"\x00" * 16)
    host.flash.program(0x5000, b"\x0f" * 16)  # outside the erased range: kept
    assert rom_flash_begin(host, 0x3000, 0x1000).data == ROM_OK
    assert host.flash.read(0x3000, 16) == b"\xff" * 16
    assert host.flash.read(0x5000, 4) == b"\x0f" * 4


def test_md5_is_hex_in_rom_and_raw_in_stub() -> None:
    host = Host()
    host.flash.program(0x1000, b"hello")
    expected = hashlib.md5(host.flash.read(0x1000, 0x100)).digest()
    rom = host.cmd(Op.SPI_FLASH_MD5, struct.pack("<IIII", 0x1000, 0x100, 0, 0))
    assert rom.data == expected.hex().encode() + ROM_OK
    host.start_stub()
    stub = host.cmd(Op.SPI_FLASH_MD5, struct.pack("<IIII", 0x1000, 0x100, 0, 0))
    assert stub.data == expected + STUB_OK


def test_read_flash_slow_answers_64_bytes() -> None:
    host = Host()
    host.flash.program(0x2000, b"abcdefgh")
    answer = host.cmd(Op.READ_FLASH_SLOW, struct.pack("<II", 0x2000, 8))
    assert answer.data[:8] == b"abcdefgh" and len(answer.data) == 64 + 4
    assert host.cmd(Op.READ_FLASH_SLOW, struct.pack("<II", 0, 65)).data[-4:-2] == b"\x01\x0a"


@settings(max_examples=25, deadline=None)
@given(st.binary(min_size=1, max_size=40_000), st.randoms(use_true_random=False))
def test_compressed_write_inflates_incrementally_across_any_split(
    data: bytes, rnd: random.Random
) -> None:
    host = Host()
    host.start_stub()
    packed = zlib.compress(data, 9)
    blocks = [packed[i : i + 0x4000] for i in range(0, len(packed), 0x4000)]
    begin = struct.pack("<IIIII", len(data), len(blocks), 0x4000, 0x20000, 0)
    assert host.cmd(Op.FLASH_DEFL_BEGIN, begin).data == STUB_OK
    stream = b"".join(encode_data_command(Op.FLASH_DEFL_DATA, b, i) for i, b in enumerate(blocks))
    answers = []
    pos = 0
    while pos < len(stream):
        step = rnd.randint(1, 3000)
        answers += host.frames(stream[pos : pos + step])
        pos += step
    assert [parse_response(a).data for a in answers] == [STUB_OK] * len(blocks)
    assert host.cmd(Op.FLASH_DEFL_END, struct.pack("<I", 1)).data == STUB_OK
    assert host.flash.read(0x20000, len(data)) == data
    assert host.loader.stub_running  # FLASH_DEFL_END(1): stay in the stub


def test_compressed_data_past_the_announced_size_is_refused() -> None:
    host = Host()
    host.start_stub()
    packed = zlib.compress(b"\x00" * 0x2000)
    host.cmd(Op.FLASH_DEFL_BEGIN, struct.pack("<IIIII", 0x1000, 1, 0x4000, 0, 0))
    assert host.data(Op.FLASH_DEFL_DATA, packed, 0).data == b"\xc9\x00"  # too much data


def test_stub_read_flash_streams_blocks_against_acks_then_md5() -> None:
    host = Host()
    data = random.Random(1).randbytes(0x3800)
    host.flash.program(0x40000, data)
    host.start_stub()
    frames = host.frames(
        encode_command(Op.READ_FLASH, struct.pack("<IIII", 0x40000, len(data), 0x1000, 2))
    )
    assert parse_response(frames[0]).data == STUB_OK
    received = frames[1:]
    assert [len(f) for f in received] == [0x1000, 0x1000]  # two in flight, then it waits
    got = b"".join(received)
    while len(got) < len(data):
        got += b"".join(host.frames(slip_encode(struct.pack("<I", len(got)))))
    assert got == data
    digest = host.frames(slip_encode(struct.pack("<I", len(data))))  # the last ACK
    assert digest == [hashlib.md5(data).digest()]
    assert host.send(Op.SYNC, SYNC_PAYLOAD)[0].value == 0  # back to commands


def test_stub_erase_region_needs_sector_alignment() -> None:
    host = Host()
    host.flash.program(0x1000, b"\x00" * 0x2000)
    host.start_stub()
    assert host.cmd(Op.ERASE_REGION, struct.pack("<II", 0x1000, 0x800)).data == b"\xc0\x00"
    assert host.cmd(Op.ERASE_REGION, struct.pack("<II", 0x1000, 0x1000)).data == STUB_OK
    assert host.flash.read(0x1000, 0x2000) == b"\xff" * 0x1000 + b"\x00" * 0x1000


def test_spi_user_commands_reach_the_flash_chip() -> None:
    host = Host()
    assert host.spi_command(0x9F, 24) == 0x1740EF  # Winbond, 8 MB
    assert host.spi_command(0x5A, 32, addr=0) == 0x50444653  # "SFDP"
    assert host.spi_command(0x5A, 8, addr=0x10) != 0x20  # not an XMC part
    assert host.spi_command(0x05, 8) == 0  # status: idle, not write-enabled
    host.spi_command(0x06, 0 + 1)  # WREN
    assert host.spi_command(0x05, 8) & 0x02
    host.spi_command(0x66, 1)
    host.spi_command(0x99, 1)  # reset clears the write enable latch
    assert host.spi_command(0x05, 8) == 0


def test_change_baudrate_answers_at_old_rate_and_reset_restores() -> None:
    host = Host()
    assert host.cmd(Op.CHANGE_BAUDRATE, struct.pack("<II", 921600, 0)).data == ROM_OK
    assert host.loader.baud == 921600
    host.loader.reset()
    assert host.loader.baud == ROM_BAUD


def test_reset_leaves_the_stub() -> None:
    host = Host()
    host.start_stub()
    host.loader.reset()
    assert not host.loader.stub_running
    assert host.send(Op.SYNC, SYNC_PAYLOAD)[0].value != 0


def test_flash_end_hands_reboot_or_app_start_to_the_host() -> None:
    host = Host()
    host.start_stub()
    host.cmd(Op.FLASH_BEGIN, struct.pack("<IIIII", 0, 0, 0x4000, 0, 0))
    assert host.cmd(Op.FLASH_END, struct.pack("<I", 0)).data == STUB_OK  # reboot
    assert host.loader.take_event() is LoaderEvent.REBOOT
    assert not host.loader.active
    assert host.loader.take_event() is None

    host = Host()
    host.cmd(Op.FLASH_BEGIN, struct.pack("<IIIII", 0, 0, 0x400, 0, 0))
    host.cmd(Op.FLASH_END, struct.pack("<I", 1))  # ROM: run user code
    assert host.loader.take_event() is LoaderEvent.RUN_APP
    assert host.loader.receive(encode_command(Op.SYNC, SYNC_PAYLOAD)) == b""


def test_hard_reset_preamble_is_reported_and_still_answered() -> None:
    host = Host()
    assert host.write_reg(0x6000812C, 0, 1).data == ROM_OK  # esptool's ESP32S3ROM.hard_reset
    assert host.loader.take_event() is LoaderEvent.HARD_RESET
    assert host.loader.active
    c3 = Host(ESP32C3)
    c3.write_reg(0x6000812C, 0, 1)
    assert c3.loader.take_event() is None  # no such preamble on the C3


def test_watchdog_reset_reboots() -> None:
    host = Host()
    host.write_reg(0x600080B0, 0x50D83AA1)  # esptool's watchdog_reset: unlock, arm...
    host.write_reg(0x6000809C, 2000)
    assert host.loader.take_event() is None
    host.write_reg(0x60008098, 1 << 31 | 5 << 28 | 1 << 8 | 2)  # ...and enable
    assert host.loader.take_event() is LoaderEvent.REBOOT
    assert not host.loader.active


def test_debug_log_names_each_command() -> None:
    lines: list[str] = []
    chip = ESP32S3
    loader = RomLoader(chip, SparseFlash(), EfuseBank(chip), debug=lines.append)
    loader.reset()
    loader.receive(encode_command(Op.READ_REG, struct.pack("<I", 0x60007044)))
    assert any("READ_REG 0x60007044" in line for line in lines)


def test_ram_program_that_is_not_the_stub_runs_as_an_app() -> None:
    host = Host()
    host.cmd(Op.MEM_BEGIN, struct.pack("<IIII", 4, 1, 0x1800, 0x40380000))
    host.data(Op.MEM_DATA, b"\x00" * 4, 0)
    answer = host.frames(encode_command(Op.MEM_END, struct.pack("<II", 0, 0x40380004)))
    assert [parse_response(f).data for f in answer] == [ROM_OK]  # no OHAI
    assert host.loader.take_event() is LoaderEvent.RUN_APP


def test_secure_download_mode_allows_only_flashing() -> None:
    host = Host()
    host.efuses.burn("ENABLE_SECURITY_DOWNLOAD", 1)
    host.loader.reset()
    assert host.loader.secure_download_mode
    flags = struct.unpack_from("<I", host.cmd(Op.GET_SECURITY_INFO).data)[0]
    assert flags & 1 << 2
    refused = host.cmd(Op.READ_REG, struct.pack("<I", EFUSE + 0x44))
    assert (refused.op, refused.data[:2]) == (0, b"\x01\x05")
    assert host.cmd(Op.SPI_FLASH_MD5, struct.pack("<IIII", 0, 16, 0, 0)).data[:2] == b"\x01\x05"
    assert host.cmd(Op.MEM_BEGIN, struct.pack("<IIII", 4, 1, 0x1800, 0)).data[:2] == b"\x01\x05"
    params = struct.pack("<IIIIII", 0, 16 * MIB, 0x10000, 0x1000, 0x100, 0xFFFF)
    assert host.cmd(Op.SPI_SET_PARAMS, params).data == ROM_OK
    assert rom_flash_begin(host, 0x10000, 0x400).data == ROM_OK
    assert host.data(Op.FLASH_DATA, b"\x5a" * 0x400, 0).data == ROM_OK
    assert host.flash.read(0x10000, 4) == b"\x5a" * 4


def test_download_mode_disabled_takes_effect_at_the_next_reset() -> None:
    host = Host()
    host.efuses.burn("DIS_DOWNLOAD_MODE", 1)
    assert host.cmd(Op.GET_SECURITY_INFO).data[-4:] == ROM_OK  # still latched as before
    banner = host.loader.reset()
    assert b"boot:0x0 (DOWNLOAD(USB/UART0))" in banner  # the straps still say download
    assert b"waiting for download" not in banner
    assert not host.loader.active
    assert host.loader.receive(encode_command(Op.SYNC, SYNC_PAYLOAD)) == b""


def test_c3_profile() -> None:
    host = Host(ESP32C3, mac="24:0a:c4:00:00:c3")
    assert b"esp32c3" in host.banner
    info = host.cmd(Op.GET_SECURITY_INFO)
    assert struct.unpack_from("<I", info.data, 12)[0] == 5
    assert host.spi_command(0x9F, 24) == 0x1640EF  # 4 MB
    mac = struct.pack(">II", host.read_reg(0x60008848), host.read_reg(0x60008844))[2:]
    assert mac.hex(":") == "24:0a:c4:00:00:c3"


# ---- robustness -----------------------------------------------------------------------

_shared = Host()


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_receive_never_raises_on_arbitrary_bytes(data: bytes) -> None:
    _shared.loader.receive(data)
    _shared.loader.take_event()
    if not _shared.loader.active:
        _shared.loader.reset()


ops = st.one_of(st.sampled_from(list(Op)), st.integers(0, 255))


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(ops, st.binary(max_size=80)), max_size=6), st.booleans())
def test_receive_never_raises_on_framed_garbage_commands(
    commands: list[tuple[int, bytes]], stub: bool
) -> None:
    host = _shared
    host.loader.reset()
    if stub:
        host.start_stub()
    for op, payload in commands:
        host.loader.receive(encode_command(op, payload))
        host.loader.take_event()
    assert isinstance(host.loader.receive(encode_command(Op.SYNC, SYNC_PAYLOAD)), bytes)


@pytest.mark.parametrize("chip", [ESP32S3, ESP32C3])
def test_profiles_know_esptools_stub_entries(chip: ChipProfile) -> None:
    assert chip.stub_entries  # at least the default stub esptool uploads
