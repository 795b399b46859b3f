"""The station's provisioning journal: the intent and outcome of every irreversible act,
durable before the act is done, and the flash images as written (their MD5 is what a
re-run compares once the flash-encryption key has gone into the chip). It is what
power-loss recovery needs and nothing more: a unit's serial, certificate and
provisioning state belong to the line store (ate.store), never to a station.

The rows live in the station spool's SQLite file (ate.store.spool owns the file and its
schema, JOURNAL_SCHEMA; WAL, synchronous=FULL, 0600). May import stdlib, ate.statedir
and ate.store.spool.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ate.store.spool import Spool, SpoolError

T = TypeVar("T")

# The plan's last burn: the download lock. A unit whose power went between it and its
# outcome is in Secure Download Mode and can only be found by where it was.
FINAL_BURNS = ("efuse:dl.secure", "efuse:dl.disable")


class JournalError(Exception):
    """The journal cannot be opened or written (a wrong file, a full disk)."""


@dataclass(frozen=True, slots=True)
class ActRow:
    id: int
    chip_id: str
    act: str
    kind: str
    status: str
    detail: dict[str, Any]
    panel_id: str
    at: str


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


class Journal:
    """One station's journal, in its spool file. Blocking methods; the async `call` runs
    them on the journal's own thread so the event loop never waits for an fsync."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            Spool(path).close()  # creates the file, 0600, with the spool's and our tables
        except SpoolError as exc:
            raise JournalError(f"{path}: not a usable station journal: {exc}") from None
        try:
            self._db = sqlite3.connect(
                path, check_same_thread=False, isolation_level=None, timeout=10.0
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # intent is on disk before the act
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"{path}: not a usable station journal: {exc}") from None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="journal")

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._db.close()

    def _write(self, sql: str, args: tuple[Any, ...]) -> int:
        with self._lock:
            try:
                cur = self._db.execute(sql, args)  # one statement: its own transaction
            except sqlite3.Error as exc:
                raise JournalError(f"{self.path}: cannot write the journal: {exc}") from None
            return int(cur.lastrowid or 0)

    # -- acts: intent before, outcome after ---------------------------------------------

    def act(
        self,
        chip_id: str,
        act: str,
        kind: str,
        status: str,
        detail: dict[str, Any],
        *,
        panel_id: str,
        station: str,
        operator: str,
    ) -> int:
        return self._write(
            "INSERT INTO acts (chip_id, act, kind, status, detail, panel_id, station, "
            "operator, at) VALUES (?,?,?,?,?,?,?,?,?)",
            (
                chip_id,
                act,
                kind,
                status,
                json.dumps(detail, sort_keys=True, default=str),
                panel_id,
                station,
                operator,
                now_iso(),
            ),
        )

    def acts(self, chip_id: str) -> list[ActRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, chip_id, act, kind, status, detail, panel_id, at FROM acts "
                "WHERE chip_id=? ORDER BY id",
                (chip_id,),
            ).fetchall()
        return [ActRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7]) for r in rows]

    def unfinished_final_burns(self, fixture: str, slot: int) -> list[tuple[str, str]]:
        """Units whose last act is the download lock's (the plan's last burn) intent or a
        failed outcome, on this fixture and slot: (chip id, act) each. The flow keeps
        those the line store shows as still locking."""
        with self._lock:
            rows = self._db.execute(
                "SELECT a.chip_id, a.act, a.kind, a.status, a.detail, a.panel_id FROM acts a "
                "JOIN (SELECT chip_id, MAX(id) AS last FROM acts GROUP BY chip_id) l "
                "ON a.id = l.last ORDER BY a.id"
            ).fetchall()
        out = []
        for chip_id, act, kind, status, detail, panel_id in rows:
            # The intent with no outcome (the station went too), or a failed outcome (the
            # station saw the unit go silent in the middle of the burn).
            if (
                (kind == "intent" or status == "failed")
                and act in FINAL_BURNS
                and json.loads(detail).get("slot") == slot
                and str(panel_id).rsplit("-", 2)[0] == fixture
            ):
                out.append((str(chip_id), str(act)))
        return out

    # -- flash images as written (their MD5 is what a re-run compares) -----------------

    def flash_image(self, chip_id: str, offset: int) -> tuple[int, str] | None:
        with self._lock:
            row = self._db.execute(
                "SELECT size, md5 FROM flash_images WHERE chip_id=? AND offset=?",
                (chip_id, offset),
            ).fetchone()
        return (int(row[0]), str(row[1])) if row else None

    def record_flash_image(self, chip_id: str, offset: int, size: int, md5: str, what: str) -> None:
        self._write(
            "INSERT OR REPLACE INTO flash_images VALUES (?,?,?,?,?)",
            (chip_id, offset, size, md5, what),
        )
