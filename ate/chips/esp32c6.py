"""ESP32-C6 (RISC-V, Wi-Fi 6, BLE 5, 802.15.4): sequences may target it; ate does not
provision it."""

from ate.chips import Chip

CHIP = Chip(
    name="esp32c6",
    display="ESP32-C6",
    wifi_channels=tuple(range(1, 15)),
    ble=True,
    flash_encryption_key_bytes=(32,),
    rom_banner=("ESP-ROM:esp32c6-20220919", "Build:Sep 19 2022"),
)
