"""What a simulated chip finds in its flash at a normal reset: our test firmware, or
nothing it can run (blank, corrupt, someone else's app).

esptool parses and checks the image (header, checksum, appended SHA-256); this module
only reads the ESP-IDF app descriptor that starts the first segment.
May import esptool and the standard library only.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass

from esptool.bin_image import LoadFirmwareImage

TEST_FIRMWARE_PROJECT = "ate_test_fw"
_APP_DESC_MAGIC = 0xABCD5432
_APP_DESC = struct.Struct("<II8s32s32s")  # magic, secure_version, reserved, version, project


@dataclass(frozen=True, slots=True)
class BootedApp:
    project: str
    version: str
    sha256: str  # of the image bytes as stored (header to appended digest)


@dataclass(frozen=True, slots=True)
class NoApp:
    """Why the second stage has nothing to start; the chip prints it and resets."""

    reason: str
    console: str  # what the ROM/bootloader prints about it, for the DUT's log


def _cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("ascii", "replace")


def find_app(chip: str, flash_at_app: bytes) -> BootedApp | NoApp:
    """Inspect the bytes at the app offset as the bootloader would."""
    head = flash_at_app[:4]
    if head[:1] != b"\xe9":
        magic = int.from_bytes(head.ljust(4, b"\xff"), "little")
        return NoApp(
            "no app image",
            f"E (92) esp_image: image at app offset has invalid magic byte (0x{magic:08x})\r\n",
        )
    try:
        image = LoadFirmwareImage(chip, flash_at_app)
        image.verify()
    except Exception as exc:  # esptool says what is wrong; a corrupt image is not a crash
        return NoApp(f"corrupt app image: {exc}", "E (95) esp_image: image corrupt\r\n")
    calculated = image.calculate_checksum()
    if calculated != image.checksum:
        return NoApp(
            "corrupt app image: checksum mismatch",
            f"E (95) esp_image: Checksum failed. Calculated 0x{calculated:02x} read "
            f"0x{image.checksum:02x}\r\n",
        )
    stored = getattr(image, "stored_digest", None)
    if stored is not None and stored != getattr(image, "calc_digest", None):
        return NoApp(
            "corrupt app image: SHA-256 mismatch",
            "E (97) esp_image: Image hash failed - image is corrupt\r\n",
        )
    first = image.segments[0].data if image.segments else b""
    if len(first) < _APP_DESC.size:
        return NoApp("app image without a descriptor", "E (99) boot: no app descriptor\r\n")
    magic, _secure, _res, version, project = _APP_DESC.unpack_from(first)
    if magic != _APP_DESC_MAGIC:
        return NoApp("app image without a descriptor", "E (99) boot: no app descriptor\r\n")
    # data_length covers header to checksum; the appended digest follows it.
    size = (image.data_length or 0) + (32 if stored is not None else 0)
    return BootedApp(
        project=_cstr(project),
        version=_cstr(version),
        sha256=hashlib.sha256(flash_at_app[:size]).hexdigest(),
    )
