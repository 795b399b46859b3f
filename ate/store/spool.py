"""The station's local spool: every unit record and audit entry is durable here (SQLite,
WAL, synchronous=FULL) before the unit is reported done, then delivered to the line
database in order. May import stdlib only.

The same file holds the station's provisioning journal (JOURNAL_SCHEMA: the intent and
outcome of every irreversible act, and the flash images as written), which
ate.provision.journal reads and writes: one SQLite file of station state, not three.

Delivered rows are kept `keep_days` days (they prove delivery), then pruned. Rows the
store refused are kept (never pruned) and offered again when the spool is next opened.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ate.statedir import private_sqlite

SPOOL_VERSION = 1
SPOOL_KIND = "ate-spool"
DEFAULT_KEEP_DAYS = 14.0
SPOOL_NAME = "spool.db"

_log = logging.getLogger(__name__)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    seq          INTEGER PRIMARY KEY AUTOINCREMENT,  -- delivery order
    kind         TEXT NOT NULL CHECK (kind IN ('record', 'audit')),
    key          TEXT NOT NULL UNIQUE,               -- record_id, or audit:<uuid>
    body         TEXT NOT NULL,                      -- JSON
    spooled_at   TEXT NOT NULL,
    attempts     INTEGER NOT NULL DEFAULT 0,
    delivered_at TEXT,
    rejected     TEXT                                -- why the store refused it
);
CREATE INDEX IF NOT EXISTS outbox_waiting ON outbox (delivered_at, seq);
CREATE TABLE IF NOT EXISTS audit_heads (
    station TEXT PRIMARY KEY,
    seq     INTEGER NOT NULL,
    hash    TEXT NOT NULL,
    at      TEXT NOT NULL
);
"""

