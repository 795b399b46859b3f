"""The audit log cannot be forged without the station's key: an entry appended with the
project's own code (a correct hash chain, even a freshly made key) is refused by
`ate audit verify`, naming the entry; so are edited, removed and reordered ones. State
folders are 0700 and their files 0600."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from ate.cli.main import main
from ate.statedir import private_file, private_folder
from ate.store.api import open_store
from ate.store.signing import KEY_FILE, StationKey
from ate.store.spool import Spool


def _station_log(tmp_path: Path, entries: int = 3) -> tuple[str, Path]:
    """A line database with a signed chain of `entries` from station st1, whose state
    folder (and key) is tmp_path/state."""
    state = tmp_path / "state"
    key = StationKey.load_or_create(state)
    url = f"sqlite:///{tmp_path / 'line.db'}"
    store = open_store(url)
    try:
        for n in range(entries):
            store.audit_append("st1", "run", {"n": n}, signer=key)
    finally:
        store.close()
    return url, state


def _verify(url: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, list[str]]:
    code = main(["audit", "verify", "--db", url])
    return code, capsys.readouterr().out.splitlines()


def test_an_intact_signed_log_verifies(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = _station_log(tmp_path)
    code, out = _verify(url, capsys)
    assert code == 0 and out == [
        "audit log intact: 3 entries, 1 stations, every entry signed by its station's key"
    ]


def test_an_entry_appended_with_the_projects_own_code_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = _station_log(tmp_path)
    store = open_store(url)
    try:  # the forger's way: the store's own append, a perfect hash chain, no key
        store.audit_append("st1", "issue", {"serial": "FORGED"})
    finally:
        store.close()
    code, out = _verify(url, capsys)
    assert code != 0
    assert out[0] == (
        "audit log of station 'st1', entry seq 4: not signed (appended without the station's key)"
    )


def test_an_entry_signed_with_another_key_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, _ = _station_log(tmp_path)
    forger = StationKey.load_or_create(tmp_path / "forger")
    store = open_store(url)
    try:
        with pytest.raises(Exception, match="signs its audit log with another key"):
            store.audit_append("st1", "issue", {"serial": "FORGED"}, signer=forger)
    finally:
        store.close()
    # and written straight into the file, around the store's check:
    db = sqlite3.connect(tmp_path / "line.db")
    (prev,) = db.execute("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    from ate.store.audit import make_entry

    entry = make_entry("st1", 4, "2026-12-05T00:00:00+00:00", "issue", {"x": 1}, prev)
    db.execute(
        "INSERT INTO audit_log (station, seq, at, kind, payload, prev_hash, hash, signature) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        ("st1", 4, entry.at, "issue", '{"x":1}', prev, entry.hash, forger.sign(entry.hash)),
    )
    db.commit()
    db.close()
    code, out = _verify(url, capsys)
    assert code != 0
    assert out[0].startswith(
        "audit log of station 'st1', entry seq 4: its signature does not verify"
    )


def test_an_edited_entry_is_named(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url, _ = _station_log(tmp_path)
    db = sqlite3.connect(tmp_path / "line.db")
    db.execute("UPDATE audit_log SET payload = '{\"n\":7}' WHERE seq = 2")
    db.commit()
    db.close()
    code, out = _verify(url, capsys)
    assert code != 0
    assert out[0].startswith("audit log of station 'st1', entry seq 2: its hash does not match")


def test_a_replaced_key_registration_shows_against_the_state_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, state = _station_log(tmp_path)
    db = sqlite3.connect(tmp_path / "line.db")
    db.execute("UPDATE audit_keys SET public_key = ? WHERE station = 'st1'", ("00" * 32,))
    db.commit()
    db.close()
    Spool.open_or_recover(state / "spool.db").close()
    spool = str(state / "spool.db")
    code = main(["audit", "verify", "--db", url, "--station", "st1", "--spool", spool])
    out = capsys.readouterr().out.splitlines()
    assert code != 0
    assert out[0] == (
        "audit log of station 'st1': the key registered in the line database is not the key "
        "in the station's state folder (the registration was replaced)"
    )


def test_state_folders_0700_files_0600(tmp_path: Path) -> None:
    state = private_folder(tmp_path / "a" / "state")
    assert state.stat().st_mode & 0o777 == 0o700
    loose = state / "f"
    loose.write_text("x")
    loose.chmod(0o644)
    assert private_file(loose).stat().st_mode & 0o777 == 0o600
    StationKey.load_or_create(tmp_path / "k")
    assert (tmp_path / "k" / KEY_FILE).stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(
    ("damage", "finding"),
    [
        (
            "UPDATE audit_log SET payload = '{not json' WHERE seq = 2",
            "audit log row (station 'st1', seq 2): damaged: payload is not JSON",
        ),
        (
            "UPDATE audit_log SET payload = '[1, 2]' WHERE seq = 2",
            "audit log row (station 'st1', seq 2): damaged: payload is JSON list, not an object",
        ),
        (
            "UPDATE audit_log SET hash = 42 WHERE seq = 3",
            "audit log row (station 'st1', seq 3): damaged: hash is '42', not 64 hex digits",
        ),
        ("DROP TABLE audit_log", "audit log unreadable: "),
    ],
    ids=["bad-json", "wrong-json-type", "wrong-type", "dropped-table"],
)
def test_damaged_rows_are_findings_not_tracebacks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str, finding: str
) -> None:
    url, _ = _station_log(tmp_path)
    db = sqlite3.connect(tmp_path / "line.db")
    db.execute(damage)
    db.commit()
    db.close()
    code, out = _verify(url, capsys)
    assert code != 0
    assert any(line.startswith(finding) for line in out), out
    assert "Traceback" not in "\n".join(out)
