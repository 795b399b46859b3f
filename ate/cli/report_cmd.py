"""`ate report`: read a line database's runs between two times and write the yield report as
one self-contained HTML file. May import ate.store (api; sqlite for its URL parser),
ate.report and ate.records.

Exit codes: 0 written, 1 no runs in the range, 2 a time that is not ISO 8601, 3 the database
cannot be opened or read.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from ate.records.unit_record import write_bytes_atomic
from ate.report.html import render_report
from ate.store.api import StoreError, open_store, redact_url

EXIT_OK, EXIT_NO_RUNS, EXIT_BAD_INPUT, EXIT_CANNOT_RUN = 0, 1, 2, 3


class BadTime(ValueError):
    pass


def bound(text: str | None, *, end: bool) -> str | None:
    """A --since/--until value as sortable UTC text. A bare date means the start of that
    day for --since and the end of it (the next midnight) for --until, so
    `--since 2026-11-20 --until 2026-11-21` covers both days; no zone means UTC."""
    if text is None or not text.strip():
        return None
    raw = text.strip()
    try:
        when = datetime.fromisoformat(raw)
    except ValueError:
        raise BadTime(
            f"{'--until' if end else '--since'} {raw!r} is not an ISO 8601 date or time; use "
            "e.g. 2026-11-21 or 2026-11-21T07:15:00+00:00"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    if end and len(raw) == 10:  # a date alone: up to the end of that day
        when += timedelta(days=1)
    return when.astimezone(UTC).isoformat(timespec="milliseconds")


def _missing_sqlite_file(db_url: str) -> Path | None:
    """The path of a sqlite: URL whose file does not exist (opening would create it)."""
    if not db_url.lower().startswith("sqlite:"):
        return None
    from ate.store.sqlite import sqlite_path

    try:
        path = sqlite_path(db_url)
    except StoreError:
        return None  # open_store says what is wrong with the URL
    return None if path.exists() else path


def write_report(out: Path, page: str) -> None:
    """Write the page atomically: a reader sees the old report or the whole new one."""
    write_bytes_atomic(out, page.encode("utf-8"))


def run_report(db_url: str, since: str | None, until: str | None, out: Path) -> int:
    try:
        start, end = bound(since, end=False), bound(until, end=True)
    except BadTime as exc:
        print(f"ate: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    shown = redact_url(db_url)
    if start is not None and end is not None and start >= end:
        print(
            f"ate: --since {since} is not before --until {until}; give a range that starts "
            "before it ends",
            file=sys.stderr,
        )
        return EXIT_BAD_INPUT
    missing = _missing_sqlite_file(db_url)
    if missing is not None:
        print(
            f"ate: there is no line database at {missing}; give the path of the stations' "
            "database (sqlite:///abs/path/ate.db) or a postgresql:// URL",
            file=sys.stderr,
        )
        return EXIT_CANNOT_RUN
    try:
        # A report only reads: it never migrates a line database on the way.
        store = open_store(db_url, migrate=False)
    except StoreError as exc:  # StoreUnavailable, SchemaTooNew, a bad URL: each one sentence
        print(f"ate: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    try:
        report = store.report_input(start, end)
        source = store.url
    except StoreError as exc:
        print(f"ate: {exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    finally:
        store.close()
    if not report.runs:
        print(
            f"ate: no runs between {since or 'the first record'} and {until or 'now'} in "
            f"{shown}; nothing to report",
            file=sys.stderr,
        )
        return EXIT_NO_RUNS
    try:
        write_report(out, render_report(report, source=source))
    except OSError as exc:
        print(f"ate: cannot write the report to {out}: {exc.strerror or exc}", file=sys.stderr)
        return EXIT_CANNOT_RUN
    print(f"ate: report of {len(report.runs):,} runs written to {out}")
    return EXIT_OK
