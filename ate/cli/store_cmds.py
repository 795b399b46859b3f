"""`ate unit`, `ate export` and `ate audit verify`: read the line database (records store).

Exit codes: 0 done, 1 nothing found (no such unit, no runs in the range) or an audit
problem, 2 bad input or a database schema newer than this ate, 3 the database cannot be
opened (bad URL, unreachable). May import ate.store, ate.records and rich.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import os
import socket
import sqlite3
import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

from ate.records.unit_record import write_bytes_atomic
from ate.store.api import (
    AuditEntry,
    RunDetail,
    SchemaTooNew,
    Store,
    StoreError,
    StoreUnavailable,
    UnitHistory,
    normalise_time,
    open_store,
    redact_url,
)
from ate.store.audit import verify_chain, verify_signatures
from ate.store.signing import KeyFileError, pinned_public_key
from ate.store.spool import AuditHead

EXIT_OK, EXIT_NOT_FOUND, EXIT_BAD_INPUT, EXIT_NO_DB = 0, 1, 2, 3
COMMANDS = ("unit", "export", "audit")


def default_db_url(state_dir: Path = Path("ate-state")) -> str:
    """$ATE_DB, else the embedded default: an SQLite file in the station's state folder
    (./ate-state unless a run names another)."""
    env = os.environ.get("ATE_DB", "").strip()
    if env:
        return env
    return f"sqlite://{(state_dir / 'ate.db').resolve().as_posix()}"


class CommandFailed(Exception):
    """One line for the operator and the exit code that goes with it."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


# -- argparse --------------------------------------------------------------------------------


def _db_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--db",
        metavar="URL",
        default=None,
        help=(
            "line database: sqlite:///abs/path.db, sqlite:relative/path.db or "
            "postgresql://user@host:5432/dbname (default: $ATE_DB if set, else the embedded "
            "SQLite file sqlite:///<cwd>/ate-state/ate.db)"
        ),
    )


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `unit`, `export` and `audit` to the `ate` command's subparsers."""
    unit = sub.add_parser(
        "unit",
        help="a unit's whole history (ate unit SERIAL|MAC), or move it after the factory: "
        "ship, rma, scrap, revoke; show; revoked (the certificates the line no longer trusts)",
    )
    unit.add_argument(
        "verb",
        metavar="ship|rma|scrap|revoke|show|revoked|SERIAL|MAC",
        help="a move, show, revoked; or a serial or MAC (any case, : - or none): its history",
    )
    from ate.cli.unit_cmd import add_arguments

    add_arguments(unit)
    _db_arg(unit)

    exp = sub.add_parser("export", help="export test runs as CSV, JSON lines or JUnit XML")
    exp.add_argument("--format", choices=("csv", "jsonl", "junit"), default="csv")
    exp.add_argument("--since", metavar="ISO", help="runs started at or after this time")
    exp.add_argument("--until", metavar="ISO", help="runs started before this time")
    exp.add_argument("--out", "-o", type=Path, help="write to FILE, atomically (default stdout)")
    _db_arg(exp)

    audit = sub.add_parser("audit", help="the stations' hash-chained audit log")
    audit_sub = audit.add_subparsers(dest="audit_command", required=True, metavar="WHAT")
    verify = audit_sub.add_parser("verify", help="verify every station's audit chain")
    verify.add_argument("--station", help="only this station's chain")
    verify.add_argument(
        "--spool",
        type=Path,
        help="a station's spool: also check each chain reaches the head it remembers",
    )
    _db_arg(verify)


def dispatch(args: argparse.Namespace) -> int | None:
    """Run the command if it is one of these; None when it is not."""
    command = getattr(args, "command", None)
    if command not in COMMANDS:
        return None
    url = args.db or default_db_url()
    try:
        if command == "unit":
            from ate.cli.unit_cmd import run

            return run(args, args.store or url)
        if command == "export":
            return run_export(url, args.format, args.since, args.until, args.out)
        return run_audit_verify(url, args.station, args.spool)
    except CommandFailed as exc:
        print(f"ate: {exc}", file=sys.stderr)
        return exc.code


# -- opening the database ----------------------------------------------------------------------


@contextlib.contextmanager
def opened(url: str) -> Iterator[Store]:
    """The store at `url`, read as it is (never migrated by a reading command); store
    failures become CommandFailed with the matching exit code."""
    _refuse_missing_sqlite(url)
    try:
        store = open_store(url, migrate=False)
    except SchemaTooNew as exc:
        raise CommandFailed(str(exc), EXIT_BAD_INPUT) from None
    except StoreUnavailable as exc:
        raise CommandFailed(f"line database unreachable: {exc}", EXIT_NO_DB) from None
    except StoreError as exc:
        raise CommandFailed(str(exc), EXIT_NO_DB) from None
    try:
        yield store
    except StoreUnavailable as exc:
        raise CommandFailed(f"line database unreachable: {exc}", EXIT_NO_DB) from None
    finally:
        with contextlib.suppress(Exception):
            store.close()


