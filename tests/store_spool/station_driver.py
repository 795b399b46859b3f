"""A station process for the kill tests: a simulated fixture (its twin on a thread), a
StoreSink on the station spool, panels run with run_one_panel. It prints one line per
event, after the sink has seen it ("spooled <record_id>" once a unit record is in the
spool), so the parent can kill it (SIGKILL) at a moment it chooses.

    python -m tests.store_spool.station_driver --fixture F --sequence S --spool P --db URL
        [--panels N] [--crash-after ingest:N|audit:N]

--crash-after ends the process (os._exit) right after the store has taken the Nth
record or audit entry, before the spool marks it delivered: the worst moment.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path
from typing import Any

from ate.config.loader import load_fixture, load_sequence
from ate.model.events import Event, SlotEnded
from ate.scheduler.bus import EventBus
from ate.scheduler.slot import SlotOptions
from ate.sim.fixture_twin import SimFixtureThread
from ate.station.runner import Endpoints, run_one_panel
from ate.station.store_sink import StoreSink
from ate.store.api import AuditEntry, Store, open_store

STATION = "st-kill"
FAST = SlotOptions(boot_timeout=2.0, request_timeout=0.15, request_attempts=3)


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class CrashingStore:
    """The real store; the process dies right after the Nth call of `what` returns."""

    def __init__(self, inner: Store, what: str, n: int) -> None:
        self._inner, self._what, self._left = inner, what, n

    def _count(self, what: str) -> None:
        if what == self._what:
            self._left -= 1
            if self._left == 0:
                say(f"crash after {what}")
                os._exit(9)

    def ingest(self, record: dict[str, Any]) -> bool:
        new = self._inner.ingest(record)
        self._count("ingest")
        return new

    def audit_append(
        self, station: str, kind: str, payload: dict[str, Any], signer: Any = None
    ) -> AuditEntry:
        entry = self._inner.audit_append(station, kind, payload, signer)
        self._count("audit")
        return entry

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixture", required=True)
    ap.add_argument("--sequence", required=True)
    ap.add_argument("--spool", required=True)
    ap.add_argument("--db", required=True)
    ap.add_argument("--panels", type=int, default=1)
    ap.add_argument("--crash-after", default=None)
    args = ap.parse_args()
    fixture = load_fixture(Path(args.fixture))
    sequence = load_sequence(Path(args.sequence))

    opener = None
    if args.crash_after:
        what, _, n = args.crash_after.partition(":")

        def opener(url: str) -> Store:
            return CrashingStore(open_store(url), what, int(n))  # type: ignore[return-value]

    with SimFixtureThread(fixture.model, fixture.base_dir) as twin:
        endpoints = Endpoints(twin.controller_endpoint, dict(twin.endpoints))
        sink = StoreSink.start(
            args.db,
            Path(args.spool),
            station=STATION,
            operator="op1",
            opener=opener,
            backoff_initial=0.05,
            backoff_max=0.2,
        )
        bus = EventBus()
        sink.attach(bus)  # first: a unit is reported done only once it is spooled

        def report(event: Event) -> None:
            if isinstance(event, SlotEnded):
                say(f"spooled {event.panel_id}-slot{event.result.slot}")
            else:
                say(f"event {type(event).__name__}")

        bus.subscribe(report)

        async def run() -> None:
            for _ in range(args.panels):
                await run_one_panel(
                    fixture,
                    sequence,
                    bus,
                    sim=endpoints,
                    station=STATION,
                    operator="op1",
                    options=FAST,
                )
            say(f"drained {await sink.drain(30.0)}")

        asyncio.run(run())
        sink.close()
    say("done")
    return 0


if __name__ == "__main__":
    sys.exit(main())
