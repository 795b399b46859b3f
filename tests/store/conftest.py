"""The `store` fixture, parametrised over both backends: a SQLite file in tmp_path, or a
fresh schema in PostgreSQL (127.0.0.1:5432, user postgres, database test) dropped after."""

from __future__ import annotations

import secrets
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from ate.store import Store, open_store

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"

Raw = Callable[..., list[Any]]


def pg_admin() -> psycopg.Connection[Any]:
    try:
        return psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.skip(f"PostgreSQL is not reachable at {PG_ADMIN}: {str(exc).splitlines()[0]}")


@pytest.fixture
def pg_url() -> Iterator[str]:
    """A URL whose search_path is a fresh schema of its own."""
    schema = f"t_{secrets.token_hex(6)}"
    with pg_admin() as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield f"{PG_ADMIN}?options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def sqlite_url(tmp_path: Any) -> str:
    return f"sqlite:///{tmp_path}/line.db"


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    s = open_store(store_url)
    yield s
    s.close()


def raw_sql(url: str, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
    """Run SQL behind the store's back (`?` placeholders), as a tamperer would."""
    if url.startswith("sqlite:"):
        with sqlite3.connect(url.removeprefix("sqlite://")) as db:
            rows = db.execute(sql, params).fetchall()
        db.close()
        return rows
    with psycopg.connect(url, autocommit=True) as conn:
        cur = conn.execute(sql.replace("?", "%s"), params)
        return cur.fetchall() if cur.description else []


@pytest.fixture
def raw(store_url: str) -> Raw:
    def run(sql: str, *params: Any) -> list[Any]:
        return raw_sql(store_url, sql, params)

    return run
