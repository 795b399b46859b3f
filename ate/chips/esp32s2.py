"""ESP32-S2 (Xtensa LX7 single core, Wi-Fi only): sequences may target it; ate does not
provision it."""

from ate.chips import Chip

CHIP = Chip(
    name="esp32s2",
    display="ESP32-S2",
    wifi_channels=tuple(range(1, 15)),
    ble=False,
    flash_encryption_key_bytes=(32, 64),
    rom_banner=("ESP-ROM:esp32s2-rc4-20191025", "Build:Oct 25 2019"),
)
