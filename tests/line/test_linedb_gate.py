"""The `linedb` MES driver through LineDb, on a real SQLite line database: a locked unit
is recognised (PASS, not re-tested), one past the retest limit is not tested (FAIL),
retest counts come from the database, and a database that cannot be reached admits."""

from __future__ import annotations

from pathlib import Path

from ate.mes.gate import UnitFacts
from ate.model.verdict import Verdict
from ate.station.line import LineDb
from ate.store import open_store
from tests.store.records import mac_of, make_record, provisioning, time_of


async def test_linedb_rules(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'line.db'}"
    store = open_store(url)
    locked, failed, fresh = mac_of(1), mac_of(2), mac_of(3)
    store.ingest(make_record(1, mac=locked, prov=provisioning("S-1", "ab" * 32, state="locked")))
    store.ingest(make_record(2, mac=failed, verdict="FAIL", started_at=time_of(10)))
    store.ingest(make_record(3, mac=failed, verdict="FAIL", started_at=time_of(20)))
    store.close()
    line = LineDb(url, max_retests=1)
    try:
        a = await line.gate.check_in(UnitFacts(locked, "st"))
        assert not a.allowed and a.verdict == Verdict.PASS and "serial S-1" in a.reason
        b = await line.gate.check_in(UnitFacts(failed, "st"))
        assert not b.allowed and b.verdict == Verdict.FAIL and b.retest_count == 2
        assert "at most 1 retests" in b.reason
        c = await line.gate.check_in(UnitFacts(fresh, "st"))
        assert c.allowed and c.retest_count == 0
        # the slots' hook keeps its shape: None to test, else (verdict, reason)
        assert await line.admit(fresh) is None
        assert await line.admit(failed) == (Verdict.FAIL, b.reason)
    finally:
        line.close()


async def test_an_unreachable_database_admits(tmp_path: Path) -> None:
    line = LineDb("postgresql://nobody@127.0.0.1:1/none", max_retests=0)
    try:
        a = await line.gate.check_in(UnitFacts(mac_of(1), "st"))
    finally:
        line.close()
    assert a.allowed and "line database not consulted" in a.reason
    assert line.gate.unreachable == 1
