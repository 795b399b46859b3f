"""Provisioning time per unit, without wire time: units tested and then provisioned and
locked end to end (device key and CSR, issuance, proof, serial eFuse, partitions written
and read back, production firmware, the whole eFuse plan), against simulated units in a
child process whose links are not throttled to a UART's baud rate.

`python -m bench.provision` prints the figures; `python -m bench` includes them.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from ate.config.loader import load_sequence
from ate.model.events import Event, SlotEnded, SlotPhase
from ate.sim.devkit import make_dev_profile
from bench.simproc import REPO, provisioned_panel, write_fixture

SEQUENCE = REPO / "sequences" / "minimal.yaml"


def provision_panel(tmp: Path, slots: int, profile: Path) -> dict[str, Any]:
    """One panel of `slots` fresh units; per-unit provisioning wall time (from the slot
    entering its provisioning phase to its end) and the station's CPU for the panel."""
    fixture_path = write_fixture(tmp, f"prov{slots}", slots, seed=slots)
    began: dict[int, float] = {}
    took: dict[int, float] = {}

    def watch(event: Event) -> None:
        if isinstance(event, SlotPhase) and event.phase == "provision":
            began[event.slot] = time.perf_counter()
        elif isinstance(event, SlotEnded) and event.result.slot in began:
            took[event.result.slot] = time.perf_counter() - began[event.result.slot]

    where = tmp / f"prov{slots}"
    _, wall, cpu, _ = provisioned_panel(
        fixture_path, load_sequence(SEQUENCE), profile, where, watch
    )
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
