"""The station's provisioning ledger: each unit's identity, certificate and how far its
provisioning got, and the intent and outcome of every irreversible act, durable before
the act is done (SQLite, WAL, synchronous=FULL).

Invariants the schema itself enforces: a serial and a certificate belong to one unit;
a unit has one certificate; a unit's state only moves forward, by the one table of moves
in ate.model.prov_state. May import stdlib and ate.model.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import sqlite3
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ate.model.prov_state import FACTORY, advance, factory_rank, state_of
from ate.statedir import private_sqlite

T = TypeVar("T")

SCHEMA_VERSION = 1

# How far a unit got, in the order the flow goes (the factory's states less "new": a unit
# enters the ledger once tested). A unit never moves back. Lifecycle moves after the
# factory (shipped, rma, ...) happen in the line database, never in a station's ledger.
STATES: tuple[str, ...] = tuple(s.value for s in FACTORY[1:])

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS units (
    chip_id     TEXT PRIMARY KEY,              -- the factory MAC, aa:bb:cc:dd:ee:ff
    serial      TEXT UNIQUE,
    state       TEXT NOT NULL,
    profile     TEXT NOT NULL,
    lot         TEXT,
    updated_at  TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS certificates (
    fingerprint TEXT PRIMARY KEY,              -- sha256:<hex> of the DER
    chip_id     TEXT NOT NULL UNIQUE REFERENCES units(chip_id),
    serial      TEXT NOT NULL UNIQUE,
    public_key  TEXT NOT NULL,                 -- hex, X9.62 uncompressed point
    cert_serial TEXT NOT NULL,                 -- the certificate's serial number, hex
    issuer      TEXT NOT NULL,
    not_after   TEXT NOT NULL,
    pem         TEXT NOT NULL,
    station     TEXT NOT NULL,
    operator    TEXT NOT NULL,
    issued_at   TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS acts (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    chip_id     TEXT NOT NULL,
    act         TEXT NOT NULL,                 -- e.g. serial.burn, cert.issue, efuse:sb.en
    kind        TEXT NOT NULL CHECK (kind IN ('intent', 'outcome')),
    status      TEXT NOT NULL,                 -- intent: planned; outcome: done/already/failed
    detail      TEXT NOT NULL,                 -- JSON; ids, fingerprints, fuse values: no secrets
    panel_id    TEXT NOT NULL,
    station     TEXT NOT NULL,
    operator    TEXT NOT NULL,
    at          TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS acts_by_unit ON acts (chip_id, id);
CREATE TABLE IF NOT EXISTS flash_images (
    chip_id     TEXT NOT NULL,
    offset      INTEGER NOT NULL,
    size        INTEGER NOT NULL,
    md5         TEXT NOT NULL,                 -- of the bytes as written (ciphertext if encrypted)
    what        TEXT NOT NULL,
    PRIMARY KEY (chip_id, offset)
);
"""


class LedgerError(Exception):
    """The ledger refuses: a serial or certificate that belongs to another unit, a newer
    schema, an unreadable file."""


@dataclass(frozen=True, slots=True)
class UnitRow:
    chip_id: str
    serial: str | None
    state: str
    profile: str
    lot: str | None


@dataclass(frozen=True, slots=True)
class CertRow:
    fingerprint: str
    chip_id: str
    serial: str
    public_key: bytes
    cert_serial: str
    issuer: str
    not_after: str
    pem: str
    station: str
    operator: str
    issued_at: str


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


def rank(state: str) -> int:
    """The position of a ledger state along the line; ValueError for any other."""
    if state not in STATES:
        raise ValueError(f"{state!r} is not a ledger state; those are {', '.join(STATES)}")
    return factory_rank(state_of(state)) - 1


