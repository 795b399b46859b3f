"""Soak of the station daemon: `python -m bench.station --panels 1000`.

One in-process Station on a simulated 4-slot fixture (zero firmware latency, preflashed,
a short sequence without esptool), driven through N clamp cycles by the bench closing and
opening the simulated clamp. Prints RSS, open file descriptors, asyncio tasks and threads
after the first panel and after the last (growth means a leak), and the time from the
clamp closing to the first slot being powered (median and p99). Waits on status
changes, never on sleeps.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

from ate.model.events import Event, SlotPhase
from ate.scheduler.slot import SlotOptions
from ate.station.daemon import Station
from bench.simproc import SEQUENCE, write_fixture

WAIT_S = 60.0


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _probe() -> dict[str, int]:
    return {
        "rss_kib": _rss_kib(),
        "fds": len(os.listdir("/proc/self/fd")),
        "tasks": len(asyncio.all_tasks()),
        "threads": threading.active_count(),
    }


def _write_station(tmp: Path, debounce: float) -> Path:
    fixture = write_fixture(tmp, "soak", 4, zero_latency=True)
    doc = yaml.safe_load(SEQUENCE.read_text())
    doc["test_firmware"]["path"] = str((SEQUENCE.parent / doc["test_firmware"]["path"]).resolve())
    doc["test_firmware"]["flash"] = "never"
    keep = {"gpio_loopback", "boot_pin", "rail_3v3"}
    doc["steps"] = [s for s in doc["steps"] if s["name"] in keep]
    (tmp / "seq.yaml").write_text(yaml.safe_dump(doc, sort_keys=False))
    st = {
        "station": "soak",
        "fixtures": [{"file": fixture.name}],
        "sequence": "seq.yaml",
        "state": "state",
        "outputs": "out",
        "debounce": debounce,
        "min_free": "100MB",
    }
    path = tmp / "station.yaml"
    path.write_text(yaml.safe_dump(st, sort_keys=False))
    return path


async def soak(panels: int, debounce: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="ate-soak-") as tmp:
        station = Station(
            _write_station(Path(tmp), debounce),
            options=SlotOptions(boot_timeout=2.0, request_timeout=0.5),
        )
        powered: dict[str, float] = {}

        def on_event(e: Event) -> None:
            if isinstance(e, SlotPhase) and e.phase in ("power", "rom"):
                powered.setdefault(e.panel_id, time.perf_counter())

        station.bus.subscribe(on_event)
        task = asyncio.create_task(station.run())
        await asyncio.wait_for(station.wait_ready(), WAIT_S)
        twin = station.twins["soak"]
        st = station.status

        async def until(pred: Any) -> None:
            async with asyncio.timeout(WAIT_S):
                await st.wait_for(pred)

        # The clamp starts closed: panel 1 is the warm-up.
        await until(lambda s: s.fixtures["soak"].panels == 1 and s.fixtures["soak"].state == "done")
        start = _probe()
        latencies = []
        t_start = time.perf_counter()
        for n in range(2, panels + 1):
            await asyncio.to_thread(twin.set_clamp, False)
            await until(lambda s: s.fixtures["soak"].state == "waiting")
            seen = set(powered)
            closed_at = time.perf_counter()
            await asyncio.to_thread(twin.set_clamp, True)
            await until(
                lambda s, n=n: s.fixtures["soak"].panels == n and s.fixtures["soak"].state == "done"
            )
            new = [p for p in powered if p not in seen]
            latencies.append((powered[new[0]] - closed_at) * 1000)
        wall = time.perf_counter() - t_start
        end = _probe()
        counts = dict(st.fixtures["soak"].counts)
        station.request_stop()
        code = await asyncio.wait_for(task, WAIT_S)
    latencies.sort()
    return {
        "panels": panels,
        "exit": code,
        "start": start,
        "end": end,
        "counts": counts,
        "wall_s": wall,
        "median_ms": statistics.median(latencies) if latencies else float("nan"),
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        if latencies
        else float("nan"),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--panels", type=int, default=1000)
    ap.add_argument("--debounce", type=float, default=0.0, help="seconds (default 0)")
    args = ap.parse_args()
    r = asyncio.run(soak(args.panels, args.debounce))
    s, e = r["start"], r["end"]
    print(f"station soak: {r['panels']} panels of 4 slots, exit {r['exit']}, units {r['counts']}")
    print(
        f"  after panel 1:        RSS {s['rss_kib'] / 1024:.1f} MiB, {s['fds']} fds, "
        f"{s['tasks']} tasks, {s['threads']} threads"
    )
    print(
        f"  after panel {r['panels']}: RSS {e['rss_kib'] / 1024:.1f} MiB, {e['fds']} fds, "
        f"{e['tasks']} tasks, {e['threads']} threads "
        f"(RSS +{(e['rss_kib'] - s['rss_kib']) / 1024:.1f} MiB)"
    )
    print(
        f"  clamp closed -> first slot powered: median {r['median_ms']:.1f} ms, "
        f"p99 {r['p99_ms']:.1f} ms (debounce {args.debounce:g} s)"
    )
    print(f"  {r['wall_s'] / max(1, r['panels'] - 1) * 1000:.0f} ms per clamp cycle")


if __name__ == "__main__":
    main()
