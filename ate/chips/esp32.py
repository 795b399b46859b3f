"""ESP32 (Xtensa LX6): sequences may target it; ate does not provision it."""

from ate.chips import Chip

CHIP = Chip(
    name="esp32",
    display="ESP32",
    wifi_channels=tuple(range(1, 15)),
    ble=True,
    flash_encryption_key_bytes=(32,),  # its own AES-256 scheme (FLASH_CRYPT_CONFIG 0xF)
    rom_banner=("ets Jun  8 2016 00:22:57", None),
)
