"""The simulated shield box's air on its own (no I/O): reception against sensitivity,
collisions between overlapping transmissions on one channel, the sender's clock offset."""

from __future__ import annotations

import pytest

from ate.config.fixture import SimRfSpec
from ate.sim.rf_space import Radio, RfSpace, frame_interval_s

MS = 1e-3


def radio(mac_last: int, slot: int | None, **kw: float) -> Radio:
    fields: dict[str, float] = {
        "tx_offset_db": 0.0,
        "rx_offset_db": 0.0,
        "sensitivity_dbm": -95.0,
        "ppm": 0.0,
    }
    fields.update(kw)
    return Radio(mac=f"24:0a:c4:00:00:{mac_last:02x}", slot=slot, **fields)  # type: ignore[arg-type]


@pytest.fixture
def space() -> RfSpace:
    return RfSpace(SimRfSpec(path_loss_db=40.0, per_channel_db=0.0), seed=1)


def test_a_lone_transmission_is_heard_whole(space: RfSpace) -> None:
    golden, dut = radio(0, None), radio(1, 1)
    space.transmit(dut, "wifi", 6, 50, 1000, 20, now=10.0)
    heard = space.hear(golden, "wifi", 6, dut.mac, 9.9, 10.0 + 50 * MS)
    assert heard.frames == 50
    assert heard.rssi is not None and abs(heard.rssi - (-20.0)) < 0.5


def test_overlapping_transmissions_on_one_channel_corrupt_each_other(space: RfSpace) -> None:
    golden, a, b = radio(0, None), radio(1, 1), radio(2, 2)
    # b starts 0.2 ms after a: every frame of each overlaps one of the other's
    space.transmit(a, "wifi", 6, 50, 1000, 20, now=10.0)
    space.transmit(b, "wifi", 6, 50, 1000, 20, now=10.0002)
    for sender in (a, b):
        assert space.hear(golden, "wifi", 6, sender.mac, 9.9, 10.1).frames == 0


def test_only_the_overlapping_frames_are_lost(space: RfSpace) -> None:
    golden, a, b = radio(0, None), radio(1, 1), radio(2, 2)
    space.transmit(a, "wifi", 6, 50, 1000, 20, now=10.0)
    space.transmit(b, "wifi", 6, 10, 1000, 20, now=10.0201)  # over a's frames 20..29
    assert space.hear(golden, "wifi", 6, a.mac, 9.9, 10.1).frames == 40


def test_other_channels_and_later_transmissions_do_not_collide(space: RfSpace) -> None:
    golden, a, b = radio(0, None), radio(1, 1), radio(2, 2)
    space.transmit(a, "wifi", 6, 50, 1000, 20, now=10.0)
    space.transmit(b, "wifi", 11, 50, 1000, 20, now=10.0)  # same time, another channel
    space.transmit(b, "wifi", 6, 50, 1000, 20, now=10.0 + 50 * MS)  # after a is done
    assert space.hear(golden, "wifi", 6, a.mac, 9.9, 10.0 + 50 * MS).frames == 50


def test_a_frame_below_the_receivers_sensitivity_is_not_heard(space: RfSpace) -> None:
    golden = radio(0, None)
    weak = radio(1, 1, tx_offset_db=-80.0)  # -100 dBm at the golden board
    deaf = radio(2, 2, sensitivity_dbm=105.0)
    space.transmit(weak, "ble", 37, 10, 2000, 20, now=10.0)
    assert space.hear(golden, "ble", 37, weak.mac, 9.9, 10.1).frames == 0
    space.transmit(golden, "ble", 38, 10, 2000, 20, now=11.0)
    assert space.hear(deaf, "ble", 38, golden.mac, 10.9, 11.1).frames == 0


@pytest.mark.parametrize("ppm", [-30.0, 0.0, 12.5])
def test_cfo_is_the_senders_clock_against_the_receivers(space: RfSpace, ppm: float) -> None:
    golden = radio(0, None, ppm=2.0)
    dut = radio(1, 1, ppm=ppm)
    space.transmit(dut, "wifi", 1, 100, 1000, 20, now=10.0)
    heard = space.hear(golden, "wifi", 1, dut.mac, 9.9, 10.2)
    assert heard.cfo is not None and abs(heard.cfo - (ppm - 2.0)) < 0.5


def test_frames_cannot_start_closer_than_their_airtime() -> None:
    assert frame_interval_s("wifi", 500) > 500e-6  # a 47-byte frame at 1 Mb/s takes 568 us
    assert frame_interval_s("ble", 20000) == 20000e-6
