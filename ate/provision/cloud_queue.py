"""The station's durable cloud-registration queue and the worker that drains it.

The queue (`<state>/cloud.db`, SQLite, 0600 in the 0700 state folder, beside the spool)
owns every fact about a unit's cloud registration: queued, each attempt and its outcome
(failures with the cloud's words), and once registered the thing and certificate ids.
A unit is queued once (by MAC) and registered once. The worker runs on the station's event
loop but does every blocking thing (SQLite, boto3) on its own thread, so a cloud that is
away never holds up a panel: failed units are retried with back-off per unit (doubling
from `base_delay` to `max_delay`), the queue surviving restarts.

Imports no cloud SDK (a station without cloud registration needs none): the registrar
comes in from ate.provision.cloud_iot. May import ate.statedir and stdlib.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from ate.statedir import private_sqlite

QUEUE_FILE = "cloud.db"
_log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS registrations (
    chip_id         TEXT PRIMARY KEY,
    serial          TEXT NOT NULL,
    thing_name      TEXT NOT NULL,
    fingerprint     TEXT NOT NULL,
    cert_pem        TEXT NOT NULL,          -- public: the device certificate
    status          TEXT NOT NULL CHECK (status IN ('pending', 'registered')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_try        REAL NOT NULL,          -- Unix time: survives a restart
    last_error      TEXT,
    thing_arn       TEXT,
    thing_existed   INTEGER,
    certificate_id  TEXT,
    certificate_arn TEXT,
    queued_at       REAL NOT NULL,
    registered_at   REAL
);
CREATE TABLE IF NOT EXISTS attempts (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    chip_id TEXT NOT NULL,
    at      REAL NOT NULL,
    ok      INTEGER NOT NULL,
    detail  TEXT NOT NULL                   -- ids on success, the cloud's words on failure
);
"""


class CloudAway(Exception):
    """The cloud could not be reached or refused for now: retry later. One line, no
    credentials (botocore's words about the endpoint, or the error code and message)."""


@dataclass(frozen=True)
class Unit:
    """What a registration needs: identifiers and the (public) device certificate."""

    chip_id: str
    serial: str
    thing_name: str
    fingerprint: str
    cert_pem: str


@dataclass(frozen=True)
class Registered:
    thing_name: str
    thing_arn: str
    thing_existed: bool  # the thing was there before this registration
    certificate_id: str
    certificate_arn: str
    certificate_existed: bool


class Registrar(Protocol):
    """What registers a unit with a cloud (ate.provision.cloud_iot.AwsIotRegistrar)."""

    def register(self, unit: Unit) -> Registered: ...


@dataclass(frozen=True)
class Registration:
    chip_id: str
    serial: str
    thing_name: str
    status: str  # pending | registered
    attempts: int
    last_error: str | None
    thing_existed: bool | None
    certificate_id: str | None


