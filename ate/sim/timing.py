"""The line-time model (`simulation: {timing: line}`): how long a unit's own hardware
takes for what the line asks of it. One owner of every figure, each with its source.

The twins sleep these times on their own event loop (never a busy loop): the ROM loader
before it answers a flash erase/program or an eFuse program (the stub after it acks a
data block, as the real stub does), the test firmware before it answers prov.key,
prov.csr, prov.sign and rf.golden, and the boot before READY. Wire time at the link's
baud is the WirePacer's (ate.sim.rom.server). May import the standard library only.

Figures are typical values, not maxima: the model is a line of good parts, and the
benchmark's floor is computed from the same figures, so a slower part slows both.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SECTOR = 0x1000  # 4 KiB erase sector of a SPI NOR flash
BLOCK = 0x10000  # 64 KiB erase block
PAGE = 0x100  # 256-byte program page


@dataclass(frozen=True, slots=True)
class LineTimes:
    # ---- SPI NOR flash: Winbond W25Q64JV datasheet (rev. I, 2017), 9.6 AC electrical
    # characteristics, typical column; the boards carry W25Q64 parts (JEDEC EF4017).
    sector_erase_s: float = 0.045  # tSE, 4 KiB sector erase: typ 45 ms (max 400 ms)
    block_erase_s: float = 0.150  # tBE2, 64 KiB block erase: typ 150 ms (max 2000 ms)
    # tPP, page program (up to 256 bytes): typ 0.4 ms on the JV part, 0.7 ms on the older
    # W25Q64FV/W25Q128FV; the slower figure is kept (both parts turn up on a line).
    page_program_s: float = 0.0007

    # ---- eFuse: one program command (EFUSE_PGM_CMD) burns one block. espefuse 5.6
    # (efuse/esp32s3/fields.py, set_efuse_timing) sets VDDQ power-on to 0x3000 cycles and
    # power-off to 0x190 cycles of the 40 MHz clock: 0.31 ms + 0.01 ms; the ESP32-S3 TRM's
    # eFuse controller then pulses each bit of the block serially (256 data + 96 RS bits,
    # EFUSE_TPGM ~5 us a bit): ~1.8 ms. [estimate from the register settings]
    efuse_program_s: float = 0.0025

    # ---- on-device crypto, ECDSA P-256 with mbedTLS on an ESP32-S3 at 240 MHz (no ECC
    # accelerator; the MPI accelerator helps the bignum maths): "a few tens of ms" per
    # scalar multiplication. [estimate: mbedTLS `benchmark` figures for ESP32-class cores]
    # An RSA-2048 key would take 7-12 s (seed 003, SpinDance's manufacturing flow).
    keygen_s: float = 0.040  # prov.key: one scalar multiplication and the RNG
    sign_s: float = 0.045  # prov.sign and prov.csr: hash, one scalar multiplication

    # ---- boot, reset to the application's READY. ESP-IDF's 2nd-stage bootloader loads
    # and checks the app image, then app start-up: ~300 ms with default logging (ESP-IDF
    # "Minimizing boot time" guide; the twin's logs put READY at 95 % of it). [estimate]
    boot_s: float = 0.300
    # Secure Boot V2 verifies the app's RSA-3072 signature at every boot: "an increase of
    # approximately 600 ms to the boot time" (seed 000, GizanTech's production guide).
    secure_boot_s: float = 0.600

    # ---- RF, the signal-board scheme (Espressif production testing guide): the DUT and
    # the golden board exchange frames. 802.11b DSSS at 1 Mb/s with the long preamble
    # (IEEE 802.11-2020, 16.3: PLCP preamble + header 192 us, then 8 us a byte), a
    # 100-byte frame, SIFS 10 us, a 14-byte ACK, DIFS 50 us (SIFS + 2 x 20 us slots).
    rf_frame_bytes: int = 100
    rf_rate_mbps: float = 1.0
    rf_plcp_s: float = 192e-6
    rf_sifs_s: float = 10e-6
    rf_difs_s: float = 50e-6
    rf_ack_bytes: int = 14
    # The ate test frames of rf.tx (PROTOCOL.md): a 19-byte payload (ATE1, kind, MAC,
    # seq, count, timestamp). Wi-Fi: 24-byte 802.11 header + payload + 4-byte FCS, sent
    # by esp_wifi_80211_tx at 1 Mb/s DSSS, long preamble, no ACK (a broadcast). BLE 1M
    # PHY legacy advertisement (Core 5.3 Vol 6 B 2.1): preamble 1, access address 4,
    # header 2, AdvA 6, flags AD 3, manufacturer AD 2 + company 2 + payload, CRC 3 bytes.
    wifi_test_frame_bytes: int = 24 + 19 + 4
    ble_test_frame_bytes: int = 1 + 4 + 2 + 6 + 3 + 2 + 2 + 19 + 3
    ble_rate_mbps: float = 1.0

    # ---- derived times -------------------------------------------------------------

    def erase_s(self, offset: int, length: int) -> float:
        """Erasing [offset, offset+length) sector-aligned, as the ROM's SPIEraseArea and
        the stub do: 4 KiB sectors up to a 64 KiB boundary, 64 KiB blocks while a whole
        one remains, sectors for the tail."""
        start = offset - offset % SECTOR
        end = math.ceil((offset + length) / SECTOR) * SECTOR
        sectors = blocks = 0
        pos = start
        while pos < end:
            if pos % BLOCK == 0 and end - pos >= BLOCK:
                blocks += 1
                pos += BLOCK
            else:
                sectors += 1
                pos += SECTOR
        return blocks * self.block_erase_s + sectors * self.sector_erase_s

    def program_s(self, offset: int, length: int) -> float:
        """Programming `length` bytes at `offset`: one page program per page touched."""
        if length <= 0:
            return 0.0
        first = offset // PAGE
        last = (offset + length - 1) // PAGE
        return (last - first + 1) * self.page_program_s

    def boot_total_s(self, *, secure_boot: bool) -> float:
        return self.boot_s + (self.secure_boot_s if secure_boot else 0.0)

    def test_frame_s(self, mode: str) -> float:
        """Airtime of one rf.tx test frame (`wifi` or `ble`), seconds."""
        if mode == "ble":
            return self.ble_test_frame_bytes * 8.0 / self.ble_rate_mbps * 1e-6
        return self.rf_plcp_s + self.wifi_test_frame_bytes * 8.0 / self.rf_rate_mbps * 1e-6

    @property
    def rf_packet_s(self) -> float:
        """Airtime of one exchange: the frame, SIFS, the ACK, DIFS before the next."""
        us_per_byte = 8.0 / self.rf_rate_mbps * 1e-6
        frame = self.rf_plcp_s + self.rf_frame_bytes * us_per_byte
        ack = self.rf_plcp_s + self.rf_ack_bytes * us_per_byte
        return frame + self.rf_sifs_s + ack + self.rf_difs_s


LINE = LineTimes()
