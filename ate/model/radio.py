"""Radio facts: the channels a chip's radio has (its Wi-Fi channels from its description
in ate.chips), rf.tx's frame intervals, and the bounds of an RSSI reading any receiver
can report. Imports ate.chips only."""

from __future__ import annotations

from typing import Final, Literal

from ate import chips

RfMode = Literal["wifi", "ble"]

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
    if mode == "ble":
        return BLE_CHANNELS
    try:
        return chips.get(chip).wifi_channels
    except chips.UnknownChip:
        return ()


def channel_key(mode: RfMode, channel: int) -> str:
    """How a calibration names one channel: wifi6, ble37."""
    return f"{mode}{channel}"