# What power-loss recovery needs of this station's provisioning, and nothing the line store
# owns (serials, certificates, states live there): ate.provision.journal owns the rows.
JOURNAL_SCHEMA = """
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

ItemKind = Literal["record", "audit"]


class SpoolError(Exception):
    """The spool cannot do what was asked (disk full, a wrong file, a conflicting record)."""


class SpoolCorrupt(SpoolError):
    """The spool file is not a readable SQLite database (garbage, truncated, malformed)."""


@dataclass(frozen=True, slots=True)
class SpoolItem:
    """One waiting entry: a unit record (`key` = record_id) or an audit entry (`body` has
    station, kind, payload)."""

    seq: int
    kind: ItemKind
    key: str
    body: dict[str, Any]
    attempts: int


@dataclass(frozen=True, slots=True)
class AuditHead:
    """The last audit entry of a station that this spool saw delivered."""

    station: str
    seq: int
    hash: str
    at: str


@dataclass(frozen=True, slots=True)
class SpoolCounts:
    pending: int  # waiting for delivery (records and audit entries)
    pending_records: int  # of which unit records
    rejected: int  # refused by the store, kept here
    delivered: int  # delivered, kept as proof until pruned


def now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")


def default_spool_path(state_dir: Path) -> Path:
    """Where a station keeps its spool: `<state>/spool.db`."""
    return state_dir / SPOOL_NAME


class Spool:
    """One SQLite file; thread-safe (one connection behind a lock, each call short)."""

    def __init__(self, path: Path | str, *, keep_days: float = DEFAULT_KEEP_DAYS) -> None:
        self.path = Path(path)
        self.keep_days = keep_days
        self.notice: str | None = None  # set by open_or_recover when it moved a file aside
        self._lock = threading.Lock()
        try:
            private_sqlite(self.path)  # the station's state: 0700 folder, 0600 files
        except OSError as exc:
            raise SpoolError(
                f"cannot create the folder of station spool {self.path}: {exc.strerror}"
            ) from None
        try:
            self._db = sqlite3.connect(
                self.path, check_same_thread=False, isolation_level=None, timeout=10.0
            )
        except sqlite3.Error as exc:
            raise SpoolError(f"cannot open station spool {self.path}: {exc}") from None
        try:
            self._setup()
        except sqlite3.DatabaseError as exc:
            self._db.close()
            if isinstance(exc, sqlite3.OperationalError) and _transient(exc):
                raise SpoolError(f"cannot open station spool {self.path}: {exc}") from None
            raise SpoolCorrupt(
                f"station spool {self.path} is corrupt ({exc}); "
                "Spool.open_or_recover moves it aside and starts a new one"
            ) from None
        except SpoolError:
            self._db.close()
            raise
        self.prune()

    def _setup(self) -> None:
        db = self._db
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")  # a record is on disk before append returns
        check = db.execute("PRAGMA quick_check").fetchall()
        if check != [("ok",)]:
            raise sqlite3.DatabaseError("; ".join(str(r[0]) for r in check[:3]))
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if tables and "outbox" not in tables:
            raise SpoolError(
                f"{self.path} is an SQLite database but not a station spool; "
                "give the spool a file of its own"
            )
        db.executescript(_SCHEMA + JOURNAL_SCHEMA)
        row = db.execute("SELECT value FROM meta WHERE key='version'").fetchone()
        if row is None:
            db.execute("INSERT INTO meta VALUES ('kind', ?)", (SPOOL_KIND,))
            db.execute("INSERT INTO meta VALUES ('version', ?)", (str(SPOOL_VERSION),))
        elif int(row[0]) > SPOOL_VERSION:
            raise SpoolError(
                f"station spool {self.path} is version {row[0]}, this ate knows up to "
                f"{SPOOL_VERSION}; upgrade ate"
            )
        # Rows the store refused last time are offered again (a newer ate may accept them).
        db.execute("UPDATE outbox SET rejected=NULL WHERE rejected IS NOT NULL")

    @classmethod
    def open_or_recover(cls, path: Path | str, *, keep_days: float = DEFAULT_KEEP_DAYS) -> Spool:
        """Open the spool; a corrupt file is moved aside to `<name>.corrupt-<timestamp>`
        (never deleted), whatever undelivered rows can still be read from it are copied
        into a new spool, and `spool.notice` (also logged) says so."""
        path = Path(path)
        try:
            return cls(path, keep_days=keep_days)
        except SpoolCorrupt as exc:
            reason = str(exc)
        aside = _move_aside(path)
        spool = cls(path, keep_days=keep_days)
        salvaged = spool._salvage(aside)
        spool.notice = (
            f"{reason.split(';')[0]}; moved it aside to {aside} (kept, not deleted) and "
            f"started a new spool; {salvaged} undelivered entries could be read back from it"
        )
        _log.warning("%s", spool.notice)
        return spool

    def _salvage(self, aside: Path) -> int:
        """Copy the undelivered rows still readable in a corrupt spool; best effort. Reads
        a scratch copy (a truncated file padded back to the size its header claims), never
        the moved-aside file itself."""
        rows: list[tuple[Any, ...]] = []
        scratch = aside.with_name(aside.name + ".salvage")
        try:
            data = aside.read_bytes()
            if len(data) >= 100 and data[:16] == b"SQLite format 3\x00":
                page = int.from_bytes(data[16:18], "big")
                page = 65536 if page == 1 else page
                claimed = page * int.from_bytes(data[28:32], "big")
                data += b"\0" * max(0, claimed - len(data))
            scratch.write_bytes(data)
            src = sqlite3.connect(f"file:{scratch}?immutable=1", uri=True)
        except (OSError, sqlite3.Error):
            scratch.unlink(missing_ok=True)
            return 0
        try:
            # The table in rowid order, no index: a truncated file still yields its start.
            cur = src.execute(
                "SELECT kind, key, body, spooled_at, delivered_at FROM outbox NOT INDEXED"
            )
            while True:
                row = cur.fetchone()
                if row is None:
                    break
                if row[4] is None:
                    rows.append(tuple(row[:4]))
        except sqlite3.Error:
            pass  # a malformed page ends the salvage; what was read is kept
        finally:
            src.close()
            scratch.unlink(missing_ok=True)
        n = 0
        with self._tx() as db:
            for kind, key, body, spooled_at in rows:
                try:
                    json.loads(body)
                except (TypeError, ValueError):
                    continue
                cur2 = db.execute(
                    "INSERT OR IGNORE INTO outbox (kind, key, body, spooled_at) VALUES (?,?,?,?)",
                    (kind, key, body, spooled_at),
                )
                n += cur2.rowcount
        return n

    # -- plumbing -----------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                try:
                    yield self._db
                except BaseException:
                    self._db.execute("ROLLBACK")
                    raise
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                raise SpoolError(f"station spool {self.path}: {exc}") from None

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise SpoolError(f"station spool {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> Spool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- in -----------------------------------------------------------------------------

    def append(self, record: dict[str, Any]) -> None:
        """Spool a unit record; on disk (fsynced) when this returns. Appending the same
        record again is harmless; a different record under the same id is refused."""
        record_id = record.get("record_id")
        if not isinstance(record_id, str) or not record_id:
            raise SpoolError("a unit record needs a non-empty text record_id to be spooled")
        body = _dumps(record)
        with self._tx() as db:
            row = db.execute("SELECT body FROM outbox WHERE key=?", (record_id,)).fetchone()
            if row is not None:
                if json.loads(row[0]) != json.loads(body):
                    raise SpoolError(
                        f"record {record_id} is already spooled with different content; "
                        "a record id names one unit test"
                    )
                return
            db.execute(
                "INSERT INTO outbox (kind, key, body, spooled_at) VALUES ('record', ?, ?, ?)",
                (record_id, body, now_iso()),
            )

    def append_audit(self, station: str, kind: str, payload: dict[str, Any]) -> str:
        """Spool an audit entry for `station` (its seq and hash are assigned by the store
        at delivery); returns its spool key, also stored in the payload as `spool_id`
        (with `spooled_at`, the station's time)."""
        key = f"audit:{uuid.uuid4().hex}"
        at = now_iso()
        # spooled_at: when it happened by the station's clock (the chain's own time is the
        # delivery's, which may come much later).
        body = _dumps(
            {
                "station": station,
                "kind": kind,
                "payload": {**payload, "spool_id": key, "spooled_at": at},
                "at": at,
            }
        )
        with self._tx() as db:
            db.execute(
                "INSERT INTO outbox (kind, key, body, spooled_at) VALUES ('audit', ?, ?, ?)",
                (key, body, at),
            )
        return key

    # -- out ----------------------------------------------------------------------------

    def pending(self) -> list[tuple[str, dict[str, Any]]]:
        """Unit records waiting for delivery, oldest first: (record_id, record)."""
        return [(i.key, i.body) for i in self.pending_items() if i.kind == "record"]

    def pending_items(self, limit: int | None = None) -> list[SpoolItem]:
        """Records and audit entries waiting for delivery, in the order they were spooled."""
        sql = (
            "SELECT seq, kind, key, body, attempts FROM outbox "
            "WHERE delivered_at IS NULL AND rejected IS NULL ORDER BY seq"
        )
        args: tuple[Any, ...] = ()
        if limit is not None:
            sql += " LIMIT ?"
            args = (limit,)
        with self._read() as db:
            rows = db.execute(sql, args).fetchall()
        return [SpoolItem(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

    def mark_attempt(self, key: str) -> None:
        """Note, durably, that a delivery of `key` is about to be tried (an audit entry
        tried before a crash is looked up in the store instead of appended twice)."""
        with self._tx() as db:
            db.execute("UPDATE outbox SET attempts = attempts + 1 WHERE key=?", (key,))

    def mark_delivered(self, key: str, *, head: AuditHead | None = None) -> None:
        """The store has `key`; with `head`, also remember that station's audit head."""
        with self._tx() as db:
            cur = db.execute(
                "UPDATE outbox SET delivered_at=?, rejected=NULL WHERE key=? "
                "AND delivered_at IS NULL",
                (now_iso(), key),
            )
            if (
                cur.rowcount == 0
                and not db.execute("SELECT 1 FROM outbox WHERE key=?", (key,)).fetchone()
            ):
                raise SpoolError(f"nothing named {key} is in station spool {self.path}")
            if head is not None:
                db.execute(
                    "INSERT INTO audit_heads (station, seq, hash, at) VALUES (?,?,?,?) "
                    "ON CONFLICT (station) DO UPDATE SET seq=excluded.seq, hash=excluded.hash, "
                    "at=excluded.at WHERE excluded.seq >= audit_heads.seq",
                    (head.station, head.seq, head.hash, head.at),
                )

    def mark_rejected(self, key: str, reason: str) -> None:
        """The store refused `key`: keep it here (never pruned), skip it until next open."""
        with self._tx() as db:
            db.execute("UPDATE outbox SET rejected=? WHERE key=?", (reason or "refused", key))

    def is_delivered(self, key: str) -> bool:
        with self._read() as db:
            row = db.execute("SELECT delivered_at FROM outbox WHERE key=?", (key,)).fetchone()
        return row is not None and row[0] is not None

    def has(self, key: str) -> bool:
        with self._read() as db:
            return db.execute("SELECT 1 FROM outbox WHERE key=?", (key,)).fetchone() is not None

    def counts(self) -> SpoolCounts:
        with self._read() as db:
            row = db.execute(
                "SELECT "
                "COALESCE(SUM(delivered_at IS NULL AND rejected IS NULL), 0), "
                "COALESCE(SUM(delivered_at IS NULL AND rejected IS NULL AND kind = 'record'), 0), "
                "COALESCE(SUM(delivered_at IS NULL AND rejected IS NOT NULL), 0), "
                "COALESCE(SUM(delivered_at IS NOT NULL), 0) FROM outbox"
            ).fetchone()
        return SpoolCounts(int(row[0]), int(row[1]), int(row[2]), int(row[3]))

    def rejected(self) -> list[tuple[str, str]]:
        """(key, reason) of every entry the store refused since the spool was opened."""
        with self._read() as db:
            rows = db.execute(
                "SELECT key, rejected FROM outbox WHERE rejected IS NOT NULL "
                "AND delivered_at IS NULL ORDER BY seq"
            ).fetchall()
        return [(str(k), str(r)) for k, r in rows]

    def audit_heads(self) -> dict[str, AuditHead]:
        """The last delivered audit entry of each station, as this spool saw it."""
        with self._read() as db:
            rows = db.execute("SELECT station, seq, hash, at FROM audit_heads").fetchall()
        return {r[0]: AuditHead(r[0], int(r[1]), str(r[2]), str(r[3])) for r in rows}

    def prune(self, now: dt.datetime | None = None) -> int:
        """Delete delivered rows older than `keep_days`; returns how many."""
        cutoff = (now or dt.datetime.now(dt.UTC)) - dt.timedelta(days=self.keep_days)
        with self._tx() as db:
            cur = db.execute(
                "DELETE FROM outbox WHERE delivered_at IS NOT NULL AND delivered_at < ?",
                (cutoff.isoformat(timespec="microseconds"),),
            )
            return cur.rowcount


def _dumps(data: dict[str, Any]) -> str:
    try:
        return json.dumps(data, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise SpoolError(f"cannot spool an entry that is not plain JSON: {exc}") from None


def _transient(exc: sqlite3.OperationalError) -> bool:
    text = str(exc).lower()
    return "locked" in text or "unable to open" in text or "readonly" in text


def _move_aside(path: Path) -> Path:
    """Rename the spool (and its -wal/-shm) to `<name>.corrupt-<UTC stamp>`; never delete."""
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    aside = path.with_name(f"{path.name}.corrupt-{stamp}")
    try:
        path.rename(aside)
        for suffix in ("-wal", "-shm"):
            side = path.with_name(path.name + suffix)
            if side.exists():
                side.rename(aside.with_name(aside.name + suffix))
    except OSError as exc:
        raise SpoolError(
            f"station spool {path} is corrupt and could not be moved aside: {exc.strerror}"
        ) from None
    return aside
