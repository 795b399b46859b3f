"""The PostgreSQL backend (psycopg 3): several stations share one line database.

Writers that must not race take a transaction-scoped advisory lock (migrations, one
station's audit chain); everything else relies on unique keys and row locks. May import
stdlib, psycopg and ate.store only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from ate.store.api import URL_FORMS, StoreError, StoreUnavailable, redact_url
from ate.store.queries import ErrorKind, Mode, SqlStore, Tx

CONNECT_TIMEOUT_S = 10


def lock_key(name: str) -> int:
    """A signed 64-bit advisory-lock key for `name`."""
    return int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)


class PostgresStore(SqlStore):
    backend = "postgresql"

    def __init__(self, url: str, *, migrate: bool = True) -> None:
        super().__init__(redact_url(url))
        try:
            params: dict[str, Any] = conninfo_to_dict(url)
        except psycopg.Error as exc:
            raise StoreError(
                f"store URL {self.url!r} is not a valid PostgreSQL URL "
                f"({_first_line(exc).replace(url, self.url)}); use {URL_FORMS}"
            ) from None
        self._conninfo = url
        self._password: str | None = params.get("password")
        self._timeout = None if "connect_timeout" in params else CONNECT_TIMEOUT_S
        self.host = str(params.get("host") or "localhost (socket)")
        self.port = str(params.get("port") or "5432")
        self.dbname = str(params.get("dbname") or params.get("user") or "")
        self._conn: psycopg.Connection[Any] | None = None
        self._closed = False
        self._conn = self._connect()
        try:
            self._check_schema(migrate)
        except BaseException:
            self.close()
            raise

    def _connect(self) -> psycopg.Connection[Any]:
        kwargs: dict[str, Any] = {"autocommit": True}
        if self._timeout is not None:
            kwargs["connect_timeout"] = self._timeout
        try:
            return psycopg.connect(self._conninfo, **kwargs)
        except psycopg.Error as exc:
            raise self._unavailable(exc, connecting=True) from None

    def _connection(self) -> psycopg.Connection[Any]:
        if self._closed:
            raise StoreError(f"the store {self.url} is closed; open it again")
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            # The line database went away and came back: reconnect on the next call.
            if conn is not None:
                conn.close()
            self._conn = conn = self._connect()
        return conn

    @contextmanager
    def _tx(self, mode: Mode) -> Iterator[Tx]:
        conn = self._connection()
        with conn.cursor() as cur:
            if mode == "read":
                yield Tx(cur, pg=True)
                return
            with conn.transaction():
                if mode == "snapshot":
                    cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                yield Tx(cur, pg=True)

    def _serialise(self, tx: Tx, name: str) -> None:
        tx.one("SELECT pg_advisory_xact_lock(CAST(? AS BIGINT))", (lock_key(name),))

    def _has_table(self, tx: Tx, name: str) -> bool:
        row = tx.one("SELECT to_regclass(?) IS NOT NULL", (name,))
        return bool(row[0])

    def _classify(self, exc: BaseException) -> ErrorKind | None:
        if isinstance(exc, pg_errors.IntegrityError):
            return "integrity"
        if isinstance(exc, pg_errors.SerializationFailure | pg_errors.DeadlockDetected):
            return "retry"
        if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
            return "unavailable"
        return None

    def _unavailable(self, exc: BaseException, *, connecting: bool = False) -> StoreUnavailable:
        reason = _scrub(_reason(exc), self._password)
        where = f"host {self.host}, port {self.port}, database {self.dbname}"
        if connecting:
            return StoreUnavailable(
                f"cannot connect to the line database {self.url} ({where}): {reason}; check "
                "that PostgreSQL runs there and that the URL is right"
            )
        return StoreUnavailable(
            f"lost the line database {self.url} ({where}): {reason}; retry when it is back"
        )

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


_NOISE = (
    re.compile(r"^connection (failed|is bad):\s*"),
    re.compile(r'^connection to server (at|on) "[^"]*"(\s*\([^)]*\))?,? (port \d+ )?failed:\s*'),
    re.compile(r"^(FATAL|ERROR):\s*"),
)


def _reason(exc: BaseException) -> str:
    """libpq's first line without its prefixes: 'Connection refused', 'database "x" does
    not exist', 'password authentication failed for user "u"'."""
    text = _first_line(exc)
    for pattern in _NOISE:
        text = pattern.sub("", text)
    return text or type(exc).__name__


def _scrub(text: str, password: str | None) -> str:
    return text.replace(password, "***") if password else text
