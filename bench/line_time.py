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

With `--fixtures 8`, also 8 quad fixtures (each its own twin process and seed) run a
panel each at once in this process with one provisioning station, as a fixture PC drives
its fixtures; the figure is their wall time over one panel alone (goal <= 1.10).

`python -m bench.line_time [--sequence minimal|functional] [--fixtures N]`;
`python -m bench` includes the one-fixture rows.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path
from typing import Any

import yaml

from ate.config.loader import load_sequence
from ate.sim.devkit import make_dev_profile
from bench.simproc import REPO, provisioned_panel, provisioned_panels, write_fixture

SEQUENCES = {
    "minimal": REPO / "sequences" / "minimal.yaml",
    "functional": REPO / "sequences" / "s3-devkit-functional.yaml",
}
SEED_001_UPH = 120.0  # seed 001: "Throughput: ~120 devices/hour per station"


def line_fixture(tmp: Path, name: str, slots: int, seed: int | None = None) -> Path:
    """The bench fixture with blank units (no preflash: the flow writes the test
    firmware) under the line-time model."""
    path = write_fixture(tmp, name, slots, seed=slots if seed is None else seed)
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


def fixtures_panel(
    tmp: Path, fixtures: int, profile: Path, sequence: Path, one: dict[str, Any]
) -> dict[str, Any]:
    """`fixtures` quad fixtures of blank units (each its own seed, so its own MACs), one
    panel on each at once in this process, against `one` panel alone."""
    paths = [
        line_fixture(tmp, f"line4x{fixtures}-{i}-{sequence.stem}", 4, seed=100 + i)
        for i in range(fixtures)
    ]
    _, wall, cpu, sims = provisioned_panels(
        paths, load_sequence(sequence), profile, tmp / f"line4x{fixtures}-{sequence.stem}"
    )
    floors = [floor_from(sim.line_time)["floor_s"] for sim in sims if sim.line_time]
    return {
        "fixtures": fixtures,
        "wall_s": wall,
        "ratio": wall / one["wall_s"],
        "floor_s": max(floors),
        "cpu_s": cpu,
        "cpu_unit_s": cpu / (4 * fixtures),
        "one_wall_s": one["wall_s"],
    }


def fixtures_row(r: dict[str, Any], sequence: str) -> tuple[str, str, str]:
    return (
        f"line time: {r['fixtures']} quad fixtures in one process, full flow ({sequence}), "
        "over one panel",
        f"{r['ratio']:.3f}",
        f"{r['wall_s']:.2f} s / {r['one_wall_s']:.2f} s (each fixture's own floor at most "
        f"{r['floor_s']:.2f} s); goal <= 1.10; station CPU {r['cpu_unit_s']:.2f} s a unit, "
        f"{r['cpu_s'] / r['wall_s']:.2f} cores",
    )


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


def run(tmp: Path, sequence: str = "minimal", fixtures: int = 0) -> list[tuple[str, str, str]]:
    kit = make_dev_profile(tmp / "kit-line")
    one = full_flow_panel(tmp, 4, kit.profile, SEQUENCES[sequence])
    rows = rows_for(one, sequence)
    if fixtures:
        many = fixtures_panel(tmp, fixtures, kit.profile, SEQUENCES[sequence], one)
        rows.append(fixtures_row(many, sequence))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sequence", choices=sorted(SEQUENCES), default="minimal")
    parser.add_argument(
        "--fixtures",
        type=int,
        default=0,
        help="also run this many quad fixtures at once in this process (e.g. 8)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for row in run(Path(tmp), args.sequence, args.fixtures):
            print(" | ".join(row))


if __name__ == "__main__":
    main()
