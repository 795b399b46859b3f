"""A sparse NOR flash chip for the simulated ROM: sectors, AND-programming, erase, ids, file.

Owns: `SparseFlash` (4 KiB sectors in a dict, erased = 0xFF, program = old AND new,
JEDEC id, SFDP table, status registers, and a chip that is not attached at all) and its
compact file format (only written sectors). Imports the standard library and
ate.config.files (to read its file).
"""

from __future__ import annotations

import hashlib
import os
import struct
from pathlib import Path

from ate.config.files import FileRefused, MiB, read_file

SECTOR = 0x1000
BLOCK = 0x10000
WINBOND = 0xEF

_ERASED_SECTOR = b"\xff" * SECTOR
_FILE_MAGIC = b"ATEFLSH1"
_FILE_HEADER = struct.Struct("<8sIII")  # magic, size, jedec id, sector count
_FILE_MAX = 64 * MiB  # the largest ESP flash, 32 MiB, with every sector written and indexed
_SECTOR_INDEX = struct.Struct("<I")


class FlashRangeError(ValueError):
    """An access past the end of the chip (or a negative offset)."""


class FlashAbsent(Exception):
    """A program or erase on a board whose SPI flash is not attached (nothing answers)."""


def _sfdp_table(size: int, manufacturer: int) -> bytes:
    """A small JESD216 table: signature, the basic parameter header, a vendor header at
    0x10 (esptool reads byte 0x10 as the manufacturer to spot XMC parts) and the density."""
    table = bytearray(b"\xff" * 0x100)
    table[0x00:0x08] = b"SFDP" + bytes([0x06, 0x01, 0x01, 0xFF])  # rev 1.6, 2 headers
    table[0x08:0x10] = bytes([0x00, 0x06, 0x01, 0x10, 0x80, 0x00, 0x00, 0xFF])  # basic, @0x80
    table[0x10:0x18] = bytes([manufacturer, 0x00, 0x01, 0x03, 0xD0, 0x00, 0x00, 0xFF])
    table[0x80:0x84] = bytes([0xE5, 0x20, 0xF1, 0xFF])  # 4 KiB erase (opcode 0x20)
    table[0x84:0x88] = struct.pack("<I", size * 8 - 1)  # density in bits, minus one
    return bytes(table)


