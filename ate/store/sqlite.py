"""The SQLite backend: one file, nothing to set up (WAL, synchronous=FULL, foreign keys,
a busy timeout). Writers are serialised by BEGIN IMMEDIATE, across processes too.

May import stdlib and ate.store only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ate.statedir import private_sqlite
from ate.store.api import URL_FORMS, StoreError, StoreUnavailable
from ate.store.queries import ErrorKind, Mode, SqlStore, Tx

BUSY_TIMEOUT_S = 30.0


def sqlite_path(url: str) -> Path:
    """sqlite:///abs/path/ate.db -> /abs/path/ate.db; sqlite:relative/path.db -> relative."""
    rest = url.split(":", 1)[1] if ":" in url else ""
    if rest.startswith("//"):
        rest = rest[2:]
        if not rest.startswith("/"):
            raise StoreError(
                f"store URL {url!r} names a host; a SQLite URL is a path: use {URL_FORMS}"
            )
    if not rest or rest.endswith("/"):
        raise StoreError(f"store URL {url!r} has no file name; use {URL_FORMS}")
    return Path(rest)


class SqliteStore(SqlStore):
    backend = "sqlite"
    _join_in_order = "CROSS JOIN"

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        super().__init__(url)
        self.path = sqlite_path(url)
        self._db: sqlite3.Connection | None = self._connect()
        try:
            self._check_schema(migrate)
        except BaseException:
            self.close()
            raise

    def _connect(self) -> sqlite3.Connection:
        try:
            private_sqlite(self.path)  # 0600 in a 0700 folder: the station's state
            db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise StoreUnavailable(
                f"cannot open the records database file {self.path}: {exc}; check the path "
                "and its permissions"
            ) from None
        try:
            db.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            db.execute("PRAGMA foreign_keys = ON")
        except sqlite3.DatabaseError as exc:
            db.close()
            raise StoreError(
                f"{self.path} is not a usable SQLite database ({exc}); point the store at "
                "another file"
            ) from None
        return db

    @contextmanager
    def _tx(self, mode: Mode) -> Iterator[Tx]:
        db = self._db
        if db is None:
            raise StoreError(f"the store {self.url} is closed; open it again")
        if mode == "read":
            yield Tx(db.cursor(), pg=False)
            return
        db.execute("BEGIN IMMEDIATE" if mode == "write" else "BEGIN")
        try:
            yield Tx(db.cursor(), pg=False)
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        try:
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    def migrate(self) -> list[int]:
        # A migration that rebuilds a table (SQLite cannot alter a CHECK) needs foreign
        # keys off while the old table is dropped, and SQLite only switches them outside a
        # transaction; this connection runs nothing else meanwhile (the lock is held).
        with self._lock:
            if self._db is not None:
                self._db.execute("PRAGMA foreign_keys = OFF")
            try:
                return super().migrate()
            finally:
                if self._db is not None:
                    self._db.execute("PRAGMA foreign_keys = ON")

    def _has_table(self, tx: Tx, name: str) -> bool:
        return (
            tx.one("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", (name,))
            is not None
        )

    def _classify(self, exc: BaseException) -> ErrorKind | None:
        if isinstance(exc, sqlite3.IntegrityError):
            return "integrity"
        if isinstance(exc, sqlite3.OperationalError):
            text = str(exc).lower()
            if any(w in text for w in ("locked", "busy", "disk i/o", "unable to open", "readonly")):
                return "unavailable"
        return None

    def _unavailable(self, exc: BaseException) -> StoreUnavailable:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return StoreUnavailable(
                f"the records database {self.path} stayed locked by another process for "
                f"{BUSY_TIMEOUT_S:.0f} s; retry later"
            )
        return StoreUnavailable(f"the records database {self.path} cannot be written: {text}")

    def close(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None
