"""Units per hour of a quad fixture under the line-time model (`simulation: {timing:
line}`, ate/sim/timing.py): the full flow on fresh units - the test firmware flashed
(blank flash), the sequence, then provisioning with a development kit as
bench/provision.py does, and lock-down - against the floor computed from the model.

The floor. The twin keeps, per unit, the model's own time for what was done to it, as
if the station answered instantly: its ROM side (every byte on the wire at the baud of
the moment, flash erase/program and eFuse program time not hidden behind the wire), its
firmware side (boot, key generation, signatures, RF packets, command latencies, sleep
holds) and the fixture's instruments on its slot. A panel cannot end before its slowest
unit, nor before a shared resource has served every unit (the golden board: the RF time
of all units; the DMM: all its readings). So

    floor UPH = units x 3600 / max(slowest unit, golden board busy, DMM busy)

and the ratio is measured UPH over floor UPH (goal >= 0.95). The floor counts the
operations the station actually asked for (three esptool sessions, each uploading the
stub at 115200 baud, reads back, MD5s), so it measures the executive against the line
model, not the flow against a leaner one. Seed 001's station made ~120 units per hour.

`python -m bench.line_time [--sequence minimal|functional]`; `python -m bench` includes it.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ate.config.loader import load_sequence
from ate.sim.devkit import make_dev_profile
from bench.simproc import REPO, provisioned_panel, write_fixture

SEQUENCES = {
    "minimal": REPO / "sequences" / "minimal.yaml",
    "functional": REPO / "sequences" / "s3-devkit-functional.yaml",
}
SEED_001_UPH = 120.0  # seed 001: "Throughput: ~120 devices/hour per station"


def line_fixture(tmp: Path, name: str, slots: int) -> Path:
    """The bench fixture with blank units (no preflash: the flow writes the test
    firmware) under the line-time model."""
    path = write_fixture(tmp, name, slots, seed=slots)
    doc = yaml.safe_load(path.read_text())
    doc["simulation"].pop("preflash", None)
    doc["simulation"]["timing"] = "line"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def floor_from(account: dict[str, Any]) -> dict[str, float]:
    """The floor's parts from the twin's account (SimFixture.line_time)."""
    units = account["slots"]
    slowest = max(u["unit_s"] for u in units.values())
    golden = sum(u["rf_s"] for u in units.values())
    dmm = float(account["dmm_busy_s"])
    return {
        "floor_s": max(slowest, golden, dmm),
        "slowest_unit_s": slowest,
        "golden_busy_s": golden,
        "dmm_busy_s": dmm,
        "rom_s": max(u["rom_s"] for u in units.values()),
        "firmware_s": max(u["firmware_s"] for u in units.values()),
    }


def full_flow_panel(tmp: Path, slots: int, profile: Path, sequence: Path) -> dict[str, Any]:
    """One panel of `slots` blank units through the whole flow under the line model."""
    name = f"line{slots}-{sequence.stem}"
    fixture_path = line_fixture(tmp, name, slots)
    _, wall, cpu, sim = provisioned_panel(
        fixture_path, load_sequence(sequence), profile, tmp / name
    )
    if sim.line_time is None:
        raise RuntimeError("the simulated fixture gave no line-time account")
    floor = floor_from(sim.line_time)
    uph = slots * 3600.0 / wall
    floor_uph = slots * 3600.0 / floor["floor_s"]
    return {
        "slots": slots,
        "wall_s": wall,
        "cpu_s": cpu,
        "uph": uph,
        "floor_uph": floor_uph,
        "ratio": uph / floor_uph,
        "seed_ratio": uph / SEED_001_UPH,
        **floor,
    }


def rows_for(r: dict[str, Any], sequence: str) -> list[tuple[str, str, str]]:
    return [
        (
            f"line time: quad fixture, full flow ({sequence}), units per hour",
            f"{r['uph']:.0f} UPH",
            f"panel of {r['slots']} in {r['wall_s']:.2f} s; {r['seed_ratio']:.2f}x seed 001's "
            f"{SEED_001_UPH:.0f} UPH per station",
        ),
        (
            "line time: against the model's floor",
            f"{r['ratio']:.3f}",
            f"floor {r['floor_uph']:.0f} UPH = {r['slots']} units / {r['floor_s']:.2f} s "
            f"(slowest unit: ROM side {r['rom_s']:.2f} s + firmware {r['firmware_s']:.2f} s; "
            f"golden board {r['golden_busy_s']:.2f} s, DMM {r['dmm_busy_s']:.2f} s); "
            f"goal >= 0.95; station CPU {r['cpu_s'] / r['slots']:.2f} s a unit",
        ),
    ]


def run(tmp: Path, sequence: str = "minimal") -> list[tuple[str, str, str]]:
    kit = make_dev_profile(tmp / "kit-line")
    return rows_for(full_flow_panel(tmp, 4, kit.profile, SEQUENCES[sequence]), sequence)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequence", choices=sorted(SEQUENCES), default="minimal")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for row in run(Path(tmp), args.sequence):
            print(" | ".join(row))


if __name__ == "__main__":
    main()
