"""RF steps through the golden twin on a quad fixture: good units PASS with realistic
limits, each radio fault fails exactly its slot, lying receivers are ERROR, and a pool
that lets two slots on the air at once makes RF steps fail."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ate.model.verdict import Verdict
from tests.rf.conftest import BLE, WIFI_RX, WIFI_TX, RfBench, rf_sequence


async def test_good_units_pass_every_rf_step(make_rf_bench: Any, tmp_path: Path) -> None:
    bench: RfBench = make_rf_bench()
    result = await bench.run(rf_sequence(tmp_path))
    for slot, r in result.slots.items():
        assert r.verdict is Verdict.PASS, (slot, r.reason)
        values = {m.name: m.value for s in r.steps for m in s.measurements}
        assert set(values) == {
            f"rf.{link}.{key}"
            for link, keys in (
                ("wifi_tx.ch6", ("rssi", "rssi_raw", "freq_offset", "per")),
                ("wifi_rx.ch6", ("rssi", "rssi_raw", "per")),
                ("ble_tx.ch37", ("rssi", "rssi_raw", "per")),
                ("ble_rx.ch37", ("rssi", "rssi_raw", "per")),
            )
            for key in keys
        }
        # judged corrected: raw + the slot's calibrated path loss (about 40 dB here)
        for link in ("wifi_tx.ch6", "wifi_rx.ch6", "ble_tx.ch37", "ble_rx.ch37"):
            gain = values[f"rf.{link}.rssi"] - values[f"rf.{link}.rssi_raw"]
            assert 38 < gain < 44, (link, gain)


FAULTS: list[tuple[dict[str, Any], str, str]] = [
    ({"weak_pa": True}, "wifi_tx_ch6", r"rf\.wifi_tx\.ch6\.rssi = [\d.]+ dBm, wanted 16 \.\. 24"),
    ({"antenna_open": True}, "wifi_tx_ch6", r"rf\.wifi_tx\.ch6\.rssi = -?[\d.]+ dBm"),
    ({"crystal_off": 40.0}, "wifi_tx_ch6", r"rf\.wifi_tx\.ch6\.freq_offset = [34]\d\.\d+ ppm"),
    ({"deaf_receiver": True}, "wifi_rx_ch6", r"rf\.wifi_rx\.ch6\.per = 100 %, wanted <= 10 %"),
]


@pytest.mark.parametrize(
    ("fault", "step", "reason"), FAULTS, ids=[next(iter(f[0])) for f in FAULTS]
)
async def test_a_radio_fault_fails_exactly_its_slot(
    make_rf_bench: Any, tmp_path: Path, fault: dict[str, Any], step: str, reason: str
) -> None:
    bench: RfBench = make_rf_bench(sim_slots={2: {"faults": fault}})
    result = await bench.run(rf_sequence(tmp_path, [WIFI_TX, WIFI_RX]))
    faulted = result.slots[2]
    assert faulted.verdict is Verdict.FAIL, faulted.reason
    failed = {s.name: s for s in faulted.steps if s.verdict is Verdict.FAIL}
    assert step in failed
    assert re.search(reason, failed[step].reason), failed[step].reason
    for slot in (1, 3, 4):
        assert result.slots[slot].verdict is Verdict.PASS, (slot, result.slots[slot].reason)


LIES = [
    ("nan", r"rf\.rx\.stop: EPROTO reply has unusable rssi=nan"),
    ("inf", r"rf\.rx\.stop: EPROTO reply has unusable cfo=inf"),
    ("impossible", r"rf\.wifi_rx\.ch6\.per = frames=10001 counted of 40 sent, impossible"),
    ("loud", r"rf\.wifi_rx\.ch6\.rssi_raw = 35 \(no receiver reports outside -120 \.\. \+30\)"),
]


@pytest.mark.parametrize(("mode", "reason"), LIES, ids=[m for m, _ in LIES])
async def test_a_lying_receiver_is_error_never_judged(
    make_rf_bench: Any, tmp_path: Path, mode: str, reason: str
) -> None:
    bench: RfBench = make_rf_bench(sim_slots={3: {"faults": {"hostile": {"mode": mode}}}})
    result = await bench.run(rf_sequence(tmp_path, [WIFI_RX], defaults={"retries": 0}))
    liar = result.slots[3]
    assert liar.verdict is Verdict.ERROR, liar.reason
    assert re.search(reason, liar.reason), liar.reason
    for slot in (1, 2, 4):
        assert result.slots[slot].verdict is Verdict.PASS, (slot, result.slots[slot].reason)


async def test_two_slots_on_the_air_at_once_make_rf_steps_fail(
    make_rf_bench: Any, tmp_path: Path
) -> None:
    """The golden board's capacity is what keeps RF tests apart in one shield box: a pool
    that lets two slots hold it at once (capacity 2) corrupts their exchanges; with the
    fixture's capacity 1 the same panel passes."""
    bench: RfBench = make_rf_bench()
    seq = rf_sequence(tmp_path, [WIFI_TX, BLE], defaults={"retries": 0})
    loose = await bench.run(seq, resources={"dmm": 1, "golden": 2})
    # Both ways a shared golden board breaks: frames collide in the air (FAIL: packets
    # lost), and one slot's rf.rx.start/stop lands in the other's exchange (ERROR).
    failed = [s for s, r in loose.slots.items() if r.verdict is not Verdict.PASS]
    assert failed, "two slots on the air at once went unnoticed"
    strict = await bench.run(seq)
    for slot, r in strict.slots.items():
        assert r.verdict is Verdict.PASS, (slot, r.reason)
