"""RF steps through the golden twin on a quad fixture: good units PASS with realistic
limits, each radio fault fails exactly its slot, lying receivers are ERROR."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from ate.model.verdict import Verdict
from tests.rf.conftest import RfBench, rf_sequence


async def test_good_units_pass_every_rf_step(make_rf_bench: Any, tmp_path: Path) -> None:
    bench: RfBench = make_rf_bench()
    seq = rf_sequence(tmp_path)
    await bench.calibrate(seq)
    result = await bench.run(seq)
    for slot, r in result.slots.items():
        assert r.verdict is Verdict.PASS, (slot, r.reason)
        values = {m.name: m.value for s in r.steps for m in s.measurements}
        assert set(values) >= {
            "rf.wifi_tx.ch6.rssi",
            "rf.wifi_tx.ch6.rssi_raw",
            "rf.wifi_tx.ch6.freq_offset",
            "rf.wifi_tx.ch6.per",
            "rf.wifi_rx.ch6.rssi",
            "rf.ble_tx.ch37.per",
            "rf.ble_rx.ch37.rssi_raw",
        }
        # corrected = raw + the slot's calibrated path loss (about 40 dB in the twin)
        gain = values["rf.wifi_tx.ch6.rssi"] - values["rf.wifi_tx.ch6.rssi_raw"]
        assert 35 < gain < 45
