"""(c) Panel wall time of 4 slots over 1 slot; (d) 8 fixtures x 4 slots in one process.

Simulated boards keep realistic firmware latencies (0.2-2 ms a command, 250 ms boot,
20 ms a DMM reading, ~1 ms a golden-board packet) and run in child processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from pathlib import Path
from typing import Any

from ate.config.loader import load_fixture, load_sequence
from ate.model.verdict import Verdict
from ate.scheduler.bus import EventBus
from ate.station.runner import run_one_panel
from bench.simproc import SEQUENCE, SimProcess, cpu_s, write_fixture


def run_panels(
    tmp: Path, fixtures: int, slots: int, repeats: int = 5, sequence: Path = SEQUENCE
) -> dict[str, Any]:
    """Median wall time of `repeats` panels on `fixtures` fixtures at once."""
    seq = load_sequence(sequence)
    paths = [write_fixture(tmp, f"f{fixtures}x{slots}-{i}", slots, seed=i) for i in range(fixtures)]
    loaded = [load_fixture(p) for p in paths]
    walls, cpus, busy = [], [], []
    with contextlib.ExitStack() as stack:
        endpoints = [stack.enter_context(SimProcess(p)) for p in paths]
        for _ in range(repeats):
            bus = EventBus()

            async def all_panels(bus: EventBus = bus) -> list[Any]:
                return await asyncio.gather(
                    *(
                        run_one_panel(f, seq, bus, sim=ep, station="bench", operator="bench")
                        for f, ep in zip(loaded, endpoints, strict=True)
                    )
                )

            cpu0, t0 = cpu_s(), time.perf_counter()
            results = asyncio.run(all_panels())
            walls.append(time.perf_counter() - t0)
            cpus.append(cpu_s() - cpu0)
            verdicts = {r.verdict for res in results for r in res.slots.values()}
            assert verdicts == {Verdict.PASS}, verdicts
            busy.append(max(max(res.resource_busy_s.values()) for res in results))
    wall = statistics.median(walls)
    return {
        "wall_s": wall,
        "cpu_s": statistics.median(cpus),
        "cpu_pct": 100 * statistics.median(cpus) / wall,
        "busiest_resource_s": statistics.median(busy),
    }
