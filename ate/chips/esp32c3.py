"""ESP32-C3 (RISC-V single core, Wi-Fi 4 and BLE 5): datasheet v2.0, TRM v1.1,
ESP-IDF v5.2."""

from ate.chips import Chip, ImageLayout

CHIP = Chip(
    name="esp32c3",
    display="ESP32-C3",
    wifi_channels=tuple(range(1, 15)),
    ble=True,
    flash_encryption_key_bytes=(32,),  # XTS-AES-128 only
    rom_banner=("ESP-ROM:esp32c3-api1-20210207", "Build:Feb  7 2021"),
    provisioning=True,
    image_layout=ImageLayout(5, 0x403C_E000, 0x3FCD_5820, 0x4038_0000, 0x3C00_0020),
)
