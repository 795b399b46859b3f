"""A station process killed (SIGKILL) mid-panel, at seeded random moments and at the worst
ones (the store has a record or audit entry, the spool does not know yet): after a
restart on the same spool, every unit that was reported done is in the line database
exactly once, and so is every audit entry."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ate.config.loader import load_sequence
from ate.station.store_sink import StoreSink
from ate.store.api import open_store
from ate.store.audit import verify_chain
from tests.scheduler.conftest import write_fixture, write_sequence
from tests.store_spool.conftest import Db
from tests.store_spool.station_driver import STATION

REPO = Path(__file__).resolve().parents[2]
LINE_WAIT_S = 60.0  # hang guard per line of the station's output, not a timing check
SEED = 20261121


def _quick(doc: dict[str, Any]) -> None:
    keep = {"gpio_loopback", "boot_pin", "imu_present", "vref_divider", "rail_3v3"}
    doc["steps"] = [s for s in doc["steps"] if s["name"] in keep]
    doc["test_firmware"]["flash"] = "never"


@dataclass
class Station:
    fixture: Path
    sequence: Path
    spool: Path
    db: Db
    logs: Path
    runs: int = 0
    crashed: bool = False

    async def run(
        self, kill_after: tuple[int, int] | None = None, crash: str | None = None, panels: int = 1
    ) -> tuple[list[str], bool]:
        """Run `panels` panels in a station process; with `kill_after` (k, n), SIGKILL it n
        lines after the kth unit was reported spooled. Returns (reported ids, killed)."""
        self.runs += 1
        args = [
            sys.executable,
            "-m",
            "tests.store_spool.station_driver",
            "--fixture",
            str(self.fixture),
            "--sequence",
            str(self.sequence),
            "--spool",
            str(self.spool),
            "--db",
            self.db.url,
            "--panels",
            str(panels),
        ]
        if crash:
            args += ["--crash-after", crash]
        with (self.logs / f"station-{self.runs}.log").open("wb") as err:
            proc = await asyncio.create_subprocess_exec(
                *args, cwd=REPO, stdout=asyncio.subprocess.PIPE, stderr=err
            )
            assert proc.stdout is not None
            reported: list[str] = []
            after = -1
            killed = False
            while line := await asyncio.wait_for(proc.stdout.readline(), LINE_WAIT_S):
                text = line.decode().strip()
                if text.startswith("spooled "):
                    reported.append(text.split()[1])
                self.crashed = self.crashed or text.startswith("crash after")
                if kill_after is not None:
                    if after < 0 and len(reported) >= kill_after[0]:
                        after = 0
                    elif after >= 0:
                        after += 1
                    if after >= kill_after[1]:
                        proc.kill()
                        killed = True
                        break
            code = await proc.wait()
        if not killed and crash is None:
            assert code == 0, (self.logs / f"station-{self.runs}.log").read_text()
        return reported, killed

    def spooled(self, kind: str) -> set[str]:
        db = sqlite3.connect(self.spool)
        try:
            return {r[0] for r in db.execute("SELECT key FROM outbox WHERE kind=?", (kind,))}
        finally:
            db.close()

    async def restart_and_check(self, reported: list[str]) -> int:
        """A new station start on the same spool delivers the backlog; then the database
        holds every spooled record and audit entry exactly once. Returns the run count."""
        sink = StoreSink.start(self.db.url, self.spool, station=STATION)
        try:
            assert await sink.drain(LINE_WAIT_S) == 0
            head = sink.spool.audit_heads().get(STATION)
        finally:
            sink.close()
        rows = self.db.sql("SELECT run_id, COUNT(*) FROM test_runs GROUP BY run_id")
        stored = {str(r[0]): int(r[1]) for r in rows}
        assert set(reported) <= set(stored), "a unit reported done is missing"
        assert set(stored) == self.spooled("record")
        assert all(n == 1 for n in stored.values())
        store = open_store(self.db.direct_url if self.db.backend == "postgresql" else self.db.url)
        try:
            entries = store.audit_entries(STATION)
        finally:
            store.close()
        assert verify_chain(entries) == []
        spool_ids = [e.payload["spool_id"] for e in entries]
        assert len(spool_ids) == len(set(spool_ids)), "an audit entry was appended twice"
        assert set(spool_ids) == self.spooled("audit")
        assert head is not None and (head.seq, head.hash) == (entries[-1].seq, entries[-1].hash)
        return len(stored)


@pytest.fixture
def station(tmp_path: Path, pg_db: Db) -> Station:
    seq = write_sequence(tmp_path, _quick)
    firmware = load_sequence(seq).firmware_path
    fix = write_fixture(tmp_path, name="kq", slots=4, seed=11, preflash=str(firmware))
    logs = tmp_path / "logs"
    logs.mkdir()
    return Station(fix, seq, tmp_path / "state" / "spool.db", pg_db, logs)


async def test_station_killed_at_random_moments_loses_nothing(station: Station) -> None:
    rng = random.Random(SEED)
    total = 0
    kills = 0
    for _ in range(3):
        # after the kth unit of three panels, n more events (about 250 events a panel)
        point = (rng.randint(1, 8), rng.randint(0, 200))
        reported, killed = await station.run(kill_after=point, panels=3)
        kills += killed
        assert len(reported) >= point[0]
        count = await station.restart_and_check(reported)
        assert count >= total + len(reported)
        total = count
    assert kills == 3  # every moment falls inside the three panels, none after them


@pytest.mark.parametrize("crash", ["ingest:2", "audit:2"])
async def test_station_dies_between_store_and_spool_no_duplicates(
    station: Station, crash: str
) -> None:
    """The store took it, the spool never heard: the restart must not store it twice
    (a record is idempotent by record_id; an audit entry is looked up by its spool id)."""
    reported, _ = await station.run(crash=crash)
    assert station.crashed, (station.logs / "station-1.log").read_text()
    count = await station.restart_and_check(reported)
    assert count >= max(len(reported), 2 if crash.startswith("ingest") else 0)
