"""The eFuse bank of one simulated unit, backed by espefuse's own EmulateEfuseController.

Owns: factory programming of a fresh unit (MAC, revision, package, unique ID), the
register face the ROM loader exposes (read/write with masks, read-only registers,
program/read commands, Reed-Solomon failures as the hardware reports them), the
security state the ROM latches, the key blocks as the chip's crypto engines reach them
(after RD_DIS hides them from every read: `engine_key_block`), and persistence in
espefuse's `--virt` file format (engine keys in a side file next to it).
May import ate.sim.rom.chips, esptool and espefuse.
"""

from __future__ import annotations

import os
import random
import re
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from espefuse.efuse.bitstring import BitStream
from esptool.util import FatalError

from ate.sim.rom.chips import FLAG_SECURE_DOWNLOAD, ChipProfile

_MAC_RE = re.compile(r"[0-9a-fA-F]{2}([:-]?[0-9a-fA-F]{2}){5}")
_SECURITY_INFO = struct.Struct("<IBBBBBBBBII")
# BLOCK_KEY0..5 are eFuse blocks 4..9 on the S3 and the C3.
_KEY_BLOCK_IDS = range(4, 10)


def parse_mac(mac: str | bytes) -> bytes:
    """Six MAC bytes from "aa:bb:cc:dd:ee:ff" (or '-', or bare hex) or from bytes."""
    if isinstance(mac, bytes):
        if len(mac) != 6:
            raise ValueError(f"a MAC is 6 bytes, not {len(mac)}")
        return mac
    if not _MAC_RE.fullmatch(mac):
        raise ValueError(f"MAC {mac!r} is not six hex bytes")
    return bytes.fromhex(mac.replace(":", "").replace("-", ""))


def default_mac(seed: int) -> bytes:
    """A stable MAC per seed under Espressif's 24:0a:c4 OUI (as the test firmware sim uses)."""
    tail = random.Random(f"mac-{seed}").randbytes(3)
    return bytes([0x24, 0x0A, 0xC4]) + tail


@dataclass(frozen=True, slots=True)
class SecurityInfo:
    """GET_SECURITY_INFO's answer (20 bytes on S3/C3)."""

    flags: int
    crypt_cnt: int
    key_purposes: tuple[int, ...]  # seven bytes; S3/C3 use the first six
    chip_id: int
    api_version: int

    def pack(self) -> bytes:
        purposes = (tuple(self.key_purposes) + (0,) * 7)[:7]
        return _SECURITY_INFO.pack(
            self.flags, self.crypt_cnt, *purposes, self.chip_id, self.api_version
        )