def open_writable(url: str) -> Store:
    """The store at `url` for a command that writes (users, approvals): migrated, made if
    it is a new SQLite file; failures become CommandFailed with the matching exit code."""
    try:
        return open_store(url)
    except StoreUnavailable as exc:
        raise CommandFailed(f"line database unreachable: {exc}", EXIT_NO_DB) from None
    except StoreError as exc:
        raise CommandFailed(str(exc), EXIT_NO_DB) from None


def station_name(given: str | None) -> str:
    """The station an audit entry names: --station, else $ATE_STATION, else the host."""
    return given or os.environ.get("ATE_STATION") or socket.gethostname()


def _refuse_missing_sqlite(url: str) -> None:
    """A reading command never creates an empty SQLite database where none was."""
    if not url.lower().startswith("sqlite:"):
        return
    from ate.store.sqlite import sqlite_path

    try:
        path = sqlite_path(url)
    except StoreError as exc:
        raise CommandFailed(str(exc), EXIT_NO_DB) from None
    if not path.exists():
        raise CommandFailed(
            f"no line database at {path} ({redact_url(url)}); give --db URL or set ATE_DB",
            EXIT_NO_DB,
        )


def _console() -> Console:
    return Console(highlight=False, width=None if sys.stdout.isatty() else 140)


# -- ate unit ------------------------------------------------------------------------------------


def run_unit(url: str, key: str, console: Console | None = None) -> int:
    with opened(url) as store:
        history = store.unit_history(key)
    if history is None:
        raise CommandFailed(f"no unit with serial or MAC {key}", EXIT_NOT_FOUND)
    show_unit(history, console or _console())
    return EXIT_OK


def show_unit(h: UnitHistory, console: Console) -> None:
    console.print(
        Text.assemble(
            ("unit ", "bold"),
            (h.chip_id, "bold cyan"),
            f"  serial {h.serial or '-'}  chip {h.chip or '-'}  product {h.product or '-'}  "
            f"lot {h.lot or '-'}  provisioning {h.prov_state}",
        )
    )
    console.print(f"first seen {h.first_seen}, last seen {h.last_seen}, {len(h.runs)} run(s)")
    for n, run in enumerate(h.runs, 1):
        _show_run(n, run, console)
    if h.certificate is not None:
        c = h.certificate
        console.print(Text("certificate", style="bold"))
        console.print(
            f"  fingerprint {c.fingerprint}\n  serial {c.serial}, certificate serial "
            f"{c.cert_serial}\n  issuer {c.issuer}\n  valid until {c.not_after}\n"
            f"  issued {c.issued_at} at station {c.station} by {c.operator}"
        )
    else:
        console.print("certificate: none")
    if h.events:
        table = Table(title="provisioning events", title_justify="left", show_lines=False)
        for col in ("at", "act", "kind", "status", "detail"):
            table.add_column(col, overflow="fold")
        for e in h.events:
            detail = json.dumps(e.detail, sort_keys=True, separators=(",", ":"))
            table.add_row(e.at, e.act, e.kind, e.status, detail)
        console.print(table)
    else:
        console.print("provisioning events: none")
    if h.moves:
        console.print(Text("after the factory", style="bold"))
        for m in h.moves:
            p = m.payload
            why = f": {p['reason']}" if p.get("reason") else ""
            console.print(
                f"  {m.at}  {m.kind.removeprefix('unit.')}  {p.get('from')} -> {p.get('to')}"
                f"  by {p.get('user')} at {m.station}{why}"
            )


def _show_run(n: int, run: RunDetail, console: Console) -> None:
    style = "green" if run.verdict == "PASS" else "red"
    console.print(
        Text.assemble(
            (f"run {n} ", "bold"),
            f"{run.started_at}  station {run.station}  fixture {run.fixture} slot {run.slot}  "
            f"operator {run.operator}  {run.sequence} {run.sequence_version}  attempt "
            f"{run.attempt}  ",
            (run.verdict, f"bold {style}"),
        )
    )
    if run.failing_step or run.reason:
        console.print(f"  failing step {run.failing_step or '-'}: {run.reason or '-'}")
    table = Table(show_header=True, box=None, pad_edge=False, padding=(0, 2, 0, 2))
    for col in ("step", "measurement", "value", "limits", "verdict"):
        table.add_column(col, overflow="fold")
    for step in run.steps:
        if not step.measurements:
            table.add_row(step.name, "", "", "", step.verdict)
        # Ids and register values read as the datasheet prints them: in hex.
        num = _hex if step.type in _HEX_STEP_TYPES else _dec
        for m in step.measurements:
            value = m.text if m.value is None else num(m.value)
            name = m.name if not step.retries else f"{m.name} (attempt {m.attempt + 1})"
            table.add_row(
                step.name,
                name,
                f"{value} {m.unit}".strip(),
                _limits(m.low, m.high, m.expect, m.unit, num),
                m.verdict,
            )
        if step.retries and step.verdict == "PASS":
            table.add_row(step.name, f"passed on attempt {step.retries + 1}", "", "", "")
    console.print(table)


