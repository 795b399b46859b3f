"""`run_report` against real stores: a SQLite file filled through the store's own ingest,
a PostgreSQL database made for the test, and databases that are not there."""

from __future__ import annotations

import secrets
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from ate.cli.report_cmd import bound, run_report
from ate.report.html import SECTIONS
from ate.store.api import open_store
from bench.report import SimRun, simulate_line, unit_record


@pytest.fixture(scope="module")
def sim_runs() -> list[SimRun]:
    return simulate_line(150, seed=5, days=3.0)


@pytest.fixture(scope="module")
def line_db(sim_runs: list[SimRun], tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"sqlite://{tmp_path_factory.mktemp('line') / 'ate.db'}"
    store = open_store(url)
    try:
        assert all(store.ingest_many(unit_record(r) for r in sim_runs))
    finally:
        store.close()
    return url


def test_writes_the_whole_range(
    line_db: str, sim_runs: list[SimRun], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "reports" / "line.html"
    assert run_report(line_db, None, None, out) == 0
    page = out.read_text(encoding="utf-8")
    for sid in SECTIONS:
        assert f'<section id="{sid}"' in page
    assert f"report of {len(sim_runs):,} runs written to {out}" in capsys.readouterr().out
    assert [p.name for p in out.parent.iterdir()] == ["line.html"]  # no temporary left


def test_a_date_range_covers_whole_days(
    line_db: str, sim_runs: list[SimRun], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    day = sim_runs[len(sim_runs) // 2].started_at[:10]
    on_day = sum(1 for r in sim_runs if r.started_at.startswith(day))
    assert run_report(line_db, day, day, tmp_path / "day.html") == 0
    assert f"report of {on_day:,} runs" in capsys.readouterr().out


def test_an_existing_report_is_replaced_whole(line_db: str, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    out.write_text("old")
    assert run_report(line_db, None, None, out) == 0
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def test_no_runs_in_range(line_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "none.html"
    assert run_report(line_db, "2031-01-01", "2031-01-02", out) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("ate: no runs between 2031-01-01 and 2031-01-02 in sqlite:///")
    assert err.count("\n") == 0 and not out.exists()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_database(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = _closed_port()
    password = secrets.token_hex(6)
    url = f"postgresql://postgres:{password}@127.0.0.1:{port}/line"
    out = tmp_path / "r.html"
    assert run_report(url, None, None, out) == 3
    err = capsys.readouterr().err
    assert err.startswith("ate: cannot connect to the line database") and err.count("\n") == 1
    assert f"port {port}" in err and "127.0.0.1" in err
    assert password not in err and "***" in err
    assert not out.exists()


def test_missing_sqlite_file_is_not_created(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "nowhere" / "ate.db"
    assert run_report(f"sqlite://{db}", None, None, tmp_path / "r.html") == 3
    assert f"no line database at {db}" in capsys.readouterr().err
    assert not db.exists() and not db.parent.exists()


def test_bad_times_and_ranges(
    line_db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run_report(line_db, "yesterday", None, tmp_path / "r.html") == 2
    assert "--since 'yesterday' is not an ISO 8601 date or time" in capsys.readouterr().err
    assert run_report(line_db, "2026-11-20", "2026-11-19", tmp_path / "r.html") == 2
    assert "is not before --until" in capsys.readouterr().err


def test_bound() -> None:
    assert bound("2026-11-20", end=False) == "2026-11-20T00:00:00.000+00:00"
    assert bound("2026-11-20", end=True) == "2026-11-21T00:00:00.000+00:00"
    assert bound("2026-11-20T08:30+02:00", end=True) == "2026-11-20T06:30:00.000+00:00"
    assert bound("2026-11-20T08:30", end=False) == "2026-11-20T08:30:00.000+00:00"
    assert bound(None, end=True) is None and bound(" ", end=False) is None


# ---------------------------------------------------------------- PostgreSQL


@pytest.fixture
def pg_url() -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg")
    admin = "postgresql://postgres@127.0.0.1:5432/postgres"
    try:
        conn = psycopg.connect(admin, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        pytest.skip(f"no PostgreSQL on 127.0.0.1:5432 ({exc})")
    name = f"t_report_{secrets.token_hex(4)}"
    conn.execute(f"CREATE DATABASE {name}")
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        conn.execute(f"DROP DATABASE {name} WITH (FORCE)")
        conn.close()


def test_report_from_postgresql(pg_url: str, sim_runs: list[SimRun], tmp_path: Path) -> None:
    store = open_store(pg_url)
    try:
        assert all(store.ingest_many(unit_record(r) for r in sim_runs[:120]))
    finally:
        store.close()
    out = tmp_path / "pg.html"
    assert run_report(pg_url, None, None, out) == 0
    page = out.read_text(encoding="utf-8")
    assert pg_url in page and '<section id="positions"' in page
