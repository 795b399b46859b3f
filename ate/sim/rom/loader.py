"""The ESP ROM serial loader (and esptool's flasher stub) as a sans-IO state machine.

Owns: `RomLoader` - bytes in from the host, bytes out to send - with the ROM's and the
stub's command sets, SPI user commands, the eFuse controller space, secure download
mode and the reset/boot decisions it hands to its host (`LoaderEvent`). No I/O, no
clocks: whoever hosts it (a TCP server, a pty, the two-faces DUT) moves the bytes and
applies wire time, and, given a line-time model, the chip time it reports after each
`receive` (`take_work`). May import ate.protocol, ate.sim.rom and ate.sim.timing.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum

from ate.protocol.slip import (
    DATA_HEADER,
    SYNC_PAYLOAD,
    Command,
    Op,
    PacketError,
    SlipDecoder,
    encode_response,
    parse_command,
    slip_encode,
)
from ate.sim.rom.chips import ChipProfile
from ate.sim.rom.efuses import EfuseBank
from ate.sim.rom.flash import SECTOR, FlashAbsent, FlashRangeError, SparseFlash
from ate.sim.timing import LineTimes

ROM_BAUD = 115200
POWERON = "0x1 (POWERON)"
SW_SYS_RESET = "0x3 (RTC_SW_SYS_RST)"

_SPI_CMD_USR = 1 << 18
_SPI_USR_COMMAND = 1 << 31
_SPI_USR_ADDR = 1 << 30
_SPI_USR_MISO = 1 << 28
_SPI_USR_MOSI = 1 << 27
_MAX_RAM_REGS = 4096  # remembered WRITE_REG targets outside modelled peripherals
_MAX_BLOCK = 0x10000
_READ_SLOW_BLOCK = 64
_BAUD_RANGE = (300, 10_000_000)

# What the ROM still answers in Secure Download Mode (esp-idf "Secure Download Mode":
# flash writes, SPI setup, baud rate, security info; no memory or register access).
_SECURE_DOWNLOAD_OPS = frozenset(
    {
        Op.SYNC,
        Op.GET_SECURITY_INFO,
        Op.CHANGE_BAUDRATE,
        Op.SPI_ATTACH,
        Op.SPI_SET_PARAMS,
        Op.FLASH_BEGIN,
        Op.FLASH_DATA,
        Op.FLASH_END,
        Op.FLASH_DEFL_BEGIN,
        Op.FLASH_DEFL_DATA,
        Op.FLASH_DEFL_END,
    }
)
_ROM_OPS = frozenset(
    {
        Op.FLASH_BEGIN,
        Op.FLASH_DATA,
        Op.FLASH_END,
        Op.MEM_BEGIN,
        Op.MEM_END,
        Op.MEM_DATA,
        Op.SYNC,
        Op.WRITE_REG,
        Op.READ_REG,
        Op.SPI_SET_PARAMS,
        Op.SPI_ATTACH,
        Op.READ_FLASH_SLOW,
        Op.CHANGE_BAUDRATE,
        Op.FLASH_DEFL_BEGIN,
        Op.FLASH_DEFL_DATA,
        Op.FLASH_DEFL_END,
        Op.SPI_FLASH_MD5,
        Op.GET_SECURITY_INFO,
    }
)
_STUB_OPS = (_ROM_OPS - {Op.READ_FLASH_SLOW}) | {
    Op.ERASE_FLASH,
    Op.ERASE_REGION,
    Op.READ_FLASH,
    Op.RUN_USER_CODE,
}


class Mode(Enum):
    ROM = "rom"  # the ROM's download mode
    STUB = "stub"  # esptool's flasher stub is running
    SILENT = "silent"  # not in download mode: app running, rebooting, or download disabled


class LoaderEvent(Enum):
    """What the loader asks of its host; it goes silent until the host acts."""

    REBOOT = "reboot"  # FLASH_END(reboot) or the RTC watchdog: the chip resets and samples
    # its straps again
    RUN_APP = "run_app"  # ROM FLASH_END(run) or RUN_USER_CODE: the app in flash starts
    HARD_RESET = "hard_reset"  # esptool's hard-reset preamble; on a link without RTS the
    # host treats it as the EN pulse that follows (the loader keeps answering until then)


class Err(Enum):
    """Failure kinds with the ROM's error byte and the stub's status byte."""

    BAD_MESSAGE = (0x05, 0xC0)
    FAILED = (0x06, 0xC4)
    CHECKSUM = (0x07, 0xC1)
    FLASH_WRITE = (0x08, 0xC4)
    FLASH_READ = (0x09, 0xC4)
    READ_LENGTH = (0x0A, 0xC0)
    DEFLATE = (0x0B, 0xC7)
    BAD_BLOCKSIZE = (0x05, 0xC2)
    NOT_IN_FLASH_MODE = (0x06, 0xC6)
    TOO_MUCH_DATA = (0x0B, 0xC9)
    NOT_IMPLEMENTED = (0x05, 0xFF)


class _Refused(Exception):
    def __init__(self, err: Err, why: str) -> None:
        super().__init__(why)
        self.err = err


@dataclass(slots=True)
class _FlashWrite:
    offset: int
    size: int  # bytes the host announced (uncompressed)
    blocks: int
    block_size: int
    compressed: bool
    erased_to: int  # the stub erases ahead of its writes; the ROM up front
    erase_s_per_sector: float = 0.0  # the stub's erase plan for the region, spread
    next_seq: int = 0
    pos: int = 0  # where the next (decompressed) byte goes
    inflater: zlib._Decompress | None = None


@dataclass(slots=True)
class _MemWrite:
    size: int
    blocks: int
    block_size: int
    offset: int
    next_seq: int = 0


@dataclass(slots=True)
class _FlashRead:
    offset: int
    length: int
    block: int
    in_flight: int
    sent: int = 0
    acked: int = 0
    digest: bytes = b""


@dataclass(slots=True)
class LoaderStats:
    """Counters for benches and tests: commands seen, refused, and per opcode."""

    commands: int = 0
    refused: int = 0
    by_op: dict[int, int] = field(default_factory=dict)


class RomLoader:
    """One chip's download-mode face: `receive(bytes) -> bytes`, `reset() -> banner`.

    Starts powered down (silent); the host calls `reset()` to bring it up. After each
    `receive`, the host checks `take_event()` for a reboot, app start or hard reset.
    """

    def __init__(
        self,
        chip: ChipProfile,
        flash: SparseFlash,
        efuses: EfuseBank,
        *,
        debug: Callable[[str], None] | None = None,
    ) -> None:
        self.chip = chip
        self.flash = flash
        self.efuses = efuses
        self.mode = Mode.SILENT
        self.baud = ROM_BAUD
        self.stats = LoaderStats()
        self._debug = debug
        self._slip = SlipDecoder()
        self._event: LoaderEvent | None = None
        self._spi: dict[int, int] = {}
        self._ram: dict[int, int] = {}
        self._flash_limit = chip.rom_flash_size
        self._write: _FlashWrite | None = None
        self._mem: _MemWrite | None = None
        self._read: _FlashRead | None = None
        self._stub_loaded = False  # an upload to RAM that ended at a stub entry point
        # The line-time model: chip time before the answer (busy) and after it (the stub
        # acks a data block, then writes it while the next one is on the wire).
        self.timing: LineTimes | None = None
        self._busy_s = 0.0
        self._after_s = 0.0
        self.generation = 0  # bumped by every reset and power-off: pending answers die

    # ---- host interface -----------------------------------------------------------

    @property
    def stub_running(self) -> bool:
        return self.mode is Mode.STUB

    @property
    def active(self) -> bool:
        """Whether the loader answers at all (download mode, ROM or stub)."""
        return self.mode is not Mode.SILENT

    @property
    def secure_download_mode(self) -> bool:
        return self.mode is Mode.ROM and self.efuses.secure_download_mode

    def reset(self, *, download: bool = True, cause: str = POWERON) -> bytes:
        """A chip reset: the straps select download mode (`download`) or a normal boot.

        Returns the ROM's boot text. Leaves stub mode, forgets half-received frames and
        transfers, and drops the baud rate back to 115200. With DIS_DOWNLOAD_MODE burnt
        the loader stays silent even with the straps in download mode.
        """
        self._slip.reset()
        self.generation += 1
        self._busy_s = self._after_s = 0.0
        self._event = None
        self._spi.clear()
        self._ram.clear()
        self._write = self._mem = self._read = None
        self._stub_loaded = False
        self._flash_limit = self.chip.rom_flash_size
        self.baud = ROM_BAUD
        self.efuses.power_on()
        enabled = download and not self.efuses.download_mode_disabled
        self.mode = Mode.ROM if enabled else Mode.SILENT
        self._log(f"reset ({cause}): {'download mode' if enabled else 'silent'}")
        return self.chip.banner(download=download, reset_cause=cause, waiting=enabled)

    def power_off(self) -> None:
        self.mode = Mode.SILENT
        self._slip.reset()
        self.generation += 1
        self._busy_s = self._after_s = 0.0

    def take_work(self) -> tuple[float, float]:
        """Chip time the last `receive`s cost under the line-time model, once: seconds
        before the answers may leave, and seconds of work after them (the stub's writes)
        before the chip takes the next command. (0, 0) without a model."""
        work = (self._busy_s, self._after_s)
        self._busy_s = self._after_s = 0.0
        return work

    def take_event(self) -> LoaderEvent | None:
        """The pending request for the host, once."""
        event, self._event = self._event, None
        return event

    def receive(self, data: bytes) -> bytes:
        """Bytes from the host in, the bytes the chip sends back out."""
        if self.mode is Mode.SILENT:
            return b""
        out = bytearray()
        for frame in self._slip.feed(data):
            if not self.active:  # a command before this one rebooted or started the app
                break
            if self._read is not None:
                if len(frame) == 4:
                    out += self._read_ack(frame)
                    continue
                self._read = None  # a command instead of an ACK: the host gave up
            out += self._frame(frame)
        return bytes(out)

    # ---- framing and dispatch -----------------------------------------------------

    def _log(self, text: str) -> None:
        if self._debug is not None:
            self._debug(f"{self.chip.name} {self.mode.value}: {text}")

    def _status(self, err: Err | None) -> bytes:
        if self.mode is Mode.STUB:
            return b"\x00\x00" if err is None else bytes([err.value[1], 0])
        return b"\x00\x00\x00\x00" if err is None else bytes([1, err.value[0], 0, 0])

    def _ok(self, op: int, data: bytes = b"", value: int = 0) -> bytes:
        return encode_response(op, value, data + self._status(None))

    def _frame(self, frame: bytes) -> bytes:
        try:
            cmd = parse_command(frame)
        except PacketError as exc:
            if len(frame) >= 8 and frame[0] == 0:
                # A request whose length field lies: the ROM answers "invalid message".
                self.stats.refused += 1
                return encode_response(frame[1], 0, self._status(Err.BAD_MESSAGE))
            self._log(f"ignored frame: {exc}")
            return b""
        self.stats.commands += 1
        self.stats.by_op[cmd.op] = self.stats.by_op.get(cmd.op, 0) + 1
        if self._debug is not None:
            self._log(_describe(cmd))
        allowed = _STUB_OPS if self.mode is Mode.STUB else _ROM_OPS
        if self.secure_download_mode:
            allowed = _SECURE_DOWNLOAD_OPS
        if cmd.op not in allowed:
            self.stats.refused += 1
            self._log(f"op {cmd.op:#04x} refused")
            if self.mode is Mode.STUB:
                return encode_response(cmd.op, 0, self._status(Err.NOT_IMPLEMENTED))
            # The ROM answers a command it does not take under another opcode with status
            # 01 05; esptool raises UnsupportedCommandError only for that shape.
            return encode_response(0, 0, self._status(Err.BAD_MESSAGE))
        handler = self._handlers[Op(cmd.op)]
        try:
            return handler(self, cmd)
        except _Refused as refused:
            self.stats.refused += 1
            self._log(f"op {cmd.op:#04x} failed: {refused}")
            return encode_response(cmd.op, 0, self._status(refused.err))
        except FlashAbsent as absent:  # the SPI operation times out on an empty bus
            self.stats.refused += 1
            self._log(f"op {cmd.op:#04x} failed: {absent}")
            return encode_response(cmd.op, 0, self._status(Err.FLASH_WRITE))

    # ---- handlers -----------------------------------------------------------------

    def _sync(self, cmd: Command) -> bytes:
        if cmd.payload != SYNC_PAYLOAD:
            raise _Refused(Err.BAD_MESSAGE, "not the sync pattern")
        value = 0 if self.mode is Mode.STUB else self.chip.sync_value
        return self._ok(Op.SYNC, value=value) * 8  # the ROM answers a SYNC eight times

    def _security_info(self, cmd: Command) -> bytes:
        return self._ok(Op.GET_SECURITY_INFO, self.efuses.security_info().pack())

    def _read_reg(self, cmd: Command) -> bytes:
        (addr,) = _unpack("<I", cmd.payload)
        return self._ok(Op.READ_REG, value=self.read_reg(addr))

    def _write_reg(self, cmd: Command) -> bytes:
        if not cmd.payload or len(cmd.payload) % 16:
            raise _Refused(Err.BAD_MESSAGE, f"{len(cmd.payload)} bytes is not n x 16")
        for addr, value, mask, delay_us in struct.iter_unpack("<IIII", cmd.payload):
            self.write_reg(addr, value, mask)
            if self.timing is not None:  # the ROM waits as asked after each write
                self._busy_s += delay_us / 1e6
        return self._ok(Op.WRITE_REG)

    def _spi_attach(self, cmd: Command) -> bytes:
        if len(cmd.payload) not in (4, 8):
            raise _Refused(Err.BAD_MESSAGE, "SPI_ATTACH takes 4 or 8 bytes")
        return self._ok(Op.SPI_ATTACH)

    def _spi_set_params(self, cmd: Command) -> bytes:
        _id, total, _block, sector, page, _mask = _unpack("<IIIIII", cmd.payload)
        if total == 0 or sector == 0 or page == 0:
            raise _Refused(Err.BAD_MESSAGE, "zero flash geometry")
        self._flash_limit = total
        return self._ok(Op.SPI_SET_PARAMS)

    def _change_baudrate(self, cmd: Command) -> bytes:
        new, _old = _unpack("<II", cmd.payload)
        if not _BAUD_RANGE[0] <= new <= _BAUD_RANGE[1]:
            raise _Refused(Err.BAD_MESSAGE, f"baud {new}")
        reply = self._ok(Op.CHANGE_BAUDRATE)  # sent at the old rate; the host knows
        self.baud = new
        return reply

    def _limit(self) -> int:
        # The ROM only knows what SPI_SET_PARAMS told it (2 MB before); the stub probes
        # the chip. Neither can write past the chip itself.
        return (
            self.flash.size if self.mode is Mode.STUB else min(self._flash_limit, self.flash.size)
        )

    def _flash_begin(self, cmd: Command, compressed: bool) -> bytes:
        if len(cmd.payload) not in (16, 20):
            raise _Refused(Err.BAD_MESSAGE, f"{len(cmd.payload)} byte FLASH_BEGIN")
        size, blocks, block_size, offset = struct.unpack_from("<IIII", cmd.payload)
        if blocks and not 0 < block_size <= _MAX_BLOCK:
            raise _Refused(Err.BAD_BLOCKSIZE, f"block size {block_size:#x}")
        stub = self.mode is Mode.STUB
        if offset + size > self._limit():
            raise _Refused(Err.FAILED, f"{size:#x} bytes at {offset:#x} past the flash end")
        if stub:
            erased_to = offset - offset % SECTOR  # the stub erases as it goes
        else:
            if offset % SECTOR:
                raise _Refused(Err.FAILED, f"offset {offset:#x} is not sector aligned")
            end = min(_round_up(offset + size, SECTOR), self.flash.size)
            self.flash.erase(offset, end - offset)
            erased_to = end
            if self.timing is not None:  # the ROM erases the region before it answers
                self._busy_s += self.timing.erase_s(offset, end - offset)
        per_sector = 0.0
        if stub and self.timing is not None and size:
            # The stub erases the announced region ahead of the data with 64 KiB blocks
            # where it can; each sector costs its share of that plan when first needed.
            start = offset - offset % SECTOR
            end = min(_round_up(offset + size, SECTOR), self.flash.size)
            if end > start:
                per_sector = self.timing.erase_s(start, end - start) / ((end - start) // SECTOR)
        self._write = _FlashWrite(
            offset=offset,
            size=size,
            blocks=blocks,
            block_size=block_size,
            compressed=compressed,
            erased_to=erased_to,
            erase_s_per_sector=per_sector,
            pos=offset,
            inflater=zlib.decompressobj() if compressed else None,
        )
        return self._ok(cmd.op)

    def _flash_data(self, cmd: Command, compressed: bool) -> bytes:
        w = self._write
        if w is None or w.compressed != compressed:
            raise _Refused(Err.NOT_IN_FLASH_MODE, "no flash write begun")
        block = _data_block(cmd)
        if block.seq != w.next_seq:
            raise _Refused(Err.BAD_MESSAGE, f"seq {block.seq}, expected {w.next_seq}")
        if w.next_seq >= w.blocks or len(block.data) > w.block_size:
            raise _Refused(Err.TOO_MUCH_DATA, f"block {block.seq} of {w.blocks}")
        if compressed:
            assert w.inflater is not None
            room = w.offset + w.size - w.pos
            try:
                data = w.inflater.decompress(block.data, room + 1)
            except zlib.error as exc:
                raise _Refused(Err.DEFLATE, str(exc)) from None
            if len(data) > room:
                raise _Refused(Err.TOO_MUCH_DATA, "inflates past the announced size")
            self._program(w, w.pos, data)
            w.pos += len(data)
        else:
            # esptool pads the last block with 0xFF up to the block size; the loader
            # writes (and the stub erases ahead for) only the bytes FLASH_BEGIN announced,
            # so the padding neither runs past the flash end nor erases a neighbour.
            addr = w.offset + block.seq * w.block_size
            self._program(w, addr, block.data[: max(0, w.offset + w.size - addr)])
        w.next_seq += 1
        return self._ok(cmd.op)

    def _program(self, w: _FlashWrite, addr: int, data: bytes) -> None:
        end = addr + len(data)
        if end > self._limit():
            raise _Refused(Err.FLASH_WRITE, f"write to {end:#x} past the flash end")
        stub = self.mode is Mode.STUB
        if stub and w.erased_to < end:  # it erases ahead of the data
            new_end = min(_round_up(end, SECTOR), self.flash.size)
            self.flash.erase(w.erased_to, new_end - w.erased_to)
            self._after_s += w.erase_s_per_sector * ((new_end - w.erased_to) // SECTOR)
            w.erased_to = new_end
        self.flash.program(addr, data)
        if self.timing is not None:
            cost = self.timing.program_s(addr, len(data))
            if stub:
                self._after_s += cost
            else:
                self._busy_s += cost

    def _flash_end(self, cmd: Command) -> bytes:
        (stay,) = _unpack("<I", cmd.payload)
        reply = self._ok(cmd.op)
        self._write = None
        if stay == 0:
            self._go_silent(LoaderEvent.REBOOT)
        elif self.mode is Mode.ROM:
            self._go_silent(LoaderEvent.RUN_APP)  # the ROM's "run user code"
        return reply

    def _md5(self, cmd: Command) -> bytes:
        addr, size, _, _ = _unpack("<IIII", cmd.payload)
        try:
            digest = self.flash.md5(addr, size)
        except FlashRangeError as exc:
            raise _Refused(Err.FLASH_READ, str(exc)) from None
        # The ROM answers in hex text, the stub in raw bytes.
        return self._ok(
            Op.SPI_FLASH_MD5, digest if self.mode is Mode.STUB else digest.hex().encode()
        )

    def _read_flash_slow(self, cmd: Command) -> bytes:
        hook = self.chip.stub_read_hook
        if self._stub_loaded and hook is not None and self.read_reg(hook) in self.chip.stub_entries:
            return self._start_stub()  # esptool's Secure Boot workaround jumped to the stub
        offset, length = _unpack("<II", cmd.payload)
        if length > _READ_SLOW_BLOCK:
            raise _Refused(Err.READ_LENGTH, f"{length} bytes")
        try:
            data = self.flash.read(offset, length)
        except FlashRangeError as exc:
            raise _Refused(Err.FLASH_READ, str(exc)) from None
        # The ROM always sends its whole 64-byte buffer.
        return self._ok(Op.READ_FLASH_SLOW, data.ljust(_READ_SLOW_BLOCK, b"\xff"))

    def _mem_begin(self, cmd: Command) -> bytes:
        size, blocks, block_size, offset = _unpack("<IIII", cmd.payload)
        if blocks and not 0 < block_size <= _MAX_BLOCK:
            raise _Refused(Err.BAD_BLOCKSIZE, f"block size {block_size:#x}")
        self._mem = _MemWrite(size=size, blocks=blocks, block_size=block_size, offset=offset)
        return self._ok(Op.MEM_BEGIN)

    def _mem_data(self, cmd: Command) -> bytes:
        m = self._mem
        if m is None:
            raise _Refused(Err.FAILED, "no RAM download begun")
        block = _data_block(cmd)
        if block.seq != m.next_seq or m.next_seq >= m.blocks or len(block.data) > m.block_size:
            raise _Refused(Err.BAD_MESSAGE, f"block {block.seq} of {m.blocks}")
        m.next_seq += 1  # the blob itself is not kept: the simulator plays the stub
        return self._ok(Op.MEM_DATA)

    def _mem_end(self, cmd: Command) -> bytes:
        no_entry, entry = _unpack("<II", cmd.payload)
        reply = self._ok(Op.MEM_END)
        self._mem = None
        if entry in self.chip.stub_entries:
            self._stub_loaded = True
            if no_entry == 0:
                return reply + self._start_stub()
        elif no_entry == 1:
            # Uploaded but not started (esptool's ESP32-S3 Secure Boot workaround finishes
            # with entry 0, then jumps to the stub through a ROM read hook).
            self._stub_loaded = True
        elif no_entry == 0:
            self._go_silent(LoaderEvent.RUN_APP)  # some other RAM program: not modelled
        return reply

    def _start_stub(self) -> bytes:
        self.mode = Mode.STUB
        self._write = self._read = None
        self._log("stub running")
        return slip_encode(b"OHAI")

    def _erase_flash(self, cmd: Command) -> bytes:
        self.flash.erase_all()
        if self.timing is not None:
            self._busy_s += self.timing.erase_s(0, self.flash.size)
        return self._ok(Op.ERASE_FLASH)

    def _erase_region(self, cmd: Command) -> bytes:
        offset, size = _unpack("<II", cmd.payload)
        try:
            self.flash.erase(offset, size)
        except ValueError as exc:  # unaligned or past the end
            raise _Refused(Err.BAD_MESSAGE, str(exc)) from None
        if self.timing is not None:
            self._busy_s += self.timing.erase_s(offset, size)
        return self._ok(Op.ERASE_REGION)

    def _read_flash(self, cmd: Command) -> bytes:
        offset, length, block, in_flight = _unpack("<IIII", cmd.payload)
        if not 0 < block <= _MAX_BLOCK or in_flight == 0:
            raise _Refused(Err.BAD_BLOCKSIZE, f"block {block:#x}, {in_flight} in flight")
        try:
            digest = self.flash.md5(offset, length)
        except FlashRangeError as exc:
            raise _Refused(Err.FLASH_READ, str(exc)) from None
        self._read = _FlashRead(offset, length, block, in_flight, digest=digest)
        return self._ok(Op.READ_FLASH) + self._read_send()

    def _read_send(self) -> bytes:
        r = self._read
        assert r is not None
        out = bytearray()
        while r.sent < r.length and r.sent - r.acked < r.in_flight * r.block:
            n = min(r.block, r.length - r.sent)
            out += slip_encode(self.flash.read(r.offset + r.sent, n))
            r.sent += n
        if r.acked >= r.length:
            out += slip_encode(r.digest)
            self._read = None
        return bytes(out)

    def _read_ack(self, frame: bytes) -> bytes:
        r = self._read
        assert r is not None
        (acked,) = struct.unpack("<I", frame)
        r.acked = max(r.acked, min(acked, r.sent))
        return self._read_send()

    def _run_user_code(self, cmd: Command) -> bytes:
        self._go_silent(LoaderEvent.RUN_APP)
        return b""  # the stub jumps without answering

    def _go_silent(self, event: LoaderEvent) -> None:
        self._log(f"-> {event.value}")
        self.mode = Mode.SILENT
        self._event = event
        self._write = self._mem = self._read = None

    _handlers: dict[Op, Callable[[RomLoader, Command], bytes]] = {
        Op.SYNC: _sync,
        Op.GET_SECURITY_INFO: _security_info,
        Op.READ_REG: _read_reg,
        Op.WRITE_REG: _write_reg,
        Op.SPI_ATTACH: _spi_attach,
        Op.SPI_SET_PARAMS: _spi_set_params,
        Op.CHANGE_BAUDRATE: _change_baudrate,
        Op.FLASH_BEGIN: lambda self, cmd: self._flash_begin(cmd, compressed=False),
        Op.FLASH_DATA: lambda self, cmd: self._flash_data(cmd, compressed=False),
        Op.FLASH_END: _flash_end,
        Op.FLASH_DEFL_BEGIN: lambda self, cmd: self._flash_begin(cmd, compressed=True),
        Op.FLASH_DEFL_DATA: lambda self, cmd: self._flash_data(cmd, compressed=True),
        Op.FLASH_DEFL_END: _flash_end,
        Op.SPI_FLASH_MD5: _md5,
        Op.READ_FLASH_SLOW: _read_flash_slow,
        Op.MEM_BEGIN: _mem_begin,
        Op.MEM_DATA: _mem_data,
        Op.MEM_END: _mem_end,
        Op.ERASE_FLASH: _erase_flash,
        Op.ERASE_REGION: _erase_region,
        Op.READ_FLASH: _read_flash,
        Op.RUN_USER_CODE: _run_user_code,
    }

    # ---- the address space --------------------------------------------------------

    def read_reg(self, addr: int) -> int:
        """What READ_REG answers: eFuse controller, SPI controller, else remembered RAM."""
        if self.efuses.contains(addr):
            return self.efuses.read_reg(addr)
        spi = self.chip.spi
        if spi.base <= addr < spi.end:
            return self._spi.get(addr - spi.base, 0)
        return self._ram.get(addr, 0)

    def write_reg(self, addr: int, value: int, mask: int = 0xFFFFFFFF) -> None:
        """What one WRITE_REG entry does: read-modify-write under `mask`."""
        value &= 0xFFFFFFFF
        mask &= 0xFFFFFFFF
        if self.efuses.contains(addr):
            if self.timing is not None and self.programs_efuses(addr, value, mask):
                self._busy_s += self.timing.efuse_program_s  # the CMD bit clears after it
            self.efuses.write_reg(addr, value, mask)
            return
        new = (self.read_reg(addr) & ~mask | value & mask) & 0xFFFFFFFF
        spi = self.chip.spi
        if spi.base <= addr < spi.end:
            self._spi[addr - spi.base] = new
            if addr - spi.base == spi.cmd and new & _SPI_CMD_USR:
                self._spi_user_command()
            return
        if addr == self.chip.hard_reset_reg and self.mode is not Mode.SILENT:
            self._event = LoaderEvent.HARD_RESET
        if addr == self.chip.rtc_wdt_config_reg and new & 1 << 31:
            # The RTC watchdog, enabled, resets the chip: esptool's watchdog-reset.
            self._go_silent(LoaderEvent.REBOOT)
        if addr in self._ram or len(self._ram) < _MAX_RAM_REGS:
            self._ram[addr] = new

    def programs_efuses(self, addr: int, value: int, mask: int = 0xFFFFFFFF) -> bool:
        """Whether this register write starts the eFuse controller's program command."""
        regs = self.efuses.controller.REGS
        if not self.efuses.contains(addr) or addr != regs.EFUSE_CMD_REG:
            return False
        new = self.read_reg(addr) & ~mask | value & mask
        return bool(new & regs.EFUSE_PGM_CMD) and (
            self.read_reg(regs.EFUSE_CONF_REG) == regs.EFUSE_WRITE_OP_CODE
        )

    def _spi_user_command(self) -> None:
        spi = self.chip.spi
        regs = self._spi
        usr = regs.get(spi.usr, 0)
        opcode = regs.get(spi.usr2, 0) & 0xFFFF
        read_bits = regs.get(spi.miso_dlen, 0) + 1 if usr & _SPI_USR_MISO else 0
        write_bits = regs.get(spi.mosi_dlen, 0) + 1 if usr & _SPI_USR_MOSI else 0
        address = regs.get(spi.addr, 0) if usr & _SPI_USR_ADDR else None
        words = [regs.get(spi.w0 + 4 * i, 0) for i in range(16)]
        mosi = struct.pack("<16I", *words)[: (write_bits + 7) // 8]
        if usr & _SPI_USR_COMMAND:
            answer = self.flash.command(opcode & 0xFF, address, mosi, read_bits)
            if read_bits:
                mask = (1 << min(read_bits, 32)) - 1
                regs[spi.w0] = regs.get(spi.w0, 0) & ~mask | answer & mask
        regs[spi.cmd] = regs.get(spi.cmd, 0) & ~_SPI_CMD_USR  # done at once: the bit clears


def _describe(cmd: Command) -> str:
    try:
        name = Op(cmd.op).name
    except ValueError:
        name = f"op {cmd.op:#04x}"
    if cmd.op in (Op.FLASH_DATA, Op.FLASH_DEFL_DATA, Op.MEM_DATA) and len(cmd.payload) >= 16:
        size, seq = struct.unpack_from("<II", cmd.payload)
        return f"{name} seq={seq} len={size}"
    if cmd.op in (Op.READ_REG, Op.WRITE_REG):
        words = struct.iter_unpack("<I", cmd.payload[: len(cmd.payload) // 4 * 4])
        return f"{name} " + " ".join(f"{w:#010x}" for (w,) in words)
    return f"{name} {cmd.payload[:24].hex()}"


def _round_up(value: int, unit: int) -> int:
    return -(-value // unit) * unit


def _unpack(fmt: str, payload: bytes) -> tuple[int, ...]:
    size = struct.calcsize(fmt)
    if len(payload) < size:
        raise _Refused(Err.BAD_MESSAGE, f"{len(payload)} bytes, need {size}")
    return struct.unpack_from(fmt, payload)


def _data_block(cmd: Command) -> _Block:
    if len(cmd.payload) < DATA_HEADER.size:
        raise _Refused(Err.BAD_MESSAGE, "no block header")
    block = cmd.data_block()
    if block.size != len(block.data):
        raise _Refused(Err.BAD_MESSAGE, f"block says {block.size} bytes, {len(block.data)} came")
    if not cmd.checksum_ok():
        raise _Refused(Err.CHECKSUM, f"checksum {cmd.value:#x}")
    return _Block(block.seq, block.data)


@dataclass(frozen=True, slots=True)
class _Block:
    seq: int
    data: bytes