class EfuseBank:
    """One unit's eFuses as the ROM sees them, mapped at the controller's base address.

    `path` persists them in espefuse's `--virt --path-efuse-file` format: a fresh unit is
    programmed at the factory on first use and the file is kept from then on (so `mac` and
    `seed` matter only the first time).
    """

    def __init__(
        self,
        chip: ChipProfile,
        *,
        path: Path | None = None,
        mac: str | bytes | None = None,
        seed: int = 0,
    ) -> None:
        self.chip = chip
        self.path = path
        ctrl: Any = chip.efuse_controller(None)
        self.controller = ctrl
        self._regs: Any = ctrl.REGS
        self.base: int = self._regs.DR_REG_EFUSE_BASE
        self.size: int = self._regs.EFUSE_MEM_SIZE
        self._fields = {f.name: f for f in ctrl.Fields.EFUSES}
        # What each key block held when it was programmed: the chip's AES-XTS and HMAC
        # engines read a key block over an internal path that RD_DIS does not close,
        # while espefuse's emulator zeroes a read-protected block in its memory.
        self._engine_keys: dict[int, bytes] = {}
        self._keys_path = path.with_name(path.name + ".engine-keys") if path else None
        if self._keys_path is not None and self._keys_path.exists():
            raw = self._keys_path.read_bytes()
            for pos in range(0, len(raw) - 32, 33):
                self._engine_keys[raw[pos]] = raw[pos + 1 : pos + 33]
        wanted = parse_mac(mac) if mac is not None else None
        stored = path.stat().st_size if path is not None and path.exists() else 0
        if stored not in (0, self.size):
            raise ValueError(f"{path}: {stored} bytes is not an eFuse file of an {chip.chip_name}")
        if path is not None and stored:
            # Loaded by hand, not through the controller's efuse_file: its loader leaves
            # the file handle open.
            ctrl.mem = BitStream(bytes=path.read_bytes(), length=self.size * 8)
            if wanted is not None and wanted != self.mac:
                raise ValueError(
                    f"{path} holds a unit with MAC {self.mac.hex(':')}, not {wanted.hex(':')}"
                )
        else:
            self._factory_program(wanted if wanted is not None else default_mac(seed), seed)
        if path is not None:
            ctrl.efuse_file = str(path)  # the controller saves after each eFuse read command
            # ...by opening the file "wb" and writing: a kill in between leaves a torn or
            # empty file. This unit's controller saves atomically instead (its own method,
            # nothing patched in espefuse): temp file, fsync, rename.
            ctrl.save_to_file = lambda: _save_atomically(ctrl.mem, path)
            ctrl.save_to_file()
        self._latch()

    # ---- factory ------------------------------------------------------------------

    def _factory_program(self, mac: bytes, seed: int) -> None:
        ctrl = self.controller
        self.burn("MAC", mac)
        ctrl.set_chip_revision(self.chip.revision)
        for name, value in self.chip.factory_fields.items():
            self.burn(name, value)
        self.burn("OPTIONAL_UNIQUE_ID", random.Random(f"uid-{self.chip.name}-{seed}").randbytes(16))

    def burn(self, name: str, value: int | bytes) -> None:
        """OR `value` into a field's read registers, bypassing the controller: what the
        factory (or a test preparing a unit in some state) leaves behind. Bytes fields
        take bytes in espefuse's order (a MAC as printed). Takes effect for the ROM at
        the next reset or eFuse read, like any burn."""
        number = int.from_bytes(value, "big") if isinstance(value, bytes) else value
        f = self._fields.get(name)
        if f is None:
            raise ValueError(f"{self.chip.chip_name} has no eFuse field {name!r}")
        block = self.controller.Blocks.get(self.controller.Blocks.BLOCKS[f.block])
        bit: int = f.word * 32 + f.pos
        if number < 0 or number >> f.bit_len:
            raise ValueError(f"{number:#x} does not fit in {name} ({f.bit_len} bits)")
        number <<= bit % 32
        word = bit // 32
        while number:
            self.controller.update_reg(block.rd_addr + 4 * word, 0xFFFFFFFF, number & 0xFFFFFFFF)
            number >>= 32
            word += 1
        self.controller.save_to_file()

    # ---- what the ROM and espefuse see --------------------------------------------

    def contains(self, addr: int) -> bool:
        return self.base <= addr < self.base + self.size and addr % 4 == 0

    def read_reg(self, addr: int) -> int:
        if not self.contains(addr):
            raise ValueError(f"{addr:#010x} is not an eFuse controller register")
        return int(self.controller.read_reg(addr))

    def _writable(self, addr: int) -> bool:
        offset = addr - self.base
        if offset < self._regs.EFUSE_CHECK_VALUE0_REG - self.base + 12:
            return True  # PGM_DATA0-7 and the three Reed-Solomon check words
        # Configuration registers from CLK up; STATUS, INT_RAW/ST and DATE are read-only.
        read_only = (0x1D0, 0x1D8, 0x1DC, 0x1FC)
        return self._regs.EFUSE_CLK_REG - self.base <= offset and offset not in read_only

    def write_reg(self, addr: int, value: int, mask: int = 0xFFFFFFFF) -> None:
        """A register write as WRITE_REG applies it: read-modify-write under `mask`.

        Writes to read-only registers (the read data, error and status registers) are
        ignored, as on the chip. Writing CMD runs the program or read command at once.
        """
        if not self.contains(addr):
            raise ValueError(f"{addr:#010x} is not an eFuse controller register")
        if not self._writable(addr):
            return
        old = self.read_reg(addr)
        new = (old & ~mask | value & mask) & 0xFFFFFFFF
        regs = self._regs
        if addr != regs.EFUSE_CMD_REG:
            self.controller.write_reg(addr, new)
            return
        conf = self.read_reg(regs.EFUSE_CONF_REG)
        if new & regs.EFUSE_PGM_CMD:
            block = (new >> 2) & 0xF
            if conf != regs.EFUSE_WRITE_OP_CODE or block >= len(self.controller.Blocks.BLOCKS):
                # Without the write opcode the controller programs nothing; the command
                # still completes, so espefuse's idle poll does not hang.
                self.controller.write_reg(addr, 0)
                return
            before = self._block_words(block)
            try:
                self.controller.write_reg(addr, new)
            except FatalError:  # the check words do not match the data written with them
                self._burn_with_coding_error(block)
            else:
                if block != 0 and any(before) and self._block_words(block) != before:
                    # More bits into a Reed-Solomon block that already held data: the
                    # stored check words no longer fit the stored data.
                    self._flag_coding_error(block)
            self._keep_engine_key(block)
            self.controller.save_to_file()  # a burn survives anything that follows
        elif new & regs.EFUSE_READ_CMD:
            # The read command completes at once and clears itself, whatever else was set.
            self.controller.write_reg(addr, regs.EFUSE_READ_CMD)
            if conf == regs.EFUSE_READ_OP_CODE:
                self._latch()
        else:
            self.controller.write_reg(addr, new)

    def _keep_engine_key(self, block_id: int) -> None:
        if block_id not in _KEY_BLOCK_IDS:
            return
        data = b"".join(w.to_bytes(4, "little") for w in self._block_words(block_id))
        if not any(data) or self._engine_keys.get(block_id) == data:
            return
        self._engine_keys[block_id] = data
        if self._keys_path is not None:
            blob = b"".join(bytes([b]) + k for b, k in sorted(self._engine_keys.items()))
            _write_atomically(blob, self._keys_path)

    def engine_key_block(self, index: int) -> bytes:
        """BLOCK_KEY`index` as the chip's crypto engines read it (32 bytes, in the
        block's byte order), read-protected or not."""
        block_id = _KEY_BLOCK_IDS[index]
        kept = self._engine_keys.get(block_id)
        if kept is not None:
            return kept
        return b"".join(w.to_bytes(4, "little") for w in self._block_words(block_id))

    def _block_words(self, block_id: int) -> list[int]:
        blk = self.controller.Blocks.get(self.controller.Blocks.BLOCKS[block_id])
        return [self.read_reg(blk.rd_addr + 4 * i) for i in range(blk.len)]

    def _burn_with_coding_error(self, block_id: int) -> None:
        """Data burnt with check words that do not fit it: the bits go in anyway and the
        controller flags the block (espefuse's emulator raises instead; the chip does not).
        """
        ctrl = self.controller
        blk = ctrl.Blocks.get(ctrl.Blocks.BLOCKS[block_id])
        data = ctrl.read_block(blk.id, wr_regs=True)
        plain = data[12 * 8 :]  # drop the 12 RS bytes, as the emulator's decoder does
        if blk.len < 8:
            plain = plain[(8 - blk.len) * 32 :]
        ctrl.update_block(blk, ctrl.check_wr_protection_area(blk.id, plain))
        ctrl.clean_blocks_wr_regs()
        ctrl.check_rd_protection_area()
        ctrl.write_reg(self._regs.EFUSE_CMD_REG, 0)
        self._flag_coding_error(block_id)

    def _flag_coding_error(self, block_id: int) -> None:
        """Set the block's RS error count (saturated) and fail bit, as the decoder would."""
        ctrl = self.controller
        regs = self._regs
        if hasattr(regs, "BLOCK_ERRORS"):  # ESP32-S3 layout
            reg, num_mask, num_offs, fail_bit = regs.BLOCK_ERRORS[block_id]
        else:  # ESP32-C3 layout
            reg, fail_bit = regs.BLOCK_FAIL_BIT[block_id]
            _, num_mask, num_offs = regs.BLOCK_NUM_ERRORS[block_id]
        bits = 0
        if num_mask is not None:
            bits |= num_mask << num_offs
        if fail_bit is not None:
            bits |= 1 << fail_bit
        ctrl.update_reg(reg, 0xFFFFFFFF, bits)

    def field(self, name: str) -> Any:
        """A field's value by espefuse name (int, bool or bytes), from the read registers."""
        return self.controller.read_field(name, bitstring=False)

    def _odd(self, name: str) -> bool:
        value = self.field(name)
        return bin(int(value)).count("1") % 2 == 1

    def _latch(self) -> None:
        # The ROM acts on eFuse values it has read: at reset and after an eFuse read
        # command (espefuse's comment: "ROM loader checks some efuse registers after each
        # command"), not when bits are merely programmed.
        self._secure_download = bool(self.field(self.chip.efuse_secure_download))
        self._dis_download = bool(self.field(self.chip.efuse_dis_download))

    def power_on(self) -> None:
        """A chip reset reloads the eFuses into the read registers: re-latch them."""
        self._latch()

    @property
    def secure_download_mode(self) -> bool:
        """ENABLE_SECURITY_DOWNLOAD as the ROM last read it."""
        return self._secure_download

    @property
    def download_mode_disabled(self) -> bool:
        """DIS_DOWNLOAD_MODE as the ROM last read it (it acts on it at the next reset)."""
        return self._dis_download

    @property
    def mac(self) -> bytes:
        """The factory MAC, read as esptool does (words 0x44 and 0x48 of the controller)."""
        word0 = self.read_reg(self.base + 0x44)
        word1 = self.read_reg(self.base + 0x48)
        return struct.pack(">II", word1, word0)[2:]

    def security_info(self) -> SecurityInfo:
        flags = 0
        for bit, name in self.chip.security_flags:
            if self._odd(name):
                flags |= bit
        if self._secure_download:
            flags |= FLAG_SECURE_DOWNLOAD
        return SecurityInfo(
            flags=flags,
            crypt_cnt=int(self.field("SPI_BOOT_CRYPT_CNT")),
            key_purposes=tuple(int(self.field(n)) for n in self.chip.key_purpose_fields),
            chip_id=self.chip.chip_id,
            api_version=0,
        )

    def save(self) -> None:
        self.controller.save_to_file()


def _write_atomically(data: bytes, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _save_atomically(mem: Any, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        mem.tofile(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
