"""Per-chip descriptions for the simulated ROM loader: mostly data, taken from esptool/espefuse.

Owns: `ChipProfile` and the `esp32s3`/`esp32c3` profiles (register addresses, eFuse
controller model, factory eFuse values, ROM banner, flash defaults, security-info flags).
Chip specifics live here, never in the loader; what ate knows of the chip beyond the ROM
loader (its ROM banner) comes from ate.chips. May import esptool, espefuse and ate.chips.
"""

from __future__ import annotations

import functools
import glob
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from espefuse.efuse.esp32c3.emulate_efuse_controller import (
    EmulateEfuseController as EmulateEfuseControllerC3,
)
from espefuse.efuse.esp32s3.emulate_efuse_controller import (
    EmulateEfuseController as EmulateEfuseControllerS3,
)
from esptool.loader import StubFlasher
from esptool.targets import CHIP_DEFS

from ate import chips

MIB = 1024 * 1024

# GET_SECURITY_INFO flag bits (esptool's SECURITY_INFO_FLAG_MAP, "same across all targets
# in the ROM"). Bit 2 (SECURE_DOWNLOAD_ENABLE) is the loader's own state, not a field.
FLAG_SECURE_DOWNLOAD = 1 << 2


@dataclass(frozen=True, slots=True)
class SpiFlashRegs:
    """The SPI0/1 controller registers esptool drives for user commands (RDID, SFDP...)."""

    base: int
    usr: int
    usr1: int
    usr2: int
    mosi_dlen: int
    miso_dlen: int
    w0: int
    cmd: int = 0x00
    addr: int = 0x04

    @property
    def end(self) -> int:
        """One past the last data register (W0..W15)."""
        return self.base + self.w0 + 16 * 4


@dataclass(frozen=True)
class ChipProfile:
    """What the simulated ROM needs to know about one chip type."""

    name: str  # esptool's --chip name
    chip_name: str  # esptool's CHIP_NAME
    chip_id: int  # GET_SECURITY_INFO chip_id (esptool IMAGE_CHIP_ID)
    efuse_controller: Callable[..., Any]  # espefuse's EmulateEfuseController for the chip
    spi: SpiFlashRegs
    # esptool 5.6 identifies S3/C3 by GET_SECURITY_INFO's chip_id; it reads the magic
    # register (0x40001000) only when that fails, so no magic value is modelled. The
    # UART date register is only the target of esptool's delay-only writes (mask 0).
    uart_date_reg: int
    # RTC watchdog config: esptool's watchdog-reset enables it (bit 31) to reset the chip.
    rtc_wdt_config_reg: int
    # esptool's hard-reset preamble: S3 clears RTC_CNTL_OPTION1 FORCE_DOWNLOAD_BOOT before
    # pulsing RTS. On a link without modem lines it is the only sign of the coming reset.
    hard_reset_reg: int | None
    rom_build: tuple[str, str]  # the banner's ESP-ROM and Build lines
    boot_download: str  # "boot:0x.. (...)" with the strapping pins in download mode
    boot_spi: str  # ... in normal SPI boot
    default_flash_size: int
    bootloader_offset: int
    app_offset: int = 0x10000
    rom_flash_size: int = 2 * MIB  # the ROM's idea of the flash size before SPI_SET_PARAMS
    # Factory eFuses (field name -> value), programmed into a fresh unit besides its MAC,
    # chip revision and OPTIONAL_UNIQUE_ID.
    revision: int = 0  # major * 100 + minor, as esptool prints "v0.2"
    factory_fields: Mapping[str, int] = field(default_factory=dict)
    # GET_SECURITY_INFO flag bit -> eFuse field; a flag is set when its field has an odd
    # number of bits set (1 for a bool; SOFT_DIS_JTAG counts odd bits as "disabled").
    security_flags: tuple[tuple[int, str], ...] = ()
    key_purpose_fields: tuple[str, ...] = tuple(f"KEY_PURPOSE_{i}" for i in range(6))
    # A SYNC answer's value in ROM (a real ESP32 ROM answers 07 07 12 20).
    sync_value: int = 0x20120707
    # The eFuse fields whose value the ROM acts on at reset/after an eFuse read.
    efuse_dis_download: str = "DIS_DOWNLOAD_MODE"
    efuse_secure_download: str = "ENABLE_SECURITY_DOWNLOAD"
    # S3 ROM bug workaround in esptool: with Secure Boot on, esptool points the ROM's
    # rom_spiflash_legacy_funcs.read at the stub and starts it with READ_FLASH_SLOW.
    stub_read_hook: int | None = None

    @property
    def stub_entries(self) -> frozenset[int]:
        """Entry points of every flasher stub esptool ships for this chip."""
        return _stub_entries(self.name)

    def banner(self, *, download: bool, reset_cause: str, waiting: bool | None = None) -> bytes:
        """The ROM's boot text, as esptool's boot-log regex reads it: the boot line shows
        the straps (`download`); "waiting for download" only if the loader then listens."""
        boot = self.boot_download if download else self.boot_spi
        lines = [*self.rom_build, f"rst:{reset_cause},{boot}"]
        listening = download if waiting is None else waiting
        if listening:
            lines.append("waiting for download")
        return ("\r\n".join(lines) + "\r\n").encode("ascii")