class Ledger:
    """One SQLite file per station (or a shared path per line in development).

    Blocking methods; the async `call` runs them on the ledger's own thread so the event
    loop never waits for an fsync.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        private_sqlite(path)  # the station's state: 0700 folder, 0600 files
        try:
            self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")  # intent is on disk before the act
            self._db.execute("PRAGMA foreign_keys=ON")
            self._db.executescript(_SCHEMA)
            self._check_version()
        except sqlite3.DatabaseError as exc:
            raise LedgerError(f"{path}: not a usable ledger database: {exc}") from None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ledger")

    def _check_version(self) -> None:
        row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
        if row is None:
            self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
        elif int(row[0]) > SCHEMA_VERSION:
            raise LedgerError(
                f"{self.path}: ledger schema {row[0]} is newer than this ate understands "
                f"({SCHEMA_VERSION}); upgrade ate"
            )

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=True)
        self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # -- units ------------------------------------------------------------------------

    def unit(self, chip_id: str) -> UnitRow | None:
        with self._lock:
            row = self._db.execute(
                "SELECT chip_id, serial, state, profile, lot FROM units WHERE chip_id=?",
                (chip_id,),
            ).fetchone()
        return UnitRow(*row) if row else None

    def units(self, lot: str | None = None) -> list[UnitRow]:
        sql = "SELECT chip_id, serial, state, profile, lot FROM units"
        args: tuple[Any, ...] = ()
        if lot is not None:
            sql += " WHERE lot=?"
            args = (lot,)
        with self._lock:
            return [UnitRow(*r) for r in self._db.execute(sql + " ORDER BY serial", args)]

    def advance(self, chip_id: str, state: str, *, profile: str, lot: str | None = None) -> str:
        """Move the unit forward to `state` (creating it); a lower state changes nothing.
        Returns the unit's state afterwards."""
        rank(state)  # unknown states are a bug
        with self._tx() as db:
            row = db.execute("SELECT state FROM units WHERE chip_id=?", (chip_id,)).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO units (chip_id, state, profile, lot, updated_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (chip_id, state, profile, lot, now_iso()),
                )
                return state
            after = advance(state_of(row[0]), state_of(state), chip_id).value
            if after != row[0]:
                db.execute(
                    "UPDATE units SET state=?, updated_at=? WHERE chip_id=?",
                    (after, now_iso(), chip_id),
                )
            return after

    def claim_serial(self, chip_id: str, serial: str) -> None:
        """Bind `serial` to the unit, once. Refuses a serial another unit holds, and a
        different serial for a unit that has one."""
        with self._tx() as db:
            owner = db.execute("SELECT chip_id FROM units WHERE serial=?", (serial,)).fetchone()
            if owner is not None and owner[0] != chip_id:
                raise LedgerError(
                    f"serial {serial} already belongs to unit {owner[0]}; a serial is issued once"
                )
            row = db.execute("SELECT serial FROM units WHERE chip_id=?", (chip_id,)).fetchone()
            if row is None:
                raise LedgerError(f"unit {chip_id} is not in the ledger")
            if row[0] is not None and row[0] != serial:
                raise LedgerError(f"unit {chip_id} already has serial {row[0]}, not {serial}")
            db.execute("UPDATE units SET serial=? WHERE chip_id=?", (serial, chip_id))

    # -- certificates -------------------------------------------------------------------

    def certificate(self, chip_id: str) -> CertRow | None:
        with self._lock:
            row = self._db.execute(
                "SELECT fingerprint, chip_id, serial, public_key, cert_serial, issuer, "
                "not_after, pem, station, operator, issued_at FROM certificates "
                "WHERE chip_id=?",
                (chip_id,),
            ).fetchone()
        if row is None:
            return None
        values = list(row)
        values[3] = bytes.fromhex(values[3])
        return CertRow(*values)

    def certificates(self, lot: str | None = None) -> list[CertRow]:
        sql = (
            "SELECT c.fingerprint, c.chip_id, c.serial, c.public_key, c.cert_serial, c.issuer, "
            "c.not_after, c.pem, c.station, c.operator, c.issued_at FROM certificates c "
            "JOIN units u ON u.chip_id = c.chip_id"
        )
        args: tuple[Any, ...] = ()
        if lot is not None:
            sql += " WHERE u.lot=?"
            args = (lot,)
        with self._lock:
            rows = self._db.execute(sql + " ORDER BY c.serial", args).fetchall()
        return [CertRow(r[0], r[1], r[2], bytes.fromhex(r[3]), *r[4:]) for r in rows]

    def record_certificate(self, cert: CertRow) -> None:
        try:
            with self._tx() as db:
                db.execute(
                    "INSERT INTO certificates VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                    (
                        cert.fingerprint,
                        cert.chip_id,
                        cert.serial,
                        cert.public_key.hex(),
                        cert.cert_serial,
                        cert.issuer,
                        cert.not_after,
                        cert.pem,
                        cert.station,
                        cert.operator,
                        cert.issued_at,
                    ),
                )
        except sqlite3.IntegrityError as exc:
            raise LedgerError(
                f"certificate for unit {cert.chip_id} (serial {cert.serial}) refused: a unit, "
                f"serial or certificate is recorded once ({exc})"
            ) from None

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
        with self._tx() as db:
            cur = db.execute(
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
            return int(cur.lastrowid or 0)

    def acts(self, chip_id: str) -> list[ActRow]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, chip_id, act, kind, status, detail, panel_id, at FROM acts "
                "WHERE chip_id=? ORDER BY id",
                (chip_id,),
            ).fetchall()
        return [ActRow(r[0], r[1], r[2], r[3], r[4], json.loads(r[5]), r[6], r[7]) for r in rows]

    def pending_final_burn(self, fixture: str, slot: int) -> list[tuple[str, str]]:
        """Units still 'locking' whose last act is the download lock's (the plan's last
        burn) intent or failed outcome, on this fixture and slot: (chip id, act) each."""
        with self._lock:
            locking = [
                str(r[0])
                for r in self._db.execute("SELECT chip_id FROM units WHERE state='locking'")
            ]
        out = []
        for chip_id in locking:
            acts = self.acts(chip_id)
            last = acts[-1] if acts else None
            # The intent with no outcome (the station went too), or a failed outcome (the
            # station saw the unit go silent in the middle of the burn).
            if (
                last is not None
                and (last.kind == "intent" or last.status == "failed")
                and last.act in ("efuse:dl.secure", "efuse:dl.disable")
                and last.detail.get("slot") == slot
                and last.panel_id.rsplit("-", 2)[0] == fixture
            ):
                out.append((chip_id, last.act))
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
        with self._tx() as db:
            db.execute(
                "INSERT OR REPLACE INTO flash_images VALUES (?,?,?,?,?)",
                (chip_id, offset, size, md5, what),
            )
