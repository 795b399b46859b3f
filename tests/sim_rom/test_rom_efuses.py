"""The eFuse bank on espefuse's emulator: factory state, register face, burns, persistence."""

from __future__ import annotations

import struct
import subprocess
import sys
from pathlib import Path

import pytest
import reedsolo

from ate.sim.rom.chips import ESP32C3, ESP32S3, ChipProfile
from ate.sim.rom.efuses import EfuseBank

S3_BASE = 0x60007000
PGM_DATA0 = 0x000
CONF = 0x1CC
CMD = 0x1D4
RS_ERR0 = 0x1C0


def burn_block(bank: EfuseBank, block: int, data: bytes) -> None:
    """The register sequence espefuse's EspEfuses.efuse_program drives, RS-coded."""
    base = bank.base
    data = data.ljust(32, b"\x00")
    words = (
        struct.unpack("<11I", bytes(reedsolo.RSCodec(12).encode(data)))
        if block
        else struct.unpack("<8I", data)
    )
    for i, word in enumerate(words):
        bank.write_reg(base + PGM_DATA0 + 4 * i, word)
    bank.write_reg(base + CONF, 0x5A5A)
    bank.write_reg(base + CMD, 0x2 | block << 2)
    assert bank.read_reg(base + CMD) == 0, "the program command completes at once"
    bank.write_reg(base + CONF, 0x5AA5)
    bank.write_reg(base + CMD, 0x1)
    assert bank.read_reg(base + CMD) == 0


@pytest.mark.parametrize("chip", [ESP32S3, ESP32C3])
def test_factory_fresh_unit(chip: ChipProfile) -> None:
    bank = EfuseBank(chip, mac="24:0a:c4:aa:bb:cc", seed=7)
    assert bank.mac.hex(":") == "24:0a:c4:aa:bb:cc"
    assert bank.field("MAC") == bytes.fromhex("240ac4aabbcc")
    assert bank.field("WAFER_VERSION_MINOR_LO") == chip.revision % 100
    unique = bank.field("OPTIONAL_UNIQUE_ID")
    assert len(unique) == 16 and any(unique)
    assert EfuseBank(chip, seed=7).field("OPTIONAL_UNIQUE_ID") == unique  # seeded
    assert EfuseBank(chip, seed=8).field("OPTIONAL_UNIQUE_ID") != unique
    assert not bank.secure_download_mode and not bank.download_mode_disabled
    assert bank.security_info().chip_id == chip.chip_id


def test_register_writes_are_read_modify_write_and_respect_read_only() -> None:
    bank = EfuseBank(ESP32S3)
    bank.write_reg(S3_BASE + 0x1E8, 0x0000FFFF)  # DAC_CONF
    bank.write_reg(S3_BASE + 0x1E8, 0x00280000, 0x00FF0000)
    assert bank.read_reg(S3_BASE + 0x1E8) == 0x0028FFFF
    mac_word = bank.read_reg(S3_BASE + 0x44)
    bank.write_reg(S3_BASE + 0x44, 0)  # a read register: ignored, as on the chip
    assert bank.read_reg(S3_BASE + 0x44) == mac_word
    with pytest.raises(ValueError):
        bank.read_reg(0x60008000)


def test_program_needs_the_write_opcode() -> None:
    bank = EfuseBank(ESP32S3)
    bank.write_reg(S3_BASE + PGM_DATA0, 1)
    bank.write_reg(S3_BASE + CONF, 0)
    bank.write_reg(S3_BASE + CMD, 0x2)  # no 0x5A5A first: nothing is programmed
    assert bank.read_reg(S3_BASE + CMD) == 0
    assert bank.read_reg(S3_BASE + 0x2C) == 0  # WR_DIS untouched


