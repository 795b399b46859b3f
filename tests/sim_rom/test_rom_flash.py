"""The sparse NOR flash: erased ones, AND programming, sector erase, ids, compact file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ate.sim.rom.flash import SECTOR, FlashRangeError, SparseFlash

SIZE = 64 * SECTOR

ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("program"), st.integers(0, SIZE - 1), st.binary(min_size=1, max_size=9000)
        ),
        st.tuples(st.just("erase"), st.integers(0, 63), st.integers(1, 8)),
    ),
    max_size=12,
)


@settings(max_examples=80, deadline=None)
@given(ops)
def test_behaves_like_nor_flash(steps: list[tuple[str, int, object]]) -> None:
    flash = SparseFlash(SIZE)
    model = bytearray(b"\xff" * SIZE)
    for kind, a, b in steps:
        if kind == "program":
            assert isinstance(b, bytes)
            data = b[: SIZE - a]
            flash.program(a, data)
            for i, byte in enumerate(data):
                model[a + i] &= byte  # a bit only ever goes from 1 to 0
        else:
            assert isinstance(b, int)
            count = min(b, 64 - a)
            flash.erase(a * SECTOR, count * SECTOR)
            model[a * SECTOR : (a + count) * SECTOR] = b"\xff" * (count * SECTOR)
    assert flash.read(0, SIZE) == bytes(model)
    assert flash.md5(100, SIZE - 200) == hashlib.md5(model[100 : SIZE - 100]).digest()


def test_erased_chip_reads_ones_and_holds_nothing() -> None:
    flash = SparseFlash(8 * 1024 * 1024)
    assert flash.read(0x7FFFF0, 16) == b"\xff" * 16
    assert flash.written_sectors == 0
    flash.program(0x1000, b"\xff" * 100)  # programming ones changes nothing
    assert flash.written_sectors == 0


def test_range_and_alignment_errors() -> None:
    flash = SparseFlash(SIZE)
    with pytest.raises(FlashRangeError):
        flash.program(SIZE - 1, b"ab")
    with pytest.raises(FlashRangeError):
        flash.read(SIZE, 1)
    with pytest.raises(FlashRangeError):
        flash.md5(0, SIZE + 1)
    with pytest.raises(ValueError, match="aligned"):
        flash.erase(0x800, SECTOR)
    with pytest.raises(ValueError):
        SparseFlash(3 * SECTOR)


def test_save_keeps_only_written_sectors(tmp_path: Path) -> None:
    flash = SparseFlash(16 * 1024 * 1024)
    flash.program(0x10000, b"app" * 100)
    flash.program(0xFFF000, b"\x00")
    flash.program(0x20000, b"\x00")
    flash.erase(0x20000, SECTOR)  # written, then erased: not stored
    path = tmp_path / "flash.bin"
    flash.save(path)
    assert not flash.dirty
    assert path.stat().st_size < 3 * (SECTOR + 8) + 64
    again = SparseFlash.load(path)
    assert again.size == flash.size and again.jedec_id == flash.jedec_id
    assert again.read(0, again.size) == flash.read(0, flash.size)


def test_load_rejects_foreign_files(tmp_path: Path) -> None:
    path = tmp_path / "junk.bin"
    path.write_bytes(b"not a flash image at all")
    with pytest.raises(ValueError):
        SparseFlash.load(path)


def test_spi_identity_and_status() -> None:
    flash = SparseFlash(4 * 1024 * 1024)
    assert flash.command(0x9F, None, b"", 24) == 0x1640EF
    assert flash.command(0x5A, 0, b"", 32) == int.from_bytes(b"SFDP", "little")
    density = flash.command(0x5A, 0x84, b"", 32)
    assert density + 1 == flash.size * 8
    flash.command(0x01, None, b"\x1c", 0)
    assert flash.command(0x05, None, b"", 8) == 0  # WRSR without WREN is ignored
    flash.command(0x06, None, b"", 0)
    flash.command(0x01, None, b"\x1c\x02", 0)  # 16-bit WRSR: BP bits and QE
    assert flash.command(0x05, None, b"", 8) == 0x1C  # WEL cleared after the write
    assert flash.command(0x35, None, b"", 8) == 0x02
    flash.command(0xB9, None, b"", 0)  # deep power-down: deaf
    assert flash.command(0x9F, None, b"", 24) == 0xFFFFFF
    flash.command(0xAB, None, b"", 0)
    assert flash.command(0x9F, None, b"", 24) == 0x1640EF