class SparseFlash:
    """NOR flash of `size` bytes; only sectors that hold data take memory."""

    def __init__(self, size: int = 8 * 1024 * 1024, *, jedec_id: int | None = None) -> None:
        if size < SECTOR or size & (size - 1):
            raise ValueError(f"flash size {size:#x} is not a power of two of at least 4 KiB")
        self.size = size
        # RDID answers manufacturer, memory type, capacity (2^n bytes), in W0 byte order.
        self.jedec_id = (
            jedec_id
            if jedec_id is not None
            else (size.bit_length() - 1) << 16 | 0x40 << 8 | WINBOND
        )
        self.status = 0  # status registers 1-3, bits 0-23 (WEL is bit 1)
        self.dirty = False  # changed since the last save()
        # False: the board's flash chip is missing or its bus open. The bus floats high,
        # so RDID reads FFFFFF (esptool: flash size unknown), every read returns ones, and
        # nothing can be programmed or erased.
        self.attached = True
        self._volatile_write = False
        self._reset_armed = False
        self._powered_down = False
        self._sectors: dict[int, bytearray] = {}
        self._sfdp = _sfdp_table(size, self.jedec_id & 0xFF)

    # ---- access -------------------------------------------------------------------

    def _check(self, offset: int, length: int) -> None:
        if offset < 0 or length < 0 or offset + length > self.size:
            raise FlashRangeError(
                f"{length:#x} bytes at {offset:#x} do not fit in {self.size:#x} bytes of flash"
            )

    def read(self, offset: int, length: int) -> bytes:
        self._check(offset, length)
        if not self.attached:
            return b"\xff" * length
        out = bytearray(b"\xff" * length)
        first, last = offset // SECTOR, (offset + length - 1) // SECTOR
        if len(self._sectors) < last - first:
            indexes = sorted(i for i in self._sectors if first <= i <= last)
        else:
            indexes = [i for i in range(first, last + 1) if i in self._sectors]
        for i in indexes:
            start = max(offset, i * SECTOR)
            end = min(offset + length, (i + 1) * SECTOR)
            out[start - offset : end - offset] = self._sectors[i][
                start - i * SECTOR : end - i * SECTOR
            ]
        return bytes(out)

    def md5(self, offset: int, length: int) -> bytes:
        """MD5 digest of a region (what SPI_FLASH_MD5 computes on the chip)."""
        self._check(offset, length)
        if not self.attached:
            return hashlib.md5(b"\xff" * length).digest()
        digest = hashlib.md5()
        pos = offset
        while pos < offset + length:
            i = pos // SECTOR
            end = min(offset + length, (i + 1) * SECTOR)
            sector = self._sectors.get(i)
            digest.update(
                _ERASED_SECTOR[: end - pos]
                if sector is None
                else sector[pos - i * SECTOR : end - i * SECTOR]
            )
            pos = end
        return digest.digest()

    def program(self, offset: int, data: bytes) -> None:
        """Page program: a bit can only go from 1 to 0, so the result is old AND new."""
        self._check(offset, len(data))
        self._need_chip()
        pos = 0
        while pos < len(data):
            i = (offset + pos) // SECTOR
            start = (offset + pos) - i * SECTOR
            chunk = data[pos : pos + SECTOR - start]
            pos += len(chunk)
            if chunk.count(0xFF) == len(chunk):
                continue  # programming ones changes nothing
            sector = self._sectors.get(i)
            if sector is None:
                sector = self._sectors[i] = bytearray(_ERASED_SECTOR)
            old = int.from_bytes(sector[start : start + len(chunk)], "little")
            new = old & int.from_bytes(chunk, "little")
            sector[start : start + len(chunk)] = new.to_bytes(len(chunk), "little")
            self.dirty = True

    def erase(self, offset: int, length: int) -> None:
        """Erase whole sectors; the region must be sector aligned."""
        if offset % SECTOR or length % SECTOR:
            raise ValueError(f"erase of {length:#x} at {offset:#x} is not sector aligned")
        self._check(offset, length)
        self._need_chip()
        first, count = offset // SECTOR, length // SECTOR
        if count > len(self._sectors):
            doomed = [i for i in self._sectors if first <= i < first + count]
        else:
            doomed = [i for i in range(first, first + count) if i in self._sectors]
        for i in doomed:
            del self._sectors[i]
        if doomed:
            self.dirty = True

    def erase_all(self) -> None:
        self._need_chip()
        if self._sectors:
            self._sectors.clear()
            self.dirty = True

    def _need_chip(self) -> None:
        if not self.attached:
            raise FlashAbsent("no SPI flash answers (the chip is not attached)")

    @property
    def written_sectors(self) -> int:
        """Sectors holding anything but 0xFF (what the file stores)."""
        return len(self._sectors)

    def sfdp(self, address: int, length: int) -> bytes:
        """Bytes of the SFDP table (0xFF past its end, like an unprogrammed area)."""
        return bytes(
            self._sfdp[a] if 0 <= a < len(self._sfdp) else 0xFF
            for a in range(address, address + length)
        )

    def command(self, opcode: int, address: int | None, data: bytes, read_bits: int) -> int:
        """The chip's answer to one SPI command on the bus, as the controller stores it in
        W0 (first byte in the low bits); an idle bus reads ones.

        Covers what esptool sends through the SPI user-command registers: RDID, RDSFDP,
        RDSR/RDSR2/RDSR3, WREN/WRDI/WEVSR, WRSR/WRSR2/WRSR3, reset (66h 99h), power-down.
        """
        nbytes = min((read_bits + 7) // 8, 4)
        ones = (1 << (8 * nbytes)) - 1
        if not self.attached:
            return ones
        if self._powered_down and opcode != 0xAB:
            return ones  # deep power-down: only "release" is heard
        answer = ones
        if opcode == 0x9F:  # RDID
            answer = self.jedec_id
        elif opcode == 0x5A and address is not None:  # RDSFDP (8 dummy cycles, then data)
            answer = int.from_bytes(self.sfdp(address, nbytes), "little")
        elif opcode in (0x05, 0x35, 0x15):  # RDSR, RDSR2, RDSR3
            answer = self.status >> (8 * (0x05, 0x35, 0x15).index(opcode)) & 0xFF
        elif opcode == 0x06:  # WREN
            self.status |= 0x02
        elif opcode == 0x04:  # WRDI
            self.status &= ~0x02
            self._volatile_write = False
        elif opcode == 0x50:  # write enable for volatile status register
            self._volatile_write = True
        elif opcode in (0x01, 0x31, 0x11) and data:  # WRSR (1 or 2 bytes), WRSR2, WRSR3
            if self.status & 0x02 or self._volatile_write:
                shift = 8 * (0x01, 0x31, 0x11).index(opcode)
                width = 16 if opcode == 0x01 and len(data) >= 2 else 8
                value = int.from_bytes(data[: width // 8], "little") << shift
                mask = ((1 << width) - 1) << shift & ~0x03  # WIP and WEL are read-only
                self.status = self.status & ~mask | value & mask
                self.status &= ~0x02
                self._volatile_write = False
        elif opcode == 0x66:  # reset enable
            self._reset_armed = True
            return ones & answer
        elif opcode == 0x99 and self._reset_armed:  # reset: volatile state back to defaults
            self.status &= ~0x02
            self._volatile_write = False
        elif opcode == 0xB9:  # deep power-down
            self._powered_down = True
        elif opcode == 0xAB:  # release from power-down
            self._powered_down = False
        self._reset_armed = False
        return answer & ones

    # ---- file ---------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the written sectors to `path` atomically (a crash keeps the old file)."""
        tmp = path.with_name(path.name + ".tmp")
        kept = sorted(i for i, s in self._sectors.items() if s != _ERASED_SECTOR)
        with open(tmp, "wb") as f:
            f.write(_FILE_HEADER.pack(_FILE_MAGIC, self.size, self.jedec_id, len(kept)))
            for i in kept:
                f.write(_SECTOR_INDEX.pack(i))
                f.write(self._sectors[i])
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        self.dirty = False

    @classmethod
    def load(cls, path: Path) -> SparseFlash:
        """A flash from a file written by save(); ValueError if it is not one."""
        try:
            data = read_file(path, _FILE_MAX)  # a FIFO or a huge file in a state_dir
        except FileRefused as exc:
            raise ValueError(f"{path} {exc}") from None
        if len(data) < _FILE_HEADER.size:
            raise ValueError(f"{path}: too short for a flash image")
        magic, size, jedec_id, count = _FILE_HEADER.unpack_from(data)
        if magic != _FILE_MAGIC:
            raise ValueError(f"{path}: not a simulated flash image")
        if len(data) != _FILE_HEADER.size + count * (_SECTOR_INDEX.size + SECTOR):
            raise ValueError(f"{path}: truncated ({count} sectors announced)")
        flash = cls(size, jedec_id=jedec_id)
        pos = _FILE_HEADER.size
        for _ in range(count):
            (i,) = _SECTOR_INDEX.unpack_from(data, pos)
            pos += _SECTOR_INDEX.size
            if i >= size // SECTOR:
                raise ValueError(f"{path}: sector {i} is past the end of the chip")
            flash._sectors[i] = bytearray(data[pos : pos + SECTOR])
            pos += SECTOR
        return flash
