"""The operator's page under load: event-to-screen latency and the station's CPU.

8 fixtures x 4 slots of synthetic executive events (panels of 12 steps, one step every
~40 ms a slot, verdicts mixed) feed a StationView served by the real app on uvicorn, in
this process's event loop as in the station. Headless Chromium (the system's) keeps the
page open; the page itself measures, per snapshot it renders, the time from the oldest
event the snapshot carries being emitted to the DOM being updated (wall clock, same
machine). CPU is this process's user+system time over the wall time, the page open.

`python -m bench.page [seconds]`
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import time
from typing import Any

from playwright.async_api import async_playwright

from ate.model.events import (
    PanelEnded,
    PanelStarted,
    SlotEnded,
    SlotStarted,
    StepEnded,
    StepStarted,
    UnitIdentified,
)
from ate.model.limits import Limits
from ate.model.results import Measurement, SlotResult, StepResult, UnitIdentity
from ate.model.verdict import Verdict
from ate.scheduler.bus import EventBus
from ate.ui.app import operator_app, start_page
from ate.ui.view import StationView

FIXTURES, SLOTS, STEPS, STEP_S = 8, 4, 12, 0.040
CHROMIUM = "/usr/bin/chromium"


async def _fixture(bus: EventBus, name: str, rng: random.Random, stop: asyncio.Event) -> int:
    panels = 0
    while not stop.is_set():
        panel = f"{name}-p{panels}"
        seq = {"name": "bench", "version": "1.0.0"}
        slots = tuple(range(1, SLOTS + 1))
        bus.emit(PanelStarted(panel, name, "bench", "op", seq, slots, "t"))

        async def slot(n: int, panel: str = panel) -> Verdict:
            bus.emit(SlotStarted(panel, n))
            mac = f"24:0a:c4:{rng.randrange(256):02x}:{rng.randrange(256):02x}:{n:02x}"
            bus.emit(UnitIdentified(panel, n, UnitIdentity(mac=mac)))
            bad = rng.randrange(STEPS * 6)  # ~1 in 6 units fails one step
            for i in range(STEPS):
                bus.emit(StepStarted(panel, n, i, f"step_{i}", 1))
                await asyncio.sleep(STEP_S * rng.uniform(0.5, 1.5))
                value = 3.3 if i != bad else 2.9
                lim = Limits(low=3.2, high=3.4, unit="V")
                m = Measurement("rail", value, "V", lim, lim.judge(value))
                step = StepResult(i, f"step_{i}", "measure", m.verdict, (m,))
                bus.emit(StepEnded(panel, n, step))
                if m.verdict is not Verdict.PASS:
                    break
            verdict = Verdict.FAIL if bad < STEPS else Verdict.PASS
            bus.emit(SlotEnded(panel, SlotResult(n, verdict, unit=UnitIdentity(mac=mac))))
            return verdict

        verdicts = await asyncio.gather(*(slot(n) for n in slots))
        bus.emit(PanelEnded(panel, dict(zip(slots, verdicts, strict=True)), 0.0, False))
        panels += 1
    return panels


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def run(seconds: float = 10.0) -> dict[str, Any]:
    view = StationView("bench", steps_total=STEPS)
    bus = EventBus()
    bus.subscribe(view.on_event)
    events = 0

    def count(_: object) -> None:
        nonlocal events
        events += 1

    bus.subscribe(count)
    server = await start_page(operator_app(view))
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        page = await browser.new_page(viewport={"width": 1280, "height": 800})
        await page.goto(server.url)
        await page.wait_for_function("window.__ate.version >= 0")
        await page.evaluate("window.__ate.latencies = []")
        stop = asyncio.Event()
        rng = random.Random(1)
        cpu0, wall0 = os.times(), time.monotonic()
        tasks = [
            asyncio.create_task(_fixture(bus, f"f{i + 1}", random.Random(rng.random()), stop))
            for i in range(FIXTURES)
        ]
        await asyncio.sleep(seconds)
        stop.set()
        panels = sum(await asyncio.gather(*tasks))
        cpu1, wall1 = os.times(), time.monotonic()
        await page.wait_for_function(f"window.__ate.version >= {view.version}")
        latencies: list[float] = await page.evaluate("window.__ate.latencies")
        await browser.close()
    await server.close()
    wall = wall1 - wall0
    cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
    return {
        "events": events,
        "events_per_s": events / wall,
        "panels": panels,
        "snapshots": len(latencies),
        "latency_median_ms": statistics.median(latencies),
        "latency_p99_ms": _pct(latencies, 0.99),
        "station_cpu_pct": 100.0 * cpu / wall,
        "wall_s": wall,
    }


def main() -> None:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 10.0
    r = asyncio.run(run(seconds))
    print(f"| fixtures x slots | {FIXTURES} x {SLOTS} |")
    print(f"| events | {r['events']} in {r['wall_s']:.1f} s ({r['events_per_s']:.0f}/s) |")
    print(f"| snapshots rendered | {r['snapshots']} |")
    print(f"| event-to-screen median | {r['latency_median_ms']:.1f} ms |")
    print(f"| event-to-screen p99 | {r['latency_p99_ms']:.1f} ms |")
    print(f"| station CPU, page open | {r['station_cpu_pct']:.0f} % of one core |")


if __name__ == "__main__":
    main()