def test_burning_key_purpose_and_secure_download_through_registers() -> None:
    bank = EfuseBank(ESP32S3)
    # BLOCK0 write layout = its read layout from RD_WR_DIS: word 2 holds KEY_PURPOSE_0/1.
    block0 = bytearray(32)
    block0[8:12] = struct.pack("<I", 4 << 24)  # KEY_PURPOSE_0 = XTS_AES_128_KEY
    block0[16:20] = struct.pack("<I", 1 << 5)  # ENABLE_SECURITY_DOWNLOAD
    bank.write_reg(S3_BASE + CONF, 0x5A5A)
    for i, word in enumerate(struct.unpack("<8I", bytes(block0))):
        bank.write_reg(S3_BASE + 4 * i, word)
    bank.write_reg(S3_BASE + CMD, 0x2)
    assert bank.field("KEY_PURPOSE_0") == 4
    assert not bank.secure_download_mode  # the ROM acts on it after an eFuse read
    bank.write_reg(S3_BASE + CONF, 0x5AA5)
    bank.write_reg(S3_BASE + CMD, 0x1)
    assert bank.secure_download_mode
    info = bank.security_info()
    assert info.key_purposes[0] == 4
    assert info.flags & 1 << 2


def test_second_write_into_an_rs_block_is_flagged() -> None:
    bank = EfuseBank(ESP32S3)
    burn_block(bank, 3, b"first")
    assert bank.read_reg(S3_BASE + 0x7C) == int.from_bytes(b"firs", "little")
    assert bank.read_reg(S3_BASE + RS_ERR0) == 0
    burn_block(bank, 3, b"other")
    err = bank.read_reg(S3_BASE + RS_ERR0)
    assert err >> 8 & 0x7 and err & 1 << 11  # BLOCK3 error count and fail bit
    assert EfuseBank(ESP32S3).read_reg(S3_BASE + RS_ERR0) == 0


def test_read_protection_hides_the_key() -> None:
    bank = EfuseBank(ESP32S3)
    key = bytes(range(1, 33))
    burn_block(bank, 4, key)
    assert bank.read_reg(S3_BASE + 0x9C) == int.from_bytes(key[:4], "little")
    block0 = bytearray(32)
    block0[4] = 1  # RD_DIS bit 0: BLOCK_KEY0
    for i, word in enumerate(struct.unpack("<8I", bytes(block0))):
        bank.write_reg(S3_BASE + 4 * i, word)
    bank.write_reg(S3_BASE + CONF, 0x5A5A)
    bank.write_reg(S3_BASE + CMD, 0x2)
    assert [bank.read_reg(S3_BASE + 0x9C + 4 * i) for i in range(8)] == [0] * 8


def test_persists_in_espefuse_virt_format(tmp_path: Path) -> None:
    path = tmp_path / "efuse.bin"
    bank = EfuseBank(ESP32S3, path=path, mac="24:0a:c4:01:02:03")
    burn_block(bank, 3, b"serial-42")
    again = EfuseBank(ESP32S3, path=path)
    assert again.mac == bank.mac
    assert again.read_reg(S3_BASE + 0x7C) == int.from_bytes(b"seri", "little")
    with pytest.raises(ValueError, match="holds a unit"):
        EfuseBank(ESP32S3, path=path, mac="24:0a:c4:99:99:99")
    # espefuse itself reads the file: the format is its --virt one.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "espefuse",
            "--chip",
            "esp32s3",
            "--virt",
            "--path-efuse-file",
            str(path),
            "summary",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "24:0a:c4:01:02:03" in result.stdout


def test_refuses_a_file_that_is_not_an_efuse_image(tmp_path: Path) -> None:
    path = tmp_path / "efuse.bin"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(ValueError, match="not an eFuse file of an ESP32-S3"):
        EfuseBank(ESP32S3, path=path)
    assert path.read_bytes() == b"\x00" * 100  # left alone


def test_burn_rejects_unknown_fields_and_oversized_values() -> None:
    bank = EfuseBank(ESP32C3)
    with pytest.raises(ValueError):
        bank.burn("NO_SUCH_FUSE", 1)
    with pytest.raises(ValueError):
        bank.burn("SPI_BOOT_CRYPT_CNT", 8)
    bank.burn("SPI_BOOT_CRYPT_CNT", 1)
    assert bank.security_info().crypt_cnt == 1
