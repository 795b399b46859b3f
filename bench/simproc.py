"""Simulated fixtures in their own processes (`ate sim fixture`), as separate hardware
would be, so the executive's CPU and wall time are measured alone."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from ate.config.loader import LoadedSequence, load_fixture
from ate.model.events import Event
from ate.model.verdict import Verdict
from ate.scheduler.bus import EventBus
from ate.scheduler.panel import PanelResult
from ate.sim.fixture_doc import sim_fixture_doc
from ate.station.provisioning import open_provisioning
from ate.station.runner import Endpoints, run_one_panel

REPO = Path(__file__).resolve().parent.parent
BOARD = REPO / "fixtures" / "sim" / "board-s3-devkit.yaml"
SEQUENCE = REPO / "sequences" / "s3-devkit-functional.yaml"
# The units come with the test firmware: panels find it by MD5 and skip the write, so
# (b)-(d) measure the test protocol and the panel flow, not flashing (bench/flashing.py).
TEST_FW = REPO / "firmware" / "test_fw" / "sim" / "ate_test_fw-esp32s3.bin"


def write_fixture(
    tmp: Path, name: str, slots: int, *, zero_latency: bool = False, seed: int = 1
) -> Path:
    board = yaml.safe_load(BOARD.read_text())
    if zero_latency:  # the raw transport round trip, no simulated firmware time
        board["latency_ms"] = dict.fromkeys(board.get("latency_ms", {"default": 0}), 0.0)
        board["boot_ms"] = 0
    board_path = tmp / f"{name}-board.yaml"
    board_path.write_text(yaml.safe_dump(board, sort_keys=False))
    doc = sim_fixture_doc(name, board_path.name, slots)
    doc["simulation"].update(seed=seed, preflash=str(TEST_FW))
    path = tmp / f"{name}.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


class SimProcess:
    """`with SimProcess(fixture) as endpoints:` runs the twin in a child process."""

    def __init__(self, fixture: Path, transport: str = "pty") -> None:
        self.fixture = fixture
        self.transport = transport
        self.proc: subprocess.Popen[str] | None = None
        self.line_time: dict[str, Any] | None = None

    def __enter__(self) -> Endpoints:
        exe = shutil.which("ate")
        cmd = [exe] if exe else [sys.executable, "-m", "ate.cli.main"]
        self.proc = subprocess.Popen(
            [*cmd, "sim", "fixture", str(self.fixture), "--transport", self.transport],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        assert self.proc.stdout is not None
        info: dict[str, Any] = json.loads(self.proc.stdout.readline())
        return Endpoints(
            info["controller"],
            {int(k): v for k, v in info["slots"].items()},
            dict(info.get("golden", {})),
        )

    def __exit__(self, *exc: object) -> None:
        assert self.proc is not None
        self.proc.terminate()
        rest, _ = self.proc.communicate(timeout=10)
        # Under `timing: line` the twin prints the model's account as it stops.
        for line in rest.splitlines():
            with contextlib.suppress(ValueError):
                doc = json.loads(line)
                if isinstance(doc, dict) and "line_time" in doc:
                    self.line_time = doc["line_time"]


def cpu_s() -> float:
    """This process's user + system CPU seconds (the station's, the twin is a child)."""
    t = os.times()
    return t.user + t.system


def provisioned_panel(
    fixture_path: Path,
    sequence: LoadedSequence,
    profile: Path,
    where: Path,
    watch: Callable[[Event], None] | None = None,
) -> tuple[PanelResult, float, float, SimProcess]:
    """One panel with provisioning, the twin in its own process, the station's state and
    outputs under `where`: (result, wall s, station CPU s, the stopped SimProcess).
    Every unit must pass and lock; anything else stops the bench with the reasons."""
    results, wall, cpu, sims = provisioned_panels([fixture_path], sequence, profile, where, watch)
    return results[0], wall, cpu, sims[0]


def provisioned_panels(
    fixture_paths: list[Path],
    sequence: LoadedSequence,
    profile: Path,
    where: Path,
    watch: Callable[[Event], None] | None = None,
) -> tuple[list[PanelResult], float, float, list[SimProcess]]:
    """A panel on each fixture at once, in this one process with one provisioning
    station, as a fixture PC drives its fixtures; each twin in its own process."""
    fixtures = [load_fixture(path) for path in fixture_paths]
    station = open_provisioning(
        profile,
        sequence,
        state_dir=where / "state",
        out_dir=where / "out",
        station="bench",
        operator="bench",
    )
    sims = [SimProcess(path) for path in fixture_paths]
    try:
        with contextlib.ExitStack() as stack:
            endpoints = [stack.enter_context(sim) for sim in sims]
            bus = EventBus()
            if watch is not None:
                bus.subscribe(watch)

            async def panels() -> list[PanelResult]:
                return await asyncio.gather(
                    *(
                        run_one_panel(
                            fixture,
                            sequence,
                            bus,
                            sim=ends,
                            station="bench",
                            operator="bench",
                            provisioner=station.provisioner,
                        )
                        for fixture, ends in zip(fixtures, endpoints, strict=True)
                    )
                )

            cpu0, wall0 = cpu_s(), time.perf_counter()
            results = asyncio.run(panels())
            wall, cpu = time.perf_counter() - wall0, cpu_s() - cpu0
    finally:
        station.close()
    bad = {
        (i, s): r.reason
        for i, result in enumerate(results)
        for s, r in result.slots.items()
        if r.verdict is not Verdict.PASS
    }
    if bad:
        raise RuntimeError(f"bench units did not pass and lock: {bad}")
    return results, wall, cpu, sims