@functools.cache
def _stub_entries(chip: str) -> frozenset[int]:
    # esptool picks a stub version at run time (--stub-version); accept each one it has.
    rom = CHIP_DEFS[chip]
    json_name = rom.STUB_CLASS.stub_json_name(rom)
    entries = set()
    for path in glob.glob(os.path.join(StubFlasher.STUB_DIR, "*", json_name)):
        with open(path) as f:
            entries.add(int(json.load(f)["entry"]))
    return frozenset(entries)


_COMMON_FLAGS: tuple[tuple[int, str], ...] = (
    (1 << 0, "SECURE_BOOT_EN"),
    (1 << 1, "SECURE_BOOT_AGGRESSIVE_REVOKE"),
    (1 << 3, "SECURE_BOOT_KEY_REVOKE0"),
    (1 << 4, "SECURE_BOOT_KEY_REVOKE1"),
    (1 << 5, "SECURE_BOOT_KEY_REVOKE2"),
    (1 << 6, "SOFT_DIS_JTAG"),
    (1 << 7, "DIS_PAD_JTAG"),
    (1 << 10, "DIS_DOWNLOAD_ICACHE"),
)


def _spi_regs(chip: str) -> SpiFlashRegs:
    rom = CHIP_DEFS[chip]
    return SpiFlashRegs(
        base=rom.SPI_REG_BASE,
        usr=rom.SPI_USR_OFFS,
        usr1=rom.SPI_USR1_OFFS,
        usr2=rom.SPI_USR2_OFFS,
        mosi_dlen=rom.SPI_MOSI_DLEN_OFFS,
        miso_dlen=rom.SPI_MISO_DLEN_OFFS,
        w0=rom.SPI_W0_OFFS,
    )


def _banner(name: str) -> tuple[str, str]:
    rom, build = chips.get(name).rom_banner
    assert build is not None  # every chip with a simulated ROM loader prints both lines
    return rom, build


ESP32S3 = ChipProfile(
    name="esp32s3",
    chip_name=CHIP_DEFS["esp32s3"].CHIP_NAME,
    chip_id=CHIP_DEFS["esp32s3"].IMAGE_CHIP_ID,
    efuse_controller=EmulateEfuseControllerS3,
    spi=_spi_regs("esp32s3"),
    uart_date_reg=CHIP_DEFS["esp32s3"].UART_DATE_REG_ADDR,
    rtc_wdt_config_reg=CHIP_DEFS["esp32s3"].RTC_CNTL_WDTCONFIG0_REG,
    hard_reset_reg=CHIP_DEFS["esp32s3"].RTC_CNTL_OPTION1_REG,
    rom_build=_banner("esp32s3"),
    boot_download="boot:0x0 (DOWNLOAD(USB/UART0))",
    boot_spi="boot:0x8 (SPI_FAST_FLASH_BOOT)",
    default_flash_size=8 * MIB,  # an N8 module
    bootloader_offset=CHIP_DEFS["esp32s3"].BOOTLOADER_FLASH_OFFSET,
    revision=2,  # v0.2, the production silicon
    factory_fields={"PKG_VERSION": 0, "BLK_VERSION_MAJOR": 1, "BLK_VERSION_MINOR": 1},
    security_flags=(*_COMMON_FLAGS, (1 << 8, "DIS_USB_OTG"), (1 << 9, "DIS_DOWNLOAD_DCACHE")),
    stub_read_hook=0x3FCEF688,
)

ESP32C3 = ChipProfile(
    name="esp32c3",
    chip_name=CHIP_DEFS["esp32c3"].CHIP_NAME,
    chip_id=CHIP_DEFS["esp32c3"].IMAGE_CHIP_ID,
    efuse_controller=EmulateEfuseControllerC3,
    spi=_spi_regs("esp32c3"),
    uart_date_reg=CHIP_DEFS["esp32c3"].UART_DATE_REG_ADDR,
    rtc_wdt_config_reg=CHIP_DEFS["esp32c3"].RTC_CNTL_WDTCONFIG0_REG,
    hard_reset_reg=None,  # esptool's C3 class pulses RTS without writing a register first
    rom_build=_banner("esp32c3"),
    boot_download="boot:0x5 (DOWNLOAD(USB/UART0/1))",
    boot_spi="boot:0xc (SPI_FAST_FLASH_BOOT)",
    default_flash_size=4 * MIB,  # a MINI-1 module
    bootloader_offset=CHIP_DEFS["esp32c3"].BOOTLOADER_FLASH_OFFSET,
    revision=4,  # v0.4 (ECO3)
    factory_fields={"PKG_VERSION": 0, "BLK_VERSION_MAJOR": 1, "BLK_VERSION_MINOR": 1},
    security_flags=(*_COMMON_FLAGS, (1 << 8, "DIS_USB_SERIAL_JTAG")),
)

PROFILES: dict[str, ChipProfile] = {p.name: p for p in (ESP32S3, ESP32C3)}


def get_profile(name: str) -> ChipProfile:
    """The profile for esptool's chip name ("esp32s3"); ValueError for anything else."""
    try:
        return PROFILES[name]
    except KeyError:
        raise ValueError(f"chip {name!r}: supported are {', '.join(PROFILES)}") from None
