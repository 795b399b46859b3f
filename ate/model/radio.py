"""Radio facts per chip (which Wi-Fi and BLE channels it has) and the bounds of an RSSI
reading any receiver can report. Imports nothing from ate."""

from __future__ import annotations

from typing import Final, Literal

RfMode = Literal["wifi", "ble"]

_WIFI_2G4: Final = tuple(range(1, 15))  # 2.4 GHz channels 1..14 (14: Japan, 802.11b only)
# Per chip, the Wi-Fi channels its radio tunes (ESP-IDF esp_wifi_set_channel); the H2 has
# no Wi-Fi at all (802.15.4 and BLE only).
WIFI_CHANNELS: Final[dict[str, tuple[int, ...]]] = {
    "esp32": _WIFI_2G4,
    "esp32s2": _WIFI_2G4,
    "esp32s3": _WIFI_2G4,
    "esp32c3": _WIFI_2G4,
    "esp32c6": _WIFI_2G4,
    "esp32h2": (),
}
# The three advertising channels: the only ones a legacy advertisement is sent on.
BLE_CHANNELS: Final = (37, 38, 39)

# rf.tx's frame interval per mode, microseconds (the test firmware's bounds, PROTOCOL.md):
# non-connectable BLE advertising cannot be sent faster than every 20 ms.
TX_INTERVAL_US: Final[dict[str, tuple[int, int]]] = {
    "wifi": (500, 100_000),
    "ble": (20_000, 100_000),
}

# An RSSI a receiver reports is bounded by physics on both sides: nothing above +30 dBm
# reaches an antenna in a shield box without burning it, nothing below -120 dBm is
# decoded by a 2.4 GHz receiver (thermal noise over 1-2 MHz is about -111 dBm).
RSSI_MIN_DBM: Final = -120.0
RSSI_MAX_DBM: Final = 30.0


def channels(chip: str, mode: RfMode) -> tuple[int, ...]:
    return WIFI_CHANNELS.get(chip, ()) if mode == "wifi" else BLE_CHANNELS


def channel_key(mode: RfMode, channel: int) -> str:
    """How a calibration names one channel: wifi6, ble37."""
    return f"{mode}{channel}"
