"""Each fault knob gives the expected verdict and reason in exactly the faulted slot of a
4-slot panel; the other three pass. Runs every step type of the example S3 sequence
against the simulated boards through real ptys."""

from __future__ import annotations

import re
from typing import Any

import pytest

from ate.model.verdict import Verdict
from tests.scheduler.conftest import Bench

FAULTS: list[tuple[str, dict[str, Any], Verdict, str]] = [
    (
        "stuck_gpio",
        {"stuck_gpio": [{"pin": 5, "level": 0}]},
        Verdict.FAIL,
        "gpio_loopback: gpio4->gpio5@1 = 0, wanted == 1",
    ),
    ("shorted_gpio", {"shorted_gpio": [[4, 6]]}, Verdict.FAIL, "gpio_loopback: gpio"),
    ("missing_i2c", {"missing_i2c": [0x68]}, Verdict.FAIL, "imu_present: i2c0@0x68.ack = NACK"),
    ("wrong_jedec", {"jedec_id": 0xC84017}, Verdict.FAIL, "spi1.jedec = 0xc84017"),
    (
        "over_current",
        {"over_current": {"mode": "idle", "factor": 3.0}},
        Verdict.FAIL,
        "current.idle",
    ),
    (
        "low_rail",
        {"rail_v": {"3v3": 2.95}},
        Verdict.FAIL,
        r"rail_3v3: rail.3v3 = 2.9[45]\d* V, wanted 3.2 .. 3.4 V",
    ),
    ("hang", {"hang_after": 12}, Verdict.ERROR, "no reply to"),
    ("no_ready", {"no_ready": True}, Verdict.ERROR, "boot: no READY"),
    (
        "garbage_every_line",
        {"garbage": {"probability": 1.0, "max_bytes": 8, "mid_line": True}},
        Verdict.ERROR,
        "",
    ),
]


@pytest.mark.parametrize(
    ("knob", "faults", "verdict", "reason"), FAULTS, ids=[f[0] for f in FAULTS]
)
async def test_fault_lands_in_exactly_its_slot(
    make_bench: Any, knob: str, faults: dict[str, Any], verdict: Verdict, reason: str
) -> None:
    bench: Bench = make_bench(sim_slots={2: {"faults": faults}})
    result = await bench.run()
    faulted = result.slots[2]
    assert faulted.verdict is verdict, faulted.reason
    assert reason in faulted.reason or re.search(reason, faulted.reason), faulted.reason
    for slot in (1, 3, 4):
        assert result.slots[slot].verdict is Verdict.PASS, result.slots[slot].reason
    assert not result.aborted


async def test_healthy_panel_measures_every_step_type(make_bench: Any) -> None:
    bench: Bench = make_bench()
    result = await bench.run()
    types = {s.type for s in result.slots[1].steps}
    assert types >= {
        "gpio_loopback",
        "gpio_read",
        "i2c_probe",
        "i2c_read",
        "spi_jedec",
        "spi_transfer",
        "adc",
        "rail_voltage",
        "supply_current",
        "rf_golden",
    }
    for r in result.slots.values():
        assert r.verdict is Verdict.PASS, r.reason
        assert r.unit is not None and r.unit.mac.startswith("24:0a:c4")
        assert all(s.measurements for s in r.steps)
    assert len({r.unit.mac for r in result.slots.values() if r.unit}) == 4
    # Deep sleep current is reported in the limit's unit (uA), converted from mA.
    deep = next(s for s in result.slots[1].steps if s.name == "current_deep_sleep")
    assert deep.measurements[0].unit == "uA" and 1 < float(deep.measurements[0].value) < 100


@pytest.mark.parametrize(
    "faults",
    [
        {"garbage": {"probability": 0.3, "max_bytes": 24, "mid_line": True}},
        {"garbage": {"probability": 0.5, "max_bytes": 40, "mid_line": False}},
        {"drop_reply": {"probability": 0.2}},
    ],
    ids=["garbage_in_replies", "garbage_lines", "dropped_lines"],
)
async def test_noise_and_dropped_lines_cost_resends_not_verdicts(
    make_bench: Any, faults: dict[str, Any]
) -> None:
    """Garbage and dropped lines at these rates are absorbed by resends (same id, answered
    from the DUT's cache): the verdicts are those of a clean panel."""
    bench: Bench = make_bench(sim_slots={3: {"faults": faults}})
    result = await bench.run()
    assert {s: r.verdict for s, r in result.slots.items()} == dict.fromkeys(
        (1, 2, 3, 4), Verdict.PASS
    ), {s: r.reason for s, r in result.slots.items()}
