"""ESP32-S3 (Xtensa LX7 dual core, Wi-Fi 4 and BLE 5): datasheet v1.9, TRM v1.5,
ESP-IDF v5.2."""

from ate.chips import Chip, ImageLayout

CHIP = Chip(
    name="esp32s3",
    display="ESP32-S3",
    wifi_channels=tuple(range(1, 15)),  # 1..14 (14: Japan, 802.11b only)
    ble=True,
    flash_encryption_key_bytes=(32, 64),  # XTS-AES-128, XTS-AES-256
    rom_banner=("ESP-ROM:esp32s3-20210327", "Build:Mar 27 2021"),
    provisioning=True,
    image_layout=ImageLayout(9, 0x403C_8924, 0x3FCE_2810, 0x4037_5A00, 0x3C00_0020),
)
