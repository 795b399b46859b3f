"""Opening a store: URLs, migrations, a schema from a newer ate, unreachable databases."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from ate.store import SchemaTooNew, Store, StoreError, StoreUnavailable, open_store, redact_url
from ate.store.queries import known_version, migrations, split_sql
from tests.store.conftest import Raw

TABLES = {
    "units",
    "stations",
    "fixtures",
    "operators",
    "lots",
    "test_runs",
    "steps",
    "measurements",
    "provisioning_events",
    "certificates",
    "audit_log",
    "schema_migrations",
}


def test_fresh_store_is_migrated_and_records_it(store: Store, raw: Raw) -> None:
    assert store.schema_version() == known_version() >= 1
    rows = raw("SELECT version, description FROM schema_migrations ORDER BY version")
    assert [r[0] for r in rows] == [m.version for m in migrations()]
    assert rows[0][1] == "initial"
    if store.backend == "sqlite":
        names = {r[0] for r in raw("SELECT name FROM sqlite_master WHERE type = 'table'")}
    else:
        names = {
            r[0]
            for r in raw(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
        }
    assert names >= TABLES


def test_reopening_applies_nothing_twice(store_url: str, store: Store, raw: Raw) -> None:
    assert store.migrate() == []
    again = open_store(store_url)
    assert again.migrate() == []
    again.close()
    assert raw("SELECT COUNT(*) FROM schema_migrations")[0][0] == known_version()


def test_without_migrate_a_fresh_database_is_refused(store_url: str) -> None:
    needs = rf"schema is version 0, this ate needs {known_version()}"
    with pytest.raises(StoreError, match=needs) as err:
        open_store(store_url, migrate=False)
    assert not isinstance(err.value, SchemaTooNew)


@pytest.mark.parametrize("migrate", [True, False])
def test_a_newer_schema_is_refused_naming_both_versions(
    store_url: str, store: Store, raw: Raw, migrate: bool
) -> None:
    newer = known_version() + 41
    raw(
        "INSERT INTO schema_migrations (version, applied_at, description) VALUES (?, ?, ?)",
        newer,
        "2030-01-01T00:00:00.000+00:00",
        "from the future",
    )
    with pytest.raises(SchemaTooNew) as err:
        open_store(store_url, migrate=migrate)
    msg = str(err.value)
    assert f"schema is version {newer}, this ate knows up to {known_version()}" in msg
    assert "upgrade ate" in msg
    with pytest.raises(SchemaTooNew):
        store.migrate()  # an open store refuses to touch it too


def test_sqlite_pragmas(sqlite_url: str) -> None:
    store = open_store(sqlite_url)
    db = store._db  # type: ignore[attr-defined]
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
    assert db.execute("PRAGMA busy_timeout").fetchone()[0] >= 1000
    store.close()


def test_sqlite_relative_url_and_parent_directories(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("sqlite:line/records.db")
    assert store.backend == "sqlite"
    assert store.url == "sqlite:line/records.db"
    store.close()
    assert (tmp_path / "line" / "records.db").is_file()


def test_sqlite_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"this is not a database, just some text that is long enough " * 20)
    with pytest.raises(StoreError, match=r"notes.db is not a usable SQLite database"):
        open_store(f"sqlite:///{path}")


def test_sqlite_path_under_a_file_is_unavailable(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreUnavailable, match=r"cannot open the records database file"):
        open_store(f"sqlite:///{tmp_path}/file/line.db")


@pytest.mark.parametrize(
    "url", ["mysql://root@localhost/line", "line.db", "sqlite:", "sqlite://host/x.db", "http://x"]
)
def test_unsupported_urls_list_the_forms(url: str) -> None:
    with pytest.raises(StoreError) as err:
        open_store(url)
    msg = str(err.value)
    assert "sqlite:///abs/path/ate.db" in msg and "postgresql://user@host:5432/dbname" in msg
    assert type(err.value) is StoreError


def test_a_foreign_url_never_shows_its_password() -> None:
    with pytest.raises(StoreError) as err:
        open_store("mysql://admin:hunter2-secret@db/line")
    assert "hunter2" not in str(err.value) and "admin:***@db" in str(err.value)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_postgres_closed_port_is_unavailable_with_host_port_and_reason() -> None:
    port = _closed_port()
    url = f"postgresql://postgres:pa55-word-x@127.0.0.1:{port}/line"
    with pytest.raises(StoreUnavailable) as err:
        open_store(url)
    msg = str(err.value)
    assert f"host 127.0.0.1, port {port}, database line" in msg
    assert "connection refused" in msg.lower()
    assert "pa55-word-x" not in msg and "postgres:***@" in msg
    assert "Traceback" not in msg and "\n" not in msg
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_postgres_wrong_database_name(pg_url: str) -> None:
    url = "postgresql://postgres:sekrit-pw@127.0.0.1:5432/no_such_line_db"
    with pytest.raises(StoreUnavailable) as err:
        open_store(url)
    msg = str(err.value)
    assert 'database "no_such_line_db" does not exist' in msg
    assert "port 5432" in msg and "sekrit-pw" not in msg and "\n" not in msg


@pytest.mark.parametrize(
    "url", ["postgresql://u:pw-zz@h/db?nosuchoption=1", "postgresql://u:pw-zz@[::1/x"]
)
def test_postgres_url_that_is_not_valid(url: str) -> None:
    with pytest.raises(StoreError, match=r"not a valid PostgreSQL URL") as err:
        open_store(url)
    assert "pw-zz" not in str(err.value)


def test_postgres_port_that_is_not_a_number() -> None:
    with pytest.raises(StoreUnavailable, match=r'invalid integer value "notaport"') as err:
        open_store("postgresql://u:pw-zz@127.0.0.1:notaport/x")
    assert "pw-zz" not in str(err.value)


def test_store_url_is_redacted(pg_url: str) -> None:
    url = pg_url.replace("postgres@", "postgres:trust-ignores-me@")
    store = open_store(url)
    assert "trust-ignores-me" not in store.url and "postgres:***@" in store.url
    assert store.backend == "postgresql"
    store.close()
    with pytest.raises(StoreError, match="closed"):
        store.schema_version()


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("postgresql://u:p@h:5432/d", "postgresql://u:***@h:5432/d"),
        (
            "postgresql://u@h/d?password=p&sslmode=require",
            "postgresql://u@h/d?password=***&sslmode=require",
        ),
        ("postgresql://u@h/d", "postgresql://u@h/d"),
        ("sqlite:///a:b@c.db", "sqlite:///a:b@c.db"),
    ],
)
def test_redact_url(url: str, shown: str) -> None:
    assert redact_url(url) == shown


def test_split_sql_drops_comments() -> None:
    text = (
        "-- head; not a statement\nCREATE TABLE a (x TEXT); -- tail\n\nCREATE INDEX i ON a (x);\n"
    )
    assert split_sql(text) == ("CREATE TABLE a (x TEXT)", "CREATE INDEX i ON a (x)")


def test_postgres_connection_lost_then_back(pg_url: str) -> None:
    from tests.store.conftest import pg_admin

    store = open_store(pg_url)
    pid = store._conn.info.backend_pid  # type: ignore[attr-defined]
    with pg_admin() as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(StoreUnavailable) as err:
        store.has_record("x-slot1")
    msg = str(err.value)
    assert msg.startswith("lost the line database postgresql://postgres@127.0.0.1:5432/test")
    assert "host 127.0.0.1, port 5432, database test" in msg and "retry" in msg
    assert store.has_record("x-slot1") is False  # reconnected on the next call
    store.close()
