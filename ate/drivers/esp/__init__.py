"""ESP32 flashing and eFuses through esptool/espefuse 5.x used as libraries.

One `EspFlasher` per slot: one serial connection, one worker thread for every blocking
esptool call, a per-thread log capture so each slot's log holds only its own lines.
`EfuseSession` runs espefuse on a flasher's open connection. Failures are `FlashError`s
whose message says what to do. May import esptool, espefuse, pyserial, ate.protocol,
ate.config and ate.model; never ate.sim.
"""

from ate.drivers.esp import esptool_fixes
from ate.drivers.esp.efuse import Act, Burn, BurnKey, EfuseField, EfuseSession, WriteProtect
from ate.drivers.esp.errors import (
    BaudRefused,
    DownloadModeDisabled,
    EfuseRefused,
    FlashError,
    ImageOverlap,
    ImageTooLarge,
    NoSync,
    PortUnavailable,
    SecureDownloadMode,
    VerifyFailed,
    WrongChip,
)
from ate.drivers.esp.flasher import ChipInfo, EspFlasher, SecurityInfo, WriteResult
from ate.drivers.esp.log_capture import FlashProgress

__all__ = [
    "Act",
    "BaudRefused",
    "Burn",
    "BurnKey",
    "ChipInfo",
    "DownloadModeDisabled",
    "EfuseField",
    "EfuseRefused",
    "EfuseSession",
    "EspFlasher",
    "FlashError",
    "FlashProgress",
    "ImageOverlap",
    "ImageTooLarge",
    "NoSync",
    "PortUnavailable",
    "SecureDownloadMode",
    "SecurityInfo",
    "VerifyFailed",
    "WriteProtect",
    "WriteResult",
    "WrongChip",
]

# esptool 5.6 formats trace hex dumps it never shows (see esptool_fixes).
esptool_fixes.apply()
