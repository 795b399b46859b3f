"""Faults of the station itself: a controller unplugged mid-panel (its slots ERROR, the
fixture offline, back online after a replug; the other fixture unaffected), the disk
nearly full (panel refused, said why), a slot whose UART is missing (a fixture fault)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import yaml

from ate.model.events import Event, SlotPhase
from ate.model.verdict import Verdict
from tests.station.conftest import running, wait_status, write_station


async def test_controller_unplugged_mid_panel(tmp_path: Path) -> None:
    path = write_station(tmp_path, [("fa", {"slots": 2}), ("fb", {"slots": 2})])
    async with running(path) as station:
        a, b = station.twins["fa"], station.twins["fb"]
        await wait_status(station, lambda st: all(f.state == "done" for f in st.fixtures.values()))
        # Next panel on both; fa's controller goes when its slot 1 starts testing.
        testing = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_event(e: Event) -> None:
            if isinstance(e, SlotPhase) and e.phase == "test" and e.panel_id.startswith("fa-"):
                loop.call_soon(testing.set)

        station.bus.subscribe(on_event)
        for twin in (a, b):
            twin.set_clamp(False)
        await wait_status(
            station, lambda st: all(f.state == "waiting" for f in st.fixtures.values())
        )
        a.set_clamp(True)
        b.set_clamp(True)
        await asyncio.wait_for(testing.wait(), 60)
        await asyncio.to_thread(a.unplug_controller)
        await wait_status(station, lambda st: not st.fixtures["fa"].online)
        fa = station.status.fixtures["fa"]
        assert fa.panels == 2
        assert set(fa.last_verdicts.values()) == {Verdict.ERROR}
        assert all("fixture controller lost" in r for r in fa.last_reasons.values())
        assert fa.state == "offline" and "fixture controller" in (fa.last_error or "")
        await wait_status(station, lambda st: st.fixtures["fb"].panels == 2)
        fb = station.status.fixtures["fb"]
        assert set(fb.last_verdicts.values()) == {Verdict.PASS} and fb.online
        # Back: the loop finds it again (back-off capped at retry_max) and carries on.
        await asyncio.to_thread(a.replug_controller)
        await wait_status(station, lambda st: st.fixtures["fa"].online)
        assert station.status.fixtures["fa"].reconnects == 1
        a.set_clamp(False)
        await wait_status(station, lambda st: st.fixtures["fa"].state == "waiting")
        a.set_clamp(True)
        await wait_status(station, lambda st: st.fixtures["fa"].panels == 3)
        assert set(station.status.fixtures["fa"].last_verdicts.values()) == {Verdict.PASS}


async def test_disk_nearly_full_refuses_the_panel(tmp_path: Path) -> None:
    path = write_station(tmp_path, [("fx1", {"slots": 1})], min_free="1000000GB")
    async with running(path) as station:
        await wait_status(station, lambda st: st.fixtures["fx1"].state == "refused")
        fs = station.status.fixtures["fx1"]
        assert fs.refusal is not None and fs.refusal.startswith("disk nearly full")
        assert str(tmp_path / "state") in fs.refusal
        assert fs.panels == 0
        assert "disk nearly full" in station.status.summary()
        assert not (tmp_path / "out" / "records").exists() or not list(
            (tmp_path / "out" / "records").glob("*.json")
        )


async def test_a_missing_slot_uart_is_a_fixture_fault(tmp_path: Path) -> None:
    path = write_station(tmp_path, [("fx1", {"slots": 2})])
    fx = tmp_path / "fx1.yaml"
    doc = yaml.safe_load(fx.read_text())
    doc["slots"][1]["port"] = "socket://127.0.0.1:9"  # nothing listens: a broken cable
    fx.write_text(yaml.safe_dump(doc))
    async with running(path) as station:
        await wait_status(station, lambda st: st.fixtures["fx1"].state == "refused")
        refusal = station.status.fixtures["fx1"].refusal or ""
        assert refusal.startswith("fixture fault (not the units)")
        assert "slot 2" in refusal and "slot 1" not in refusal
        assert station.status.fixtures["fx1"].panels == 0


async def test_line_database_away_testing_goes_on(tmp_path: Path) -> None:
    """Nothing listens at the database's address: panels run, every record is spooled."""
    import sqlite3

    path = write_station(
        tmp_path, [("fx1", {"slots": 2})], db="postgresql://ate@127.0.0.1:9/ate?connect_timeout=1"
    )
    async with running(path) as station:
        twin = station.twins["fx1"]
        await wait_status(station, lambda st: st.fixtures["fx1"].state == "done")
        twin.set_clamp(False)
        await wait_status(station, lambda st: st.fixtures["fx1"].state == "waiting")
        twin.set_clamp(True)
        await wait_status(
            station,
            lambda st: st.fixtures["fx1"].panels == 2 and st.fixtures["fx1"].state == "done",
        )
        assert set(station.status.fixtures["fx1"].last_verdicts.values()) == {Verdict.PASS}
    db = sqlite3.connect(tmp_path / "state" / "spool.db")
    try:
        waiting = db.execute(
            "SELECT count(*) FROM outbox WHERE kind = 'record' AND delivered_at IS NULL"
        ).fetchone()[0]
    finally:
        db.close()
    assert waiting == 4  # 2 panels x 2 units, waiting for the database
