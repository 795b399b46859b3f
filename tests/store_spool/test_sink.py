"""The store sink on the event stream: records and audit entries spooled at once, then
delivered exactly once; a database that is down from the start or dies mid-panel costs
nothing but one warning line."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ate.model.events import Event, SlotEnded
from ate.scheduler.bus import EventBus
from ate.station.store_sink import StoreSink, audit_kind
from ate.store.api import AuditEntry, open_store
from ate.store.audit import verify_chain
from ate.store.queries import known_version
from ate.store.spool import Spool
from tests.store_spool.conftest import Db, PanelMaker, record_ids

DRAIN_S = 30.0  # an upper bound only: drain returns as soon as the spool is empty
UNREACHABLE = "line database unreachable"


@pytest.fixture
def spool_path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "spool.db"


@pytest.fixture
def sinks() -> Iterator[list[StoreSink]]:
    made: list[StoreSink] = []
    yield made
    for sink in made:
        sink.close()


def start(
    sinks: list[StoreSink], db: Db, spool_path: Path, **kw: Any
) -> tuple[StoreSink, EventBus]:
    sink = StoreSink.start(db.url, spool_path, station="st1", operator="op1", **kw)
    sinks.append(sink)
    bus = EventBus()
    sink.attach(bus)
    return sink, bus


def feed(bus: EventBus, sink: StoreSink, events: list[Event]) -> None:
    """Emit events; each unit record must be in the spool when its SlotEnded returns."""
    for event in events:
        bus.emit(event)
        if isinstance(event, SlotEnded):
            rid = f"{event.panel_id}-slot{event.result.slot}"
            assert sink.spool.has(rid), f"{rid} not spooled when SlotEnded returned"
    assert bus.errors == 0


def stored_runs(db: Db) -> dict[str, int]:
    if db.backend == "postgresql" and db.sql("SELECT to_regclass('test_runs')") == [(None,)]:
        return {}
    rows = db.sql("SELECT run_id, COUNT(*) FROM test_runs GROUP BY run_id")
    return {str(r[0]): int(r[1]) for r in rows}


def audit(db: Db, station: str = "st1") -> list[AuditEntry]:
    store = open_store(db.direct_url if db.backend == "postgresql" else db.url)
    try:
        return store.audit_entries(station)
    finally:
        store.close()


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if UNREACHABLE in r.getMessage()]


async def test_records_and_audit_entries_reach_the_store_once(
    db: Db, spool_path: Path, sinks: list[StoreSink], panels: Any
) -> None:
    maker: PanelMaker = panels(seed=3)
    sink, bus = start(sinks, db, spool_path)
    events = maker.panel(provision=True, fail=(2,), empty=(4,))
    feed(bus, sink, events)
    assert await sink.drain(DRAIN_S) == 0
    ids = record_ids(events)
    assert stored_runs(db) == dict.fromkeys(ids, 1)
    entries = audit(db)
    assert [e.kind for e in entries] == ["signin", "run", "issue", "burn", "issue", "burn"]
    assert entries[1].payload["sequence"] == {
        "name": "s3-devkit-functional",
        "version": "1.2.0",
        "sha256": "ab" * 32,
    }
    assert entries[1].payload["fixture"] == "sim-quad"
    assert entries[2].payload["chip_id"] == maker.macs[0]
    assert entries[2].payload["detail"]["fingerprint"].startswith("sha256:")
    assert verify_chain(entries) == []
    head = sink.spool.audit_heads()["st1"]
    assert (head.seq, head.hash) == (entries[-1].seq, entries[-1].hash)
    status = sink.status()
    assert status.connected and status.waiting == 0 and status.last_error is None
    assert status.unspooled == ()

    # A second sink on the same spool (a station restart) delivers nothing twice.
    sink.close()
    again, _ = start(sinks, db, spool_path)
    assert await again.drain(DRAIN_S) == 0
    assert stored_runs(db) == dict.fromkeys(ids, 1)
    assert [e.kind for e in audit(db)] == [
        "signin",
        "run",
        "issue",
        "burn",
        "issue",
        "burn",
        "signin",
    ]


async def test_database_unreachable_from_the_start(
    pg_db: Db,
    spool_path: Path,
    sinks: list[StoreSink],
    panels: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert pg_db.proxy is not None
    pg_db.proxy.cut()
    caplog.set_level(logging.INFO, logger="ate.station.store_sink")
    maker: PanelMaker = panels(seed=4)
    sink, bus = start(sinks, pg_db, spool_path, backoff_initial=0.05, backoff_max=0.2)
    first = maker.panel()
    feed(bus, sink, first)
    assert await sink.drain(DRAIN_S) > 0  # one failed attempt ends the drain
    second = maker.panel(slots=2)
    feed(bus, sink, second)
    assert await sink.drain(DRAIN_S) > 0
    status = sink.status()
    assert not status.connected and status.waiting_records == 6
    assert status.last_error and "Connection refused" in status.last_error

    lines = warnings(caplog)
    assert len(lines) == 1, lines
    assert f"127.0.0.1:{pg_db.proxy.port}: " in lines[0]
    assert "spooling locally" in lines[0] and "records waiting" in lines[0]
    assert "\n" not in lines[0]
    assert stored_runs(pg_db) == {}  # the database was created empty and stays so

    pg_db.proxy.restore()
    assert await sink.drain(DRAIN_S) == 0
    assert stored_runs(pg_db) == dict.fromkeys(record_ids(first) + record_ids(second), 1)
    assert len(warnings(caplog)) == 1
    assert sink.status().connected
    assert [e.kind for e in audit(pg_db)] == ["signin", "run", "run"]


async def test_database_dies_mid_panel_nothing_lost(
    pg_db: Db,
    spool_path: Path,
    sinks: list[StoreSink],
    panels: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert pg_db.proxy is not None
    maker: PanelMaker = panels(seed=5)
    sink, bus = start(sinks, pg_db, spool_path, backoff_initial=0.05, backoff_max=0.2)
    one = maker.panel(provision=True)
    feed(bus, sink, one)
    assert await sink.drain(DRAIN_S) == 0
    two = maker.panel(provision=True)
    cut_at = next(i for i, e in enumerate(two) if isinstance(e, SlotEnded)) + 2
    feed(bus, sink, two[:cut_at])
    assert await sink.drain(DRAIN_S) == 0
    assert sink.status().connected

    pg_db.proxy.cut()  # every open connection reset, new ones refused
    feed(bus, sink, two[cut_at:])
    three = maker.panel(fail=(1,))
    feed(bus, sink, three)
    assert await sink.drain(DRAIN_S) > 0
    assert not sink.status().connected
    assert len(warnings(caplog)) == 1

    pg_db.proxy.restore()
    assert await sink.drain(DRAIN_S) == 0
    ids = record_ids(one) + record_ids(two) + record_ids(three)
    assert stored_runs(pg_db) == dict.fromkeys(ids, 1)
    entries = audit(pg_db)
    assert verify_chain(entries) == []
    spool_ids = [e.payload["spool_id"] for e in entries]
    assert len(spool_ids) == len(set(spool_ids)) == 1 + 3 + 2 * 4 * 2  # signin, runs, acts
    assert len(warnings(caplog)) == 1


async def test_a_record_the_store_refuses_is_kept_and_the_rest_flows(
    sqlite_db: Db, spool_path: Path, sinks: list[StoreSink], panels: Any
) -> None:
    maker: PanelMaker = panels(seed=6)
    sink, bus = start(sinks, sqlite_db, spool_path)
    sink.spool.append({"record_id": "broken-slot1", "schema": "not-a-unit-record"})
    events = maker.panel(slots=2)
    feed(bus, sink, events)
    assert await sink.drain(DRAIN_S) == 0
    assert stored_runs(sqlite_db) == dict.fromkeys(record_ids(events), 1)
    status = sink.status()
    assert status.rejected == 1
    [(key, reason)] = sink.spool.rejected()
    assert key == "broken-slot1" and "schema" in reason


async def test_a_record_whose_panel_start_was_missed_is_reported(
    sqlite_db: Db, spool_path: Path, sinks: list[StoreSink], panels: Any
) -> None:
    maker: PanelMaker = panels(seed=7)
    sink, bus = start(sinks, sqlite_db, spool_path)
    events = maker.panel(slots=1)
    for event in events[1:]:
        bus.emit(event)
    assert sink.status().unspooled == tuple(record_ids(events))


def test_which_provisioning_outcomes_are_audited() -> None:
    from ate.model.events import ProvisionAct

    def act(name: str, kind: str = "outcome") -> ProvisionAct:
        return ProvisionAct("p", 1, name, kind, "done", {})

    assert audit_kind(act("cert.issue")) == "issue"
    assert audit_kind(act("efuse:sb.en")) == "burn"
    assert audit_kind(act("serial.burn")) == "burn"
    assert audit_kind(act("cert.issue", "intent")) is None
    assert audit_kind(act("flash.write")) is None


def test_signin_is_spooled_when_the_sink_starts(tmp_path: Path) -> None:
    sink = StoreSink.start(
        "sqlite:///nowhere/never.db", tmp_path / "s.db", station="st9", operator="ann"
    )
    try:
        [item] = sink.spool.pending_items()
        assert item.kind == "audit" and item.body["kind"] == "signin"
        assert item.body["station"] == "st9" and item.body["payload"]["operator"] == "ann"
    finally:
        sink.close()
    assert Spool(tmp_path / "s.db").counts().pending == 1


async def test_a_newer_database_schema_holds_delivery_back_with_one_line(
    sqlite_db: Db,
    spool_path: Path,
    sinks: list[StoreSink],
    panels: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    open_store(sqlite_db.url).close()  # migrated to this ate's schema
    sqlite_db.sql("INSERT INTO schema_migrations VALUES (99, '2030-01-01T00:00:00Z', 'future')")
    maker: PanelMaker = panels(seed=8)
    sink, bus = start(sinks, sqlite_db, spool_path, backoff_initial=0.05, backoff_max=0.2)
    events = maker.panel(slots=2)
    feed(bus, sink, events)
    assert await sink.drain(DRAIN_S) > 0
    feed(bus, sink, maker.panel(slots=1))
    assert await sink.drain(DRAIN_S) > 0
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(lines) == 1, lines
    assert lines[0].startswith("line database not usable (")
    assert (
        f"database schema is version 99, this ate knows up to {known_version()}; upgrade ate"
        in lines[0]
    )
    assert lines[0].count(sqlite_db.url) == 1
    assert lines[0].endswith("; spooling locally, 2 records waiting")
    sqlite_db.sql("DELETE FROM schema_migrations WHERE version = 99")
    assert await sink.drain(DRAIN_S) == 0
    assert len(stored_runs(sqlite_db)) == 3


async def test_real_panel_with_the_database_cut_mid_panel(
    pg_db: Db,
    spool_path: Path,
    sinks: list[StoreSink],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A simulated quad fixture runs two panels; the database goes away during the
    first (after its fifth step) and comes back only after it ended."""
    from ate.config.loader import load_fixture, load_sequence
    from ate.model.events import PanelEnded, StepEnded
    from ate.sim.fixture_twin import SimFixtureThread
    from ate.station.runner import Endpoints, run_one_panel
    from tests.scheduler.conftest import FAST, write_fixture, write_sequence
    from tests.store_spool.test_kill import _quick

    assert pg_db.proxy is not None
    proxy = pg_db.proxy
    seq = load_sequence(write_sequence(tmp_path, _quick))
    fixture = load_fixture(
        write_fixture(tmp_path, name="cut", slots=4, seed=12, preflash=str(seq.firmware_path))
    )
    sink, bus = start(sinks, pg_db, spool_path, backoff_initial=0.05, backoff_max=0.2)
    steps = 0
    ended: list[SlotEnded] = []

    def saboteur(event: Event) -> None:
        nonlocal steps
        if isinstance(event, StepEnded):
            steps += 1
            if steps == 5:
                proxy.cut()
        elif isinstance(event, SlotEnded):
            ended.append(event)
            assert sink.spool.has(f"{event.panel_id}-slot{event.result.slot}")
        elif isinstance(event, PanelEnded) and steps < 100:
            steps = 100  # only the first panel is cut

    bus.subscribe(saboteur)
    with SimFixtureThread(fixture.model, fixture.base_dir) as twin:
        sim = Endpoints(twin.controller_endpoint, dict(twin.endpoints))
        await run_one_panel(fixture, seq, bus, sim=sim, station="st1", operator="op1", options=FAST)
        assert await sink.drain(DRAIN_S) > 0
        assert not sink.status().connected
        proxy.restore()
        await run_one_panel(fixture, seq, bus, sim=sim, station="st1", operator="op1", options=FAST)
    assert bus.errors == 0
    assert await sink.drain(DRAIN_S) == 0
    ids = [f"{e.panel_id}-slot{e.result.slot}" for e in ended]
    assert len(ids) == 8
    assert stored_runs(pg_db) == dict.fromkeys(ids, 1)
    assert len(warnings(caplog)) == 1
    entries = audit(pg_db)
    assert verify_chain(entries) == []
    assert [e.kind for e in entries] == ["signin", "run", "run"]
