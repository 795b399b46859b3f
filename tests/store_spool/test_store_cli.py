"""`ate unit`, `ate export`, `ate audit verify` against a filled line database (SQLite and
PostgreSQL through the proxy), and their one-line failures with their exit codes."""

from __future__ import annotations

import argparse
import csv
import io
import json
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest

from ate.cli.store_cmds import add_parsers, default_db_url, dispatch
from ate.model.events import Event, SlotEnded
from ate.scheduler.bus import EventBus
from ate.station.store_sink import StoreSink
from ate.store.queries import known_version
from tests.store_spool.conftest import Db, PanelMaker, record_ids


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="ate")
    sub = p.add_subparsers(dest="command", required=True)
    add_parsers(sub)
    sub.add_parser("run")
    return p


def ate(*argv: str) -> int | None:
    return dispatch(parser().parse_args(list(argv)))


@dataclass
class Filled:
    db: Db
    spool: Path
    maker: PanelMaker
    first: list[Event]
    retest: list[Event]
    other: list[Event]

    @property
    def ids(self) -> list[str]:
        return record_ids(self.first) + record_ids(self.retest) + record_ids(self.other)


@pytest.fixture
async def filled(db: Db, tmp_path: Path) -> Filled:
    """Panel 1 at 07:01 (slot 2 fails, the others provisioned), the failed unit retested
    alone at 08:00 and passing, and a panel on another station at 09:00."""
    maker = PanelMaker(seed=9)
    first = maker.panel(provision=True, fail=(2,), started_at="2026-11-21T07:01:00+00:00")
    failed_mac = maker.macs[1]
    retest = maker.panel(slots=1, macs={1: failed_mac}, started_at="2026-11-21T08:00:00+00:00")
    other = PanelMaker(station="st2", fixture="bench-b", seed=10).panel(
        slots=2, started_at="2026-11-21T09:00:00+00:00"
    )
    spool = tmp_path / "st1-spool.db"
    for station, events, path in (
        ("st1", first + retest, spool),
        ("st2", other, tmp_path / "st2-spool.db"),
    ):
        sink = StoreSink.start(db.url, path, station=station, operator="op1")
        bus = EventBus()
        sink.attach(bus)
        for e in events:
            bus.emit(e)
        assert await sink.drain(30.0) == 0
        sink.close()
    return Filled(db, spool, maker, first, retest, other)


def unit_serial(events: list[Event], slot: int) -> str:
    for e in events:
        if isinstance(e, SlotEnded) and e.result.slot == slot:
            return str(e.result.extra["provisioning"]["serial"])
    raise AssertionError("no such slot")


# -- ate unit ------------------------------------------------------------------------------------