_HEX_STEP_TYPES = frozenset({"i2c_read", "spi_jedec"})


def _dec(x: float) -> str:
    return f"{x:g}"


def _hex(x: float) -> str:
    return f"0x{int(x):02x}" if float(x).is_integer() and x >= 0 else f"{x:g}"


def _limits(
    low: float | None,
    high: float | None,
    expect: float | None,
    unit: str,
    num: Callable[[float], str] = _dec,
) -> str:
    u = f" {unit}" if unit else ""
    if expect is not None:
        return f"== {num(expect)}{u}"
    if low is not None and high is not None:
        return f"{num(low)} .. {num(high)}{u}"
    if low is not None:
        return f">= {num(low)}{u}"
    if high is not None:
        return f"<= {num(high)}{u}"
    return "-"


# -- ate export ----------------------------------------------------------------------------------


def run_export(url: str, fmt: str, since: str | None, until: str | None, out: Path | None) -> int:
    try:
        since_n = normalise_time(since, "--since") if since else None
        until_n = normalise_time(until, "--until") if until else None
    except StoreError as exc:
        raise CommandFailed(str(exc), EXIT_BAD_INPUT) from None
    with opened(url) as store:
        rows = list(store.runs(since_n, until_n))
        if not rows:
            raise CommandFailed(_no_runs(since, until), EXIT_NOT_FOUND)
        if fmt == "csv":
            data = runs_csv(rows)
        elif fmt == "jsonl":
            data = runs_jsonl(rows)
        else:
            records = [store.record(str(r["run_id"])) for r in rows]
            data = runs_junit([r for r in records if r is not None])
    if out is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        write_bytes_atomic(out, data)
        print(f"{len(rows)} run(s) written to {out}", file=sys.stderr)
    return EXIT_OK


def _no_runs(since: str | None, until: str | None) -> str:
    if since and until:
        return f"no runs between {since} and {until}"
    if since:
        return f"no runs since {since}"
    if until:
        return f"no runs before {until}"
    return "no runs in the line database"


def runs_csv(rows: list[dict[str, Any]]) -> bytes:
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "" if v is None else v for k, v in row.items()})
    return buf.getvalue().encode()


def runs_jsonl(rows: list[dict[str, Any]]) -> bytes:
    return "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()


