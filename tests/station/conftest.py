"""Station files on simulated fixtures (socket transport, so a controller can be
unplugged), a quick sequence, and an in-process Station driven through its status."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import yaml

from ate.scheduler.slot import SlotOptions
from ate.station.daemon import Station
from ate.station.status import StationStatus
from tests.scheduler.conftest import write_fixture, write_sequence

# A hang guard for waits on status changes, not a timing check.
WAIT_S = 60.0
FAST = SlotOptions(boot_timeout=2.0, request_timeout=0.15, request_attempts=3)


def quick(doc: dict[str, Any]) -> None:
    """Few steps, no esptool: the units come with the test firmware."""
    keep = {"gpio_loopback", "boot_pin", "vref_divider", "rail_3v3"}
    doc["steps"] = [s for s in doc["steps"] if s["name"] in keep]
    doc["test_firmware"]["flash"] = "never"


def write_station(
    tmp: Path,
    fixtures: list[tuple[str, dict[str, Any]]] | None = None,
    fixtures_extra: dict[str, Any] | None = None,
    **overrides: Any,
) -> Path:
    """A station file with fixtures written by write_fixture(name, **kw) (preflashed);
    `fixtures_extra` goes into every fixture's entry of the station file."""
    seq = write_sequence(tmp, quick)
    image = str(yaml.safe_load(seq.read_text())["test_firmware"]["path"])
    entries = []
    for n, (name, kw) in enumerate(fixtures or [("fx1", {})]):
        trigger = kw.pop("trigger", "clamp")
        # Each fixture its own simulated units: one seed would give both the same MACs,
        # and two panels at once reporting one MAC are an identity clash (ERROR).
        kw.setdefault("seed", 7 + n)
        path = write_fixture(tmp, name=name, preflash=image, **kw)
        entries.append({"file": path.name, "trigger": trigger, **(fixtures_extra or {})})
    doc: dict[str, Any] = {
        "station": "st1",
        "fixtures": entries,
        "sequence": seq.name,
        "state": "state",
        "outputs": "out",
        "debounce": "20ms",
        "min_free": 0,
        "retry_max": 0.5,
    }
    doc.update(overrides)
    path = tmp / "station.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


async def wait_status(station: Station, pred: Callable[[StationStatus], bool]) -> None:
    async with asyncio.timeout(WAIT_S):
        await station.status.wait_for(pred)


@asynccontextmanager
async def running(path: Path) -> AsyncIterator[Station]:
    """A Station on `path` running in this loop; stopped (and checked to exit 0) after."""
    station = Station(path, transport="socket", options=FAST)
    task = asyncio.create_task(station.run())
    try:
        async with asyncio.timeout(WAIT_S):
            await asyncio.wait(
                {task, asyncio.ensure_future(station.wait_ready())},
                return_when=asyncio.FIRST_COMPLETED,
            )
        if task.done():
            task.result()  # raise what stopped it
        yield station
    finally:
        station.request_stop()
        async with asyncio.timeout(WAIT_S):
            code = await task
        assert code == 0


def panels(station: Station, fixture: str) -> int:
    return station.status.fixtures[fixture].panels