def test_unit_by_serial_shows_the_whole_history(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    serial = unit_serial(filled.first, 1)
    mac = filled.maker.macs[0]
    assert ate("unit", serial, "--db", filled.db.url) == 0
    out = capsys.readouterr().out
    assert mac in out and serial in out and "provisioning locked" in out
    assert "station st1" in out and "fixture sim-quad slot 1" in out and "operator op1" in out
    assert "s3-devkit-functional 1.2.0" in out and "PASS" in out
    assert "voltage" in out and "1.55 .. 1.75 V" in out and "== 1" in out
    assert "fingerprint sha256:" in out and "issuer CN=ate test CA" in out
    assert "valid until 2046-11-21" in out
    assert out.index("cert.issue") < out.index("efuse:sb.en")
    assert "PRIVATE" not in out


@pytest.mark.parametrize("form", ["upper-dash", "bare", "colon"])
def test_unit_by_mac_in_any_form(
    filled: Filled, capsys: pytest.CaptureFixture[str], form: str
) -> None:
    mac = filled.maker.macs[1]  # the unit that failed, then passed its retest
    key = {
        "upper-dash": mac.upper().replace(":", "-"),
        "bare": mac.replace(":", ""),
        "colon": mac,
    }[form]
    assert ate("unit", key, "--db", filled.db.url) == 0
    out = capsys.readouterr().out
    assert mac in out and "2 run(s)" in out
    assert "failing step vref_divider" in out and "attempt 2" in out
    assert "certificate: none" in out


def test_unknown_unit_is_exit_1(filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
    assert ate("unit", "AS3-NOPE-0000-Z", "--db", filled.db.url) == 1
    assert capsys.readouterr().err == "ate: no unit with serial or MAC AS3-NOPE-0000-Z\n"


# -- ate export ----------------------------------------------------------------------------------


def test_export_csv_to_a_file(
    filled: Filled, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "exports" / "runs.csv"
    out.parent.mkdir()
    out.write_text("old content\n")
    assert ate("export", "--format", "csv", "--out", str(out), "--db", filled.db.url) == 0
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["run_id"] for r in rows] == filled.ids  # time order
    assert {"verdict", "station", "attempt", "failing_step"} <= set(rows[0])
    assert [r["verdict"] for r in rows[:4]] == ["PASS", "FAIL", "PASS", "PASS"]
    assert list(out.parent.iterdir()) == [out]  # no temporary file left behind
    assert capsys.readouterr().err == f"7 run(s) written to {out}\n"


def test_export_jsonl_window(filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
    args = ("--since", "2026-11-21T07:30:00Z", "--until", "2026-11-21T08:30:00+00:00")
    assert ate("export", "--format", "jsonl", *args, "--db", filled.db.url) == 0
    lines = capsys.readouterr().out.splitlines()
    rows = [json.loads(line) for line in lines]
    assert [r["run_id"] for r in rows] == record_ids(filled.retest)


def test_export_junit(filled: Filled, tmp_path: Path) -> None:
    out = tmp_path / "runs.xml"
    assert ate("export", "--format", "junit", "--out", str(out), "--db", filled.db.url) == 0
    root = ET.parse(out).getroot()
    suites = root.findall("testsuite")
    assert len(suites) == len(filled.ids)
    props = [{p.get("name"): p.get("value") for p in s.iter("property")} for s in suites]
    assert [p["run_id"] for p in props] == filled.ids
    failed = suites[1]
    assert failed.get("failures") == "1"
    [failure] = failed.iter("failure")
    assert "2.5 V" in (failure.get("message") or "")
    assert props[0]["serial"] == unit_serial(filled.first, 1)
    assert any("voltage =" in (c.text or "") for c in suites[0].iter("system-out"))


def test_export_of_an_empty_window_is_exit_1(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    code = ate("export", "--since", "2030-01-01", "--until", "2030-02-01", "--db", filled.db.url)
    assert code == 1
    assert capsys.readouterr().err == "ate: no runs between 2030-01-01 and 2030-02-01\n"


def test_export_with_a_bad_time_is_exit_2(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ate("export", "--since", "yesterday", "--db", filled.db.url) == 2
    err = capsys.readouterr().err
    assert (
        err.startswith("ate: --since 'yesterday' is not an ISO 8601 time") and err.count("\n") == 1
    )


# -- ate audit verify ----------------------------------------------------------------------------


def test_audit_verify_intact(filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
    assert ate("audit", "verify", "--db", filled.db.url) == 0
    # st1: signin, run, run, 3 x (issue, burn); st2: signin, run
    assert capsys.readouterr().out == (
        "audit log intact: 11 entries, 2 stations, every entry signed by its station's key\n"
    )
    assert (
        ate(
            "audit",
            "verify",
            "--station",
            "st1",
            "--spool",
            str(filled.spool),
            "--db",
            filled.db.url,
        )
        == 0
    )
    assert capsys.readouterr().out == (
        "audit log intact: 9 entries, 1 stations, every entry signed by its station's key\n"
    )


def _count(filled: Filled, station: str = "st1") -> int:
    return int(filled.db.sql("SELECT COUNT(*) FROM audit_log WHERE station=?", (station,))[0][0])


TAMPERING: dict[str, tuple[str, str]] = {
    "edited payload": (
        "UPDATE audit_log SET payload = '{\"operator\":\"mallory\"}' WHERE station='st1' AND seq=1",
        "the entry was edited",
    ),
    "edited time": (
        "UPDATE audit_log SET at = '2020-01-01T00:00:00.000+00:00' WHERE station='st1' AND seq=4",
        "the entry was edited",
    ),
    "removed entry": (
        "DELETE FROM audit_log WHERE station='st1' AND seq=3",
        "seq 3 missing",
    ),
    "rewritten hash": (
        "UPDATE audit_log SET hash = '" + "f" * 64 + "' WHERE station='st1' AND seq=5",
        "its hash does not match",
    ),
}


@pytest.mark.parametrize("how", sorted(TAMPERING))
def test_audit_verify_finds_tampering(
    filled: Filled, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    statement, expect = TAMPERING[how]
    filled.db.sql(statement)
    assert ate("audit", "verify", "--db", filled.db.url) == 1
    out = capsys.readouterr().out
    assert expect in out and "station 'st1'" in out
    assert out.splitlines()[-1].startswith("audit log NOT intact")
    assert "st2" not in out


def test_a_truncated_tail_needs_the_spools_head(
    filled: Filled, capsys: pytest.CaptureFixture[str]
) -> None:
    last = _count(filled)
    filled.db.sql("DELETE FROM audit_log WHERE station='st1' AND seq=?", (last,))
    assert ate("audit", "verify", "--db", filled.db.url) == 0  # a shorter chain still chains
    capsys.readouterr()
    assert ate("audit", "verify", "--spool", str(filled.spool), "--db", filled.db.url) == 1
    out = capsys.readouterr().out
    assert f"ends at seq {last - 1} but the station's last entry was seq {last}" in out


def test_audit_verify_with_a_bad_spool_is_exit_2(
    filled: Filled, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.db"
    assert ate("audit", "verify", "--spool", str(missing), "--db", filled.db.url) == 2
    assert capsys.readouterr().err == f"ate: no station spool at {missing}\n"
    assert not missing.exists()


# -- what goes wrong -----------------------------------------------------------------------------


def test_schema_too_new_is_exit_2(filled: Filled, capsys: pytest.CaptureFixture[str]) -> None:
    filled.db.sql(
        "INSERT INTO schema_migrations (version, applied_at, description) VALUES (?, ?, ?)",
        (99, "2030-01-01T00:00:00+00:00", "from the future"),
    )
    for argv in (("unit", "x"), ("export",), ("audit", "verify")):
        assert ate(*argv, "--db", filled.db.url) == 2
        err = capsys.readouterr().err
        assert (
            f"database schema is version 99, this ate knows up to {known_version()}; upgrade ate"
            in err
        )
        assert err.count("\n") == 1


def test_unreachable_database_is_exit_3(pg_db: Db, capsys: pytest.CaptureFixture[str]) -> None:
    assert pg_db.proxy is not None
    pg_db.proxy.cut()
    for argv in (("unit", "x"), ("export",), ("audit", "verify")):
        assert ate(*argv, "--db", pg_db.url) == 3
        err = capsys.readouterr().err
        assert err.startswith("ate: line database unreachable: ") and err.count("\n") == 1
        assert f"port {pg_db.proxy.port}" in err and "Connection refused" in err


def test_bad_url_and_missing_file_are_exit_3(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ate("unit", "x", "--db", "mysql://root:hunter2@db/line") == 3
    err = capsys.readouterr().err
    assert "is not one ate can open" in err and "hunter2" not in err
    missing = tmp_path / "none" / "ate.db"
    assert ate("export", "--db", f"sqlite://{missing}") == 3
    assert capsys.readouterr().err.startswith(f"ate: no line database at {missing}")
    assert not missing.parent.exists()  # a reading command creates nothing


def test_default_database_and_ate_db(
    filled: Filled,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ATE_DB", raising=False)
    assert default_db_url() == f"sqlite://{tmp_path / 'ate-state' / 'ate.db'}"
    assert ate("audit", "verify") == 3  # no ./ate-state/ate.db here
    assert "ate-state/ate.db" in capsys.readouterr().err
    monkeypatch.setenv("ATE_DB", filled.db.url)
    assert ate("audit", "verify") == 0
    assert capsys.readouterr().out.startswith("audit log intact")
    with pytest.raises(SystemExit):
        parser().parse_args(["export", "--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "$ATE_DB" in help_text and "sqlite:///<cwd>/ate-state/ate.db" in help_text


def test_other_commands_are_not_dispatched_here() -> None:
    assert dispatch(parser().parse_args(["run"])) is None
