"""ESP32-H2 (RISC-V, BLE 5 and 802.15.4, no Wi-Fi): sequences may target it; ate does
not provision it."""

from ate.chips import Chip

CHIP = Chip(
    name="esp32h2",
    display="ESP32-H2",
    wifi_channels=(),  # no Wi-Fi at all
    ble=True,
    flash_encryption_key_bytes=(32,),
    rom_banner=("ESP-ROM:esp32h2-20221101", "Build:Nov  1 2022"),
)
