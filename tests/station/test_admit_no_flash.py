"""The line is asked before a unit is tested even when the sequence flashes nothing (no
ROM phase): the test firmware names the unit, the MES gate answers, and a unit past its
retest limit is not tested again (FAIL with the reason), through a running daemon."""

from __future__ import annotations

import asyncio
from pathlib import Path

from ate.model.verdict import Verdict
from ate.store import open_store
from tests.station.conftest import running, wait_status, write_station


async def test_a_unit_past_its_retests_is_not_tested_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'line.db'}"
    path = write_station(tmp_path, [("fx1", {"slots": 1})], db=url, max_retests=0)

    def runs_in_db() -> int:
        store = open_store(url)
        try:
            return len(list(store.runs(None, None)))
        finally:
            store.close()

    async with running(path) as station:
        await wait_status(station, lambda st: st.fixtures["fx1"].state == "done")
        assert station.status.fixtures["fx1"].last_verdicts == {1: Verdict.PASS}
        assert await station.deliver_records(60) == 0  # the first run is in the line db
        assert await asyncio.to_thread(runs_in_db) == 1
        twin = station.twins["fx1"]  # the same unit stays in the slot: a retest
        twin.set_clamp(False)
        await wait_status(station, lambda st: st.fixtures["fx1"].state == "waiting")
        twin.set_clamp(True)
        await wait_status(station, lambda st: st.fixtures["fx1"].panels == 2)
        fs = station.status.fixtures["fx1"]
        assert fs.last_verdicts == {1: Verdict.FAIL}
        assert "at most 0 retests" in fs.last_reasons[1]