def runs_junit(records: list[dict[str, Any]]) -> bytes:
    """One <testsuite> per run (unit record), each step a <testcase>, as ate/records/junit.py
    lays out a panel."""
    suites = ET.Element("testsuites", name="ate export", tests=str(len(records)))
    for rec in records:
        steps: list[dict[str, Any]] = rec.get("steps") or []
        unit = rec.get("unit") or {}
        count = {v: sum(1 for s in steps if s.get("verdict") == v) for v in _VERDICTS}
        suite = ET.SubElement(
            suites,
            "testsuite",
            name=f"{rec.get('fixture', '')}.slot{rec.get('slot', '')}",
            tests=str(len(steps)),
            failures=str(count["FAIL"]),
            errors=str(count["ERROR"] + count["ABORTED"]),
            skipped=str(count["SKIPPED"]),
            time=f"{float(rec.get('duration_s') or 0.0):.3f}",
            timestamp=str(rec.get("panel_started_at", "")),
            hostname=str(rec.get("station", "")),
        )
        props = ET.SubElement(suite, "properties")
        seq = rec.get("sequence") or {}
        serial = (rec.get("provisioning") or {}).get("serial")
        for key, value in (
            ("run_id", rec.get("record_id")),
            ("mac", unit.get("mac") or "unknown"),
            ("serial", serial),
            ("verdict", rec.get("verdict")),
            ("reason", rec.get("reason")),
            ("operator", rec.get("operator")),
            ("sequence", f"{seq.get('name', '')} {seq.get('version', '')}".strip()),
        ):
            if value:
                ET.SubElement(props, "property", name=key, value=str(value))
        verdict = rec.get("verdict")
        if verdict != "PASS" and all(s.get("verdict") == "SKIPPED" for s in steps):
            case = ET.SubElement(
                suite, "testcase", classname=f"slot{rec.get('slot')}", name="bring-up"
            )
            tag = "skipped" if verdict == "EMPTY" else "error"
            ET.SubElement(case, tag, message=str(rec.get("reason", "")))
        for s in steps:
            case = ET.SubElement(
                suite,
                "testcase",
                classname=f"slot{rec.get('slot')}",
                name=str(s.get("name", "")),
                time=f"{float(s.get('duration_s') or 0.0):.6f}",
            )
            v = s.get("verdict")
            if v == "FAIL":
                ET.SubElement(case, "failure", message=str(s.get("reason", "")), type="FAIL")
            elif v in ("ERROR", "ABORTED"):
                ET.SubElement(case, "error", message=str(s.get("reason") or v), type=str(v))
            elif v == "SKIPPED":
                ET.SubElement(case, "skipped")
            if s.get("measurements"):
                out = ET.SubElement(case, "system-out")
                out.text = "\n".join(_measurement_line(m) for m in s["measurements"])
    ET.indent(suites)
    data: bytes = ET.tostring(suites, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


_VERDICTS = ("PASS", "FAIL", "ERROR", "ABORTED", "EMPTY", "SKIPPED")


def _measurement_line(m: dict[str, Any]) -> str:
    lim = m.get("limits") or {}
    limits = _limits(lim.get("low"), lim.get("high"), lim.get("expect"), lim.get("unit") or "")
    return f"{m.get('name')} = {m.get('value')} {m.get('unit', '')} [{limits}] {m.get('verdict')}"


# -- ate audit verify ------------------------------------------------------------------------------


def read_spool_heads(path: Path) -> dict[str, AuditHead]:
    """The audit heads a station spool remembers, read without changing the spool."""
    if not path.is_file():
        raise CommandFailed(f"no station spool at {path}", EXIT_BAD_INPUT)
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            rows = db.execute("SELECT station, seq, hash, at FROM audit_heads").fetchall()
        finally:
            db.close()
    except sqlite3.Error as exc:
        raise CommandFailed(
            f"{path} is not a readable station spool ({exc})", EXIT_BAD_INPUT
        ) from None
    return {r[0]: AuditHead(r[0], int(r[1]), str(r[2]), str(r[3])) for r in rows}


def audit_problems(
    entries: list[AuditEntry],
    heads: dict[str, AuditHead],
    station: str | None = None,
    keys: dict[str, str] | None = None,
) -> list[str]:
    """Every problem in each station's chain, against the remembered heads, and each
    entry's signature against the station's key (`keys`: station -> public key hex)."""
    chains: dict[str, list[AuditEntry]] = {}
    for e in entries:
        chains.setdefault(e.station, []).append(e)
    problems: list[str] = []
    names = set(chains) | {s for s in heads if station is None or s == station}
    for name in sorted(names):
        chain = chains.get(name, [])
        head = heads.get(name)
        if not chain and head is not None:
            problems.append(
                f"audit log of station {name!r} has no entries but the station's last entry "
                f"was seq {head.seq}: entries were removed"
            )
            continue
        expected = (head.seq, head.hash) if head is not None else None
        problems.extend(verify_chain(chain, expected_head=expected))
        if keys is not None:
            problems.extend(verify_signatures(name, chain, keys.get(name)))
    return problems


def run_audit_verify(url: str, station: str | None, spool: Path | None) -> int:
    heads = read_spool_heads(spool) if spool is not None else {}
    with opened(url) as store:
        entries, damaged = store.audit_entries_checked(station)
        try:
            keys = store.audit_keys()
        except StoreError as exc:
            keys, damaged = {}, [*damaged, f"audit keys unreadable: {str(exc).splitlines()[0]}"]
    if station is not None and not entries and station not in heads:
        raise CommandFailed(f"no audit entries for station {station!r}", EXIT_NOT_FOUND)
    problems: list[str] = list(damaged)
    if spool is not None:
        # The key in the station's own state folder is the trust anchor: a key replaced
        # in the database (to re-sign a forged chain) shows here.
        try:
            pinned = pinned_public_key(spool.parent)
        except KeyFileError as exc:
            raise CommandFailed(str(exc), EXIT_BAD_INPUT) from None
        for name in sorted(set(heads) | ({station} if station else set())):
            if pinned is None:
                continue
            if name in keys and keys[name] != pinned:
                problems.append(
                    f"audit log of station {name!r}: the key registered in the line database "
                    "is not the key in the station's state folder (the registration was replaced)"
                )
            keys[name] = pinned
    problems += audit_problems(entries, heads, station, keys)
    if problems:
        for p in problems:
            print(p)
        print(f"audit log NOT intact: {len(problems)} problem(s)")
        return EXIT_NOT_FOUND
    stations = {e.station for e in entries}
    print(
        f"audit log intact: {len(entries)} entries, {len(stations)} stations, every entry "
        "signed by its station's key"
    )
    return EXIT_OK