class CloudQueue:
    """Blocking and thread-safe; the worker calls it from its own thread."""

    def __init__(self, path: Path) -> None:
        self.path = path
        private_sqlite(path)
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def enqueue(self, unit: Unit, now: float | None = None) -> bool:
        """Queue `unit` for registration; False when it is queued or registered already."""
        at = time.time() if now is None else now
        with self._lock:
            cur = self._db.execute(
                "INSERT INTO registrations (chip_id, serial, thing_name, fingerprint, cert_pem, "
                "status, next_try, queued_at) VALUES (?, ?, ?, ?, ?, 'pending', ?, ?) "
                "ON CONFLICT (chip_id) DO NOTHING",
                (
                    unit.chip_id,
                    unit.serial,
                    unit.thing_name,
                    unit.fingerprint,
                    unit.cert_pem,
                    at,
                    at,
                ),
            )
            return cur.rowcount == 1

    def due(self, now: float) -> list[tuple[Unit, int]]:
        """Pending units whose next try has come, with their attempts so far."""
        with self._lock:
            rows = self._db.execute(
                "SELECT chip_id, serial, thing_name, fingerprint, cert_pem, attempts "
                "FROM registrations WHERE status = 'pending' AND next_try <= ? "
                "ORDER BY next_try, chip_id",
                (now,),
            ).fetchall()
        return [(Unit(*r[:5]), int(r[5])) for r in rows]

    def next_try(self) -> float | None:
        with self._lock:
            row = self._db.execute(
                "SELECT MIN(next_try) FROM registrations WHERE status = 'pending'"
            ).fetchone()
        return None if row[0] is None else float(row[0])

    def succeeded(self, chip_id: str, reg: Registered, now: float) -> None:
        detail = (
            f"thing {reg.thing_name} ({'existed' if reg.thing_existed else 'created'}), "
            f"certificate {reg.certificate_id} "
            f"({'was registered' if reg.certificate_existed else 'registered'})"
        )
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "UPDATE registrations SET status = 'registered', attempts = attempts + 1, "
                "last_error = NULL, thing_arn = ?, thing_existed = ?, certificate_id = ?, "
                "certificate_arn = ?, registered_at = ? WHERE chip_id = ?",
                (
                    reg.thing_arn,
                    int(reg.thing_existed),
                    reg.certificate_id,
                    reg.certificate_arn,
                    now,
                    chip_id,
                ),
            )
            self._db.execute(
                "INSERT INTO attempts (chip_id, at, ok, detail) VALUES (?, ?, 1, ?)",
                (chip_id, now, detail),
            )
            self._db.execute("COMMIT")

    def failed(self, chip_id: str, error: str, now: float, next_try: float) -> None:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            self._db.execute(
                "UPDATE registrations SET attempts = attempts + 1, last_error = ?, "
                "next_try = ? WHERE chip_id = ?",
                (error, next_try, chip_id),
            )
            self._db.execute(
                "INSERT INTO attempts (chip_id, at, ok, detail) VALUES (?, ?, 0, ?)",
                (chip_id, now, error),
            )
            self._db.execute("COMMIT")

    def registrations(self) -> list[Registration]:
        with self._lock:
            rows = self._db.execute(
                "SELECT chip_id, serial, thing_name, status, attempts, last_error, thing_existed, "
                "certificate_id FROM registrations ORDER BY chip_id"
            ).fetchall()
        return [
            Registration(
                r[0], r[1], r[2], r[3], int(r[4]), r[5], None if r[6] is None else bool(r[6]), r[7]
            )
            for r in rows
        ]

    def attempts(self, chip_id: str | None = None) -> list[tuple[str, bool, str]]:
        """(chip_id, ok, detail) of every attempt, in order."""
        sql = "SELECT chip_id, ok, detail FROM attempts"
        args: tuple[str, ...] = ()
        if chip_id is not None:
            sql += " WHERE chip_id = ?"
            args = (chip_id,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY id", args).fetchall()
        return [(str(r[0]), bool(r[1]), str(r[2])) for r in rows]


class CloudWorker:
    """Drains the queue: each due unit is registered (off the loop); a failure is recorded
    and the unit tried again after its back-off. `wake()` after an enqueue."""

    def __init__(
        self,
        queue: CloudQueue,
        registrar: Registrar,
        *,
        base_delay: float = 1.0,
        max_delay: float = 300.0,
    ) -> None:
        self.queue = queue
        self.registrar = registrar
        self.base_delay = base_delay
        self.max_delay = max_delay
        self._wake = asyncio.Event()
        self._changed = asyncio.Condition()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="cloud")

    def wake(self) -> None:
        self._wake.set()

    def delay(self, attempts: int) -> float:
        """The back-off after the `attempts`-th failure (1, 2, ...)."""
        return float(min(self.max_delay, self.base_delay * 2 ** max(0, attempts - 1)))

    async def _off_loop(self, fn: Callable[..., object], *args: object) -> object:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def _attempt(self, unit: Unit, attempts: int) -> str:
        now = time.time()
        try:
            reg = self.registrar.register(unit)
        except CloudAway as exc:
            wait = self.delay(attempts + 1)
            self.queue.failed(unit.chip_id, str(exc), now, now + wait)
            _log.warning(
                "cloud registration of %s failed (attempt %d, next in %.1f s): %s",
                unit.serial,
                attempts + 1,
                wait,
                exc,
            )
            return "failed"
        self.queue.succeeded(unit.chip_id, reg, time.time())
        _log.info(
            "unit %s registered as thing %s, certificate %s",
            unit.serial,
            reg.thing_name,
            reg.certificate_id,
        )
        return "registered"

    async def run(self) -> None:
        """Until cancelled."""
        try:
            while True:
                self._wake.clear()
                due = await self._off_loop(self.queue.due, time.time())
                assert isinstance(due, list)
                for unit, attempts in due:
                    await self._off_loop(self._attempt, unit, attempts)
                    async with self._changed:
                        self._changed.notify_all()
                nxt = await self._off_loop(self.queue.next_try)
                timeout = None if nxt is None else max(0.0, float(nxt) - time.time())  # type: ignore[arg-type]
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
        finally:
            self._pool.shutdown(wait=False, cancel_futures=True)

    async def wait_for(self, predicate: Callable[[list[Registration]], bool]) -> list[Registration]:
        """Until `predicate` holds of the registrations (checked after every attempt)."""
        async with self._changed:
            while True:
                regs = await self._off_loop(self.queue.registrations)
                assert isinstance(regs, list)
                if predicate(regs):
                    return regs
                await self._changed.wait()
