"""A simulated ESP32-S3/C3 ROM loader that real esptool and espefuse accept.

Chip profiles, a sparse NOR flash, eFuses backed by espefuse's own emulator, the sans-IO
loader state machine and a TCP/RFC 2217 server around it. May import ate.protocol,
ate.model, esptool, espefuse and pyserial.
"""

from ate.sim.rom.chips import ESP32C3, ESP32S3, PROFILES, ChipProfile, get_profile
from ate.sim.rom.efuses import EfuseBank, SecurityInfo
from ate.sim.rom.flash import FlashRangeError, SparseFlash
from ate.sim.rom.loader import LoaderEvent, LoaderStats, Mode, RomLoader
from ate.sim.rom.server import RomServer, RomServerThread, WirePacer, run_sim_rom

__all__ = [
    "ESP32C3",
    "ESP32S3",
    "PROFILES",
    "ChipProfile",
    "EfuseBank",
    "FlashRangeError",
    "LoaderEvent",
    "LoaderStats",
    "Mode",
    "RomLoader",
    "RomServer",
    "RomServerThread",
    "SecurityInfo",
    "SparseFlash",
    "WirePacer",
    "get_profile",
    "run_sim_rom",
]
