"""Provisioning time per unit, without wire time: units tested and then provisioned and
locked end to end (device key and CSR, issuance, proof, serial eFuse, partitions written
and read back, production firmware, the whole eFuse plan), against simulated units in a
child process whose links are not throttled to a UART's baud rate.

`python -m bench.provision` prints the figures; `python -m bench` includes them.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from ate.config.loader import load_fixture, load_sequence
from ate.model.events import Event, SlotEnded, SlotPhase
from ate.model.verdict import Verdict
from ate.scheduler.bus import EventBus
from ate.sim.devkit import make_dev_profile
from ate.station.provisioning import open_provisioning
from ate.station.runner import run_one_panel
from bench.simproc import REPO, SimProcess, write_fixture

SEQUENCE = REPO / "sequences" / "minimal.yaml"


def _cpu_s() -> float:
    t = os.times()
    return t.user + t.system


def provision_panel(tmp: Path, slots: int, profile: Path) -> dict[str, Any]:
    """One panel of `slots` fresh units; per-unit provisioning wall time (from the slot
    entering its provisioning phase to its end) and the station's CPU for the panel."""
    fixture_path = write_fixture(tmp, f"prov{slots}", slots, seed=slots)
    fixture = load_fixture(fixture_path)
    sequence = load_sequence(SEQUENCE)
    began: dict[int, float] = {}
    took: dict[int, float] = {}

    def watch(event: Event) -> None:
        if isinstance(event, SlotPhase) and event.phase == "provision":
            began[event.slot] = time.perf_counter()
        elif isinstance(event, SlotEnded) and event.result.slot in began:
            took[event.result.slot] = time.perf_counter() - began[event.result.slot]

    station = open_provisioning(
        profile,
        sequence,
        state_dir=tmp / f"state{slots}",
        out_dir=tmp / f"out{slots}",
        station="bench",
        operator="bench",
    )
    try:
        with SimProcess(fixture_path) as endpoints:
            bus = EventBus()
            bus.subscribe(watch)
            cpu0, wall0 = _cpu_s(), time.perf_counter()
            result = asyncio.run(
                run_one_panel(
                    fixture,
                    sequence,
                    bus,
                    sim=endpoints,
                    station="bench",
                    operator="bench",
                    provisioner=station.provisioner,
                )
            )
            wall, cpu = time.perf_counter() - wall0, _cpu_s() - cpu0
    finally:
        station.close()
    bad = {s: r.reason for s, r in result.slots.items() if r.verdict is not Verdict.PASS}
    if bad:
        raise RuntimeError(f"bench units did not provision: {bad}")
    return {
        "per_unit_s": sum(took.values()) / len(took),
        "panel_s": wall,
        "cpu_s": cpu,
    }


def run(tmp: Path) -> list[tuple[str, str, str]]:
    kit = make_dev_profile(tmp / "kit")
    one = provision_panel(tmp, 1, kit.profile)
    four = provision_panel(tmp, 4, kit.profile)
    return [
        (
            "provisioning per unit, no wire time",
            f"{one['per_unit_s']:.2f} s",
            f"one unit alone; {four['per_unit_s']:.2f} s each with 4 in parallel "
            f"(whole panel {four['panel_s']:.2f} s incl. tests)",
        ),
        (
            "station CPU, test + provision a unit",
            f"{four['cpu_s'] / 4 * 1e3:.0f} ms",
            f"4-unit panel; {one['cpu_s'] * 1e3:.0f} ms for one unit alone",
        ),
    ]


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for row in run(Path(tmp)):
            print(" | ".join(row))


if __name__ == "__main__":
    main()
