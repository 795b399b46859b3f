"""One description per chip: what ate knows of an ESP32 variant, mostly data (esptool's
way), each chip in a file of its own in this package. Adding a chip means adding a file
that defines `CHIP = Chip(...)`; `get()` finds it by any of its names.

What lives elsewhere on purpose: eFuse field names, key purposes and block layout come
from espefuse's own tables (ate.provision.efuse_plan reads them); register addresses the
simulated ROM loader needs come from esptool's (ate.sim.rom.chips).

Imports the standard library only.
"""

from __future__ import annotations

import functools
import importlib
import pkgutil
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ImageLayout:
    """Where an ESP-IDF image for this chip loads (a simulated release's images are built
    on it): image chip id, bootloader entry and DRAM address, app entry, app DROM."""

    chip_id: int
    bootloader_entry: int
    bootloader_dram: int
    app_entry: int
    app_drom: int


@dataclass(frozen=True, slots=True)
class Chip:
    name: str  # esptool's --chip spelling: "esp32s3"
    display: str  # as datasheets write it: "ESP32-S3"
    wifi_channels: tuple[int, ...]  # 2.4 GHz channels its radio tunes (ESP-IDF)
    ble: bool
    # Flash-encryption key sizes in bytes (ESP-IDF flash encryption docs): 32 for
    # XTS-AES-128 (or the ESP32's own AES-256 scheme), 64 for XTS-AES-256 in two blocks.
    flash_encryption_key_bytes: tuple[int, ...]
    rom_banner: tuple[str, str | None]  # the ROM's first lines at reset (ESP-ROM, Build)
    # ate provisions and locks it (an eFuse security plan exists: ate.provision.efuse_plan).
    provisioning: bool = False
    image_layout: ImageLayout | None = None  # None: no simulated release for it


@functools.cache
def _chips() -> dict[str, Chip]:
    found: dict[str, Chip] = {}
    for module in pkgutil.iter_modules(__path__):
        chip = getattr(importlib.import_module(f"{__name__}.{module.name}"), "CHIP", None)
        if isinstance(chip, Chip):
            found[chip.name] = chip
    return dict(sorted(found.items()))


def names() -> tuple[str, ...]:
    return tuple(_chips())


def all_chips() -> tuple[Chip, ...]:
    return tuple(_chips().values())


class UnknownChip(ValueError):
    pass


def get(name: str) -> Chip:
    """The chip any of whose names is `name` (case and dashes as people write them)."""
    wanted = name.strip().lower().replace("-", "").replace("_", "")
    for chip in _chips().values():
        if chip.name == wanted:
            return chip
    raise UnknownChip(f"chip {name!r} is not known; known: {', '.join(names())}")
