"""RF through the golden board: the panel wall time of a quad fixture whose sequence has
wifi_tx, wifi_rx and ble steps on one golden board, under the line-time model
(`simulation: {timing: line}`: every test frame takes its airtime, one every interval),
with `schedule: resource_aware` and with `in_order`, against the lower bound

    max(golden board busy, the longest slot's own work)

where the golden board's busy time is the pool's total holding time of it (every RF
exchange of every slot, one at a time: capacity 1) and a slot's own work is its
duration minus the time its steps waited for a shared resource. Goal: resource_aware
<= 1.05 of the bound. When the golden board is the bottleneck, the bound leaves out that
it stands idle until the first unit has booted and reached an RF step: the row also
gives the ratio over max(that time + golden board busy, longest slot).

The units come with the test firmware (no ROM phase); the fixture is calibrated first by
the golden check (not timed). The twin runs in its own process, as in bench/panel.py.

`python -m bench.rf`; `python -m bench` includes it.
"""

from __future__ import annotations

import asyncio
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

from ate.config.loader import LoadedFixture, load_fixture, load_sequence
from ate.model.results import SlotResult
from ate.model.verdict import Verdict
from ate.rf import calibration
from ate.scheduler.bus import EventBus
from ate.station.golden_check import CheckSpec, run_check
from ate.station.runner import Endpoints, run_one_panel
from bench.simproc import REPO, SimProcess, write_fixture

RF_SEQUENCE = REPO / "sequences" / "s3-rf.yaml"
# The golden check measures the channels the sequence uses, at the board file's power.
CHANNELS: tuple[tuple[Any, int], ...] = (("wifi", 6), ("ble", 37))
REFERENCE_DBM = 20.0
REPEATS = 3


def rf_fixture(tmp: Path, name: str) -> Path:
    path = write_fixture(tmp, name, 4, seed=11)
    doc = yaml.safe_load(path.read_text())
    doc["resources"]["golden"].update(port="sim", calibration=f"{name}-cal.yaml")
    doc["simulation"]["timing"] = "line"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def rf_sequence(tmp: Path, schedule: str) -> Path:
    doc = yaml.safe_load(RF_SEQUENCE.read_text())
    doc["test_firmware"]["path"] = str(
        (RF_SEQUENCE.parent / doc["test_firmware"]["path"]).resolve()
    )
    doc["test_firmware"]["flash"] = "never"
    doc["schedule"] = schedule
    path = tmp / f"rf-{schedule}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def own_work_s(slot: SlotResult) -> float:
    """What the slot would take alone: its time less what it waited for resources."""
    return slot.duration_s - sum(s.resource_wait_s for s in slot.steps)


def _panel(fixture: LoadedFixture, sequence: Path, ep: Endpoints) -> dict[str, float]:
    seq = load_sequence(sequence)
    t0 = time.perf_counter()
    result = asyncio.run(
        run_one_panel(fixture, seq, EventBus(), sim=ep, station="bench", operator="bench")
    )
    wall = time.perf_counter() - t0
    bad = {s: r.reason for s, r in result.slots.items() if r.verdict is not Verdict.PASS}
    if bad:
        raise RuntimeError(f"RF bench units did not pass: {bad}")
    golden = result.resource_busy_s["golden"]
    longest = max(own_work_s(r) for r in result.slots.values())
    # No exchange can start before a unit has booted and reached its first RF step.
    first = min(s.started_s for r in result.slots.values() for s in r.steps if "golden" in s.uses)
    return {
        "wall_s": wall,
        "golden_s": golden,
        "slot_s": longest,
        "first_rf_s": first,
        "bound_s": max(golden, longest),
        "reachable_s": max(first + golden, longest),
    }


def measure(tmp: Path) -> dict[str, dict[str, float]]:
    path = rf_fixture(tmp, "rf-bench")
    fixture = load_fixture(path)
    out: dict[str, dict[str, float]] = {}
    with SimProcess(path) as ep:
        check = CheckSpec("golden", REFERENCE_DBM, CHANNELS)
        first = load_sequence(rf_sequence(tmp, "in_order"))
        made = asyncio.run(run_check(fixture, first, check, ep, previous=None))
        if made.calibration is None:
            raise RuntimeError(f"golden check failed: {made.failed_slots}")
        calibration.save(made.calibration, tmp / "rf-bench-cal.yaml")
        for schedule in ("resource_aware", "in_order"):
            sequence = rf_sequence(tmp, schedule)
            runs = [_panel(fixture, sequence, ep) for _ in range(REPEATS)]
            out[schedule] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
    return out


def rows_from(m: dict[str, dict[str, float]]) -> list[tuple[str, str, str]]:
    rows = []
    for schedule, r in m.items():
        rows.append(
            (
                f"RF: quad panel on one golden board, `{schedule}`, over its bound",
                f"{r['wall_s'] / r['bound_s']:.3f}",
                f"{r['wall_s']:.2f} s; bound {r['bound_s']:.2f} s = max(golden board busy "
                f"{r['golden_s']:.2f} s, longest slot {r['slot_s']:.2f} s)"
                + ("; goal <= 1.05" if schedule == "resource_aware" else "")
                + f"; {r['wall_s'] / r['reachable_s']:.3f} over the bound with the "
                f"{r['first_rf_s']:.2f} s before any unit can reach the golden board",
            )
        )
    return rows


def run(tmp: Path) -> list[tuple[str, str, str]]:
    return rows_from(measure(tmp))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        print("| measure | result | context |\n|---|---|---|")
        for row in run(Path(tmp)):
            print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
