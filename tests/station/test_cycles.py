"""Clamp cycles through one running daemon: every close (debounced) runs one panel, an
open clamp never ends the process, the verdicts reach the LEDs and the buzzer."""

from __future__ import annotations

import json
from pathlib import Path

from ate.model.verdict import Verdict
from tests.station.conftest import panels, running, wait_status, write_station

CYCLES = 5


async def test_five_clamp_cycles_through_one_daemon(tmp_path: Path) -> None:
    path = write_station(
        tmp_path,
        [
            (
                "fx1",
                {
                    "slots": 2,
                    "sim_slots": {2: {"faults": {"stuck_gpio": [{"pin": 5, "level": 0}]}}},
                },
            )
        ],
    )
    async with running(path) as station:
        twin = station.twins["fx1"]
        # The simulated clamp starts closed: the first panel runs without a hand.
        for n in range(1, CYCLES + 1):
            await wait_status(
                station,
                lambda st, n=n: (
                    st.fixtures["fx1"].panels == n and st.fixtures["fx1"].state == "done"
                ),
            )
            fs = station.status.fixtures["fx1"]
            assert fs.last_verdicts == {1: Verdict.PASS, 2: Verdict.FAIL}
            assert "gpio_loopback" in fs.last_reasons[2]
            assert twin.led(1) == "pass" and twin.led(2) == "fail"
            twin.set_clamp(False)
            await wait_status(station, lambda st: st.fixtures["fx1"].state == "waiting")
            assert panels(station, "fx1") == n  # an open clamp starts nothing, ends nothing
            if n < CYCLES:
                twin.set_clamp(True)
        assert twin.buzzes == ["fail"] * CYCLES
        fs = station.status.fixtures["fx1"]
        assert fs.counts == {"PASS": CYCLES, "FAIL": CYCLES}
        assert fs.online
    records = sorted((tmp_path / "out" / "records").glob("*.json"))
    assert len(records) == 2 * CYCLES
    verdicts = sorted(json.loads(p.read_text())["verdict"] for p in records)
    assert verdicts == ["FAIL"] * CYCLES + ["PASS"] * CYCLES


async def test_a_bouncing_clamp_starts_one_panel(tmp_path: Path) -> None:
    """Closed for less than the debounce time, then open: no panel. The clamp must then
    stay closed for the whole debounce time before one panel starts."""
    path = write_station(tmp_path, [("fx1", {"slots": 1})], debounce="300ms")
    async with running(path) as station:
        twin = station.twins["fx1"]
        await wait_status(station, lambda st: st.fixtures["fx1"].state == "done")
        twin.set_clamp(False)
        await wait_status(station, lambda st: st.fixtures["fx1"].state == "waiting")
        seen: list[str] = []
        station.status.subscribe(lambda st: seen.append(st.fixtures["fx1"].state))
        twin.set_clamp(True)
        await wait_status(station, lambda st: st.fixtures["fx1"].state == "debouncing")
        twin.set_clamp(False)  # a bounce inside the window
        await wait_status(station, lambda st: st.fixtures["fx1"].state == "waiting")
        assert panels(station, "fx1") == 1
        twin.set_clamp(True)
        await wait_status(station, lambda st: st.fixtures["fx1"].panels == 2)
        transitions = [s for i, s in enumerate(seen) if i == 0 or seen[i - 1] != s]
        assert transitions.count("testing") == 1
        assert transitions.index("testing") > transitions.index("debouncing")
