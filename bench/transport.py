"""(b) One request's round trip to a simulated DUT over its real transport."""

from __future__ import annotations

import asyncio
import statistics
import time
from pathlib import Path

from ate.drivers.dut import TestFirmwareClient
from ate.drivers.fixture import LineFixtureController
from ate.drivers.line_client import LineClient
from bench.simproc import SimProcess, write_fixture


async def _round_trips(endpoints_controller: str, dut_endpoint: str, n: int) -> list[float]:
    ctrl = await LineFixtureController.open(endpoints_controller)
    line = await LineClient.open(dut_endpoint, name="bench")
    dut = TestFirmwareClient(line)
    ready = line.expect_notice("READY")
    await ctrl.power(1, True)
    await ctrl.strap(1, "run")
    await asyncio.wait_for(ready, 5)
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        await dut.gpio_get(0)
        samples.append(time.perf_counter() - t0)
    await line.close()
    await ctrl.power(1, False)
    await ctrl.close()
    return samples


def round_trip(tmp: Path, transport: str, n: int = 3000) -> dict[str, float]:
    fixture = write_fixture(tmp, f"rt-{transport}", 1, zero_latency=True)
    with SimProcess(fixture, transport) as ep:
        samples = asyncio.run(_round_trips(ep.controller, ep.slots[1], n))
    samples.sort()
    return {
        "median_ms": statistics.median(samples) * 1e3,
        "p99_ms": samples[int(len(samples) * 0.99)] * 1e3,
        "n": n,
    }
