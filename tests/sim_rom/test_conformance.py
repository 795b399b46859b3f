"""The simulated ROM loader keeps faith with a real ESP32 and its NOR flash.

Every flash command the line sends (connect, write raw and deflated, MD5 verify, read,
erase-region), through the line's own `EspFlasher` and real esptool, against a reference
NOR chip written here from the datasheet rules (erase sets whole 4 KiB sectors to ones;
esptool's write erases the sectors it covers, then programs), at the boundaries: the
first and last sector, unaligned lengths, 16 KiB block edges, writes on both sides of a
partition table, every flash size the chips take, with the stub and with the ROM alone.
A board without its SPI flash answers as such a chip does: id FFFFFF, size unknown.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from rom_helpers import Cli

from ate.drivers.esp import EspFlasher, FlashError
from ate.drivers.esp.errors import ImageTooLarge
from ate.sim.rom.server import RomServer, RomServerThread

MiB = 1024 * 1024
SECTOR = 0x1000
BLOCK = 0x4000  # the stub's FLASH_WRITE_SIZE: a raw write's last block is padded to this
# Flash sizes esptool detects from RDID that each chip's SPI boot supports.
SIZES = {"esp32s3": (1, 2, 4, 8, 16, 32), "esp32c3": (1, 2, 4, 8, 16)}


class NorReference:
    """What a NOR flash behind esptool holds: a write erases the sectors it touches,
    an erase-region erases exactly its (aligned) sectors; erased reads as 0xFF."""

    def __init__(self, size: int) -> None:
        self.data = bytearray(b"\xff" * size)

    def write(self, offset: int, image: bytes) -> None:
        first = offset - offset % SECTOR
        last = -(-(offset + len(image)) // SECTOR) * SECTOR
        self.erase(first, last - first)
        self.data[offset : offset + len(image)] = image

    def erase(self, offset: int, length: int) -> None:
        assert offset % SECTOR == 0 and length % SECTOR == 0
        self.data[offset : offset + length] = b"\xff" * length

    def md5(self, offset: int, length: int) -> str:
        return hashlib.md5(self.data[offset : offset + length]).hexdigest()


def _cases() -> list[tuple[str, int, bool]]:
    return [
        (chip, size * MiB, stub) for chip, sizes in SIZES.items() for size in sizes
        for stub in (True, False)
    ]  # fmt: skip


@pytest.fixture
async def unit_factory() -> AsyncIterator[Callable[..., object]]:
    started: list[RomServer] = []

    async def start(chip: str, **options: object) -> RomServer:
        rom = RomServer(chip, mac="24:0a:c4:aa:bb:cc", seed=7, **options)  # type: ignore[arg-type]
        await rom.start()
        started.append(rom)
        return rom

    yield start
    for rom in started:
        await rom.stop()


def _flasher(rom: RomServer, chip: str, stub: bool, log: list[str]) -> EspFlasher:
    return EspFlasher(str(rom.url), chip=chip, log=log.append, stub=stub, connect_attempts=1)


@pytest.mark.parametrize(("chip", "size", "stub"), _cases(), ids=lambda v: str(v))
async def test_flash_commands_match_a_nor_chip_at_every_boundary(
    unit_factory: Callable[..., object], chip: str, size: int, stub: bool
) -> None:
    rom = await unit_factory(chip, flash_size=size)  # type: ignore[misc]
    rnd = random.Random(f"{chip}-{size}-{stub}")
    ref = NorReference(size)
    log: list[str] = []

    def noise(n: int) -> bytes:
        return rnd.randbytes(n)

    def compressible(n: int) -> bytes:
        return bytes(rnd.choices(b"\x00\x01ESP-image\xff", k=n))

    async with _flasher(rom, chip, stub, log) as f:
        assert f.info.flash_size == size  # detected from RDID, as esptool reads a chip
        # (offset, image) in an order where each write has neighbours on both sides that a
        # padded or over-eager erase would destroy.
        plan: list[tuple[int, bytes, bool]] = [
            (0x9000, noise(0x6000 - 0x123), False),  # data, then a partition table before it
            (0x8000, noise(0xC00), False),  # partition table: short raw write, one block
            (0x0, compressible(0x7FFF), True),  # bootloader ending one byte short of 0x8000
            (size - SECTOR, noise(SECTOR), False),  # the whole last sector, raw
            (size - 2 * SECTOR, compressible(SECTOR + 0x7F1), True),  # into the last sector
            (BLOCK - SECTOR, noise(2 * SECTOR + 1), False),  # across a 16 KiB block edge
            (size // 2, noise(BLOCK + 3), False),  # one byte past a whole block, raw
            (size // 2 + 0x8000, compressible(0x11), True),  # a tiny deflated write
        ]
        for offset, image, compress in plan:
            await f.write([(offset, image)], compress=compress)
            ref.write(offset, image)
        assert await f.md5(0, size) == ref.md5(0, size), "whole-chip MD5 after the writes"
        for offset, image, _ in plan:
            await f.verify(offset, ref.data[offset : offset + len(image)])

        # Reads of unaligned lengths at the ends of the chip.
        assert await f.read(0, 0x123) == ref.data[0:0x123]
        assert await f.read(size - 0x345, 0x345) == ref.data[size - 0x345 :]

        # Erase-region at the edges: the first and last sectors, one in the middle of data.
        for offset, length in ((0, SECTOR), (size - SECTOR, SECTOR), (0xA000, 2 * SECTOR)):
            await f.erase_region(offset, length)
            ref.erase(offset, length)
        assert await f.md5(0, size) == ref.md5(0, size), "whole-chip MD5 after the erases"
        assert await f.read(size - SECTOR - 0x10, 0x20) == ref.data[size - SECTOR - 0x10 :][:0x20]

        # A write that would run past the end is refused before anything is sent.
        with pytest.raises(ImageTooLarge, match="past the end"):
            await f.write([(size - SECTOR, noise(SECTOR + 1))])
        assert await f.md5(size - SECTOR, SECTOR) == ref.md5(size - SECTOR, SECTOR)


async def test_esptool_write_at_the_last_sector_with_padding(
    tmp_path: Path, esptool_cli: Cli
) -> None:
    """The esptool CLI's own path (raw and deflated, stub): the padding of the last
    16 KiB block falls past the end of the chip and must be dropped, not refused."""
    size = 4 * MiB
    image = random.Random(3).randbytes(SECTOR - 0x10)
    path = tmp_path / "tail.bin"
    path.write_bytes(image)
    with RomServerThread("esp32s3", mac="24:0a:c4:12:34:56", seed=1, flash_size=size) as rom:
        for mode in ("-u", "-z"):
            args = ("write-flash", mode, "--flash-size", "keep", hex(size - SECTOR), str(path))
            result = esptool_cli(rom.url, *args)
            assert result.returncode == 0, result.stdout + result.stderr
            check = esptool_cli(rom.url, "verify-flash", hex(size - SECTOR), str(path))
            assert check.returncode == 0, check.stdout + check.stderr


async def test_a_board_without_flash_answers_like_one(
    unit_factory: Callable[..., object], esptool_cli: Cli
) -> None:
    rom = await unit_factory("esp32s3", flash_attached=False)  # type: ignore[misc]
    log: list[str] = []
    async with _flasher(rom, "esp32s3", True, log) as f:
        assert f.info.flash_size is None  # RDID reads FFFFFF: no size to detect
        assert f.info.mac == "24:0a:c4:aa:bb:cc"  # the chip itself answers
        with pytest.raises(FlashError):
            await f.write([(0x10000, b"\x00" * SECTOR)], compress=False)
        assert await f.read(0x10000, 0x40) == b"\xff" * 0x40  # an open bus reads ones


def test_esptool_reports_the_missing_flash(esptool_cli: Cli) -> None:
    with RomServerThread("esp32c3", mac="24:0a:c4:65:43:21", seed=2, flash_attached=False) as rom:
        result = esptool_cli(rom.url, "flash-id", chip="esp32c3")
    text = result.stdout + result.stderr
    assert re.search(r"Device:\s*ffff", text, re.I), text
    assert re.search(r"flash size:\s*unknown", text, re.I), text
