"""Production mode: the station runs only a sequence (and profile) whose content digest an
engineer approved in the line database with `ate approval add`. Unapproved, edited or
revoked content is refused at start and at reload (the running configuration stays), a
non-engineer cannot approve, and what ran under whose approval is in the audit log."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import yaml

from ate.sim.release import esp_image
from ate.station.approvals import sequence_content
from ate.station.daemon import CannotStart, Station
from ate.store import open_store
from tests.ate_cli import run_ate as ate
from tests.station.conftest import FAST, running, wait_status, write_station

USERS = {"erik": ("engineer", "902114"), "olga": ("operator", "4711")}


def production_station(tmp: Path) -> tuple[Path, str, Path]:
    url = f"sqlite:///{tmp / 'line.db'}"
    path = write_station(tmp, [("fx1", {"slots": 1})], production=True, db=url)
    for name, (role, pin) in USERS.items():
        done = ate("user", "add", name, "--role", role, "--db", url, stdin=f"{pin}\n")
        assert done.returncode == 0, done.stderr
    seq = path.parent / yaml.safe_load(path.read_text())["sequence"]
    return path, url, seq


def test_an_unapproved_sequence_does_not_start(tmp_path: Path) -> None:
    path, url, seq = production_station(tmp_path)
    station = Station(path, transport="socket", options=FAST)
    with pytest.raises(CannotStart) as refused:
        asyncio.run(station.run())
    digest = sequence_content(seq).digest
    assert str(refused.value) == (
        f"production mode: sequence s3-devkit-functional 1.0.0 ({seq.name}, digest "
        f"{digest[:12]}): it is not approved for production; an engineer approves it "
        f"with `ate approval add {seq}`"
    )
    store = open_store(url)
    kinds = [e.kind for e in store.audit_entries("st1")]
    store.close()
    assert "production.refused" in kinds, kinds


def test_only_an_engineer_approves_and_edits_are_refused(tmp_path: Path) -> None:
    path, url, seq = production_station(tmp_path)
    done = ate("approval", "add", str(seq), "--user", "olga", "--db", url, stdin="4711\n")
    assert (done.returncode, done.stderr) == (
        2,
        "ate: olga is operator: approving for production needs engineer\n",
    )
    done = ate("approval", "add", str(seq), "--user", "erik", "--db", url, stdin="1111\n")
    assert (done.returncode, done.stderr) == (2, "ate: unknown user or wrong PIN\n")
    done = ate(
        "approval",
        "add",
        str(seq),
        "--user",
        "erik",
        "--note",
        "ECO-7",
        "--station",
        "st1",
        "--db",
        url,
        stdin="902114\n",
    )
    assert done.returncode == 0, done.stderr
    digest = sequence_content(seq).digest
    assert digest in done.stdout and "approved for production by erik" in done.stdout

    async def scenario() -> None:
        async with running(path) as station:
            await wait_status(station, lambda st: st.fixtures["fx1"].panels == 1)
            # An edit on the station PC: one changed description, then SIGHUP.
            text = seq.read_text()
            doc = yaml.safe_load(text)
            doc["description"] = "edited on the station PC"
            seq.write_text(yaml.safe_dump(doc, sort_keys=False))
            station.request_reload()
            await wait_status(station, lambda st: st.config_error is not None)
            assert "it is not approved for production" in (station.status.config_error or "")
            assert station.status.reloads == 0
            # The approved configuration runs on: its loop back and waiting, another panel.
            await wait_status(station, lambda st: st.fixtures["fx1"].state == "waiting")
            twin = station.twins["fx1"]
            twin.set_clamp(False)
            await wait_status(station, lambda st: st.fixtures["fx1"].state == "waiting")
            twin.set_clamp(True)
            await wait_status(station, lambda st: st.fixtures["fx1"].panels == 2)
            seq.write_text(text)

    asyncio.run(scenario())
    store = open_store(url)
    entries = [(e.kind, e.payload) for e in store.audit_entries("st1")]
    store.close()
    ran = [p for k, p in entries if k == "production"]
    assert ran and ran[0]["sequence"]["digest"] == digest
    assert ran[0]["sequence"]["approved_by"] == "erik"
    approvals = [p for k, p in entries if k == "approval"]
    assert approvals == [
        {
            "act": "add",
            "kind": "sequence",
            "digest": digest,
            "name": "s3-devkit-functional 1.0.0",
            "by": "erik",
            "note": "ECO-7",
        }
    ]


def test_a_revoked_approval_stops_the_next_start(tmp_path: Path) -> None:
    path, url, seq = production_station(tmp_path)
    assert (
        ate("approval", "add", str(seq), "--user", "erik", "--db", url, stdin="902114\n").returncode
        == 0
    )
    digest = sequence_content(seq).digest
    done = ate(
        "approval",
        "revoke",
        "sequence",
        digest[:12],
        "--user",
        "erik",
        "--db",
        url,
        stdin="902114\n",
    )
    assert done.returncode == 0, done.stderr
    listing = ate("approval", "list", "--db", url).stdout
    assert digest[:12] in listing and "revoked by erik" in listing
    with pytest.raises(CannotStart, match="its approval was revoked by erik"):
        asyncio.run(Station(path, transport="socket", options=FAST).run())


def test_the_digest_follows_content_not_names(tmp_path: Path) -> None:
    _, _, seq = production_station(tmp_path)
    before = sequence_content(seq)
    moved = seq.with_name("renamed.yaml")
    moved.write_bytes(seq.read_bytes())
    assert sequence_content(moved).digest == before.digest
    doc = yaml.safe_load(seq.read_text())
    image = tmp_path / "fw.bin"
    image.write_bytes(Path(doc["test_firmware"]["path"]).read_bytes())
    doc["test_firmware"]["path"] = str(image)
    seq.write_text(yaml.safe_dump(doc, sort_keys=False))
    before = sequence_content(seq)
    # Another valid test firmware under the same name: the approval no longer covers it.
    image.write_bytes(esp_image(9, 0x42000020, 0x42000020, b"rebuilt", 0x2000, "other"))
    assert sequence_content(seq).digest != before.digest
    shown = ate("approval", "digest", str(seq))
    assert shown.returncode == 0 and sequence_content(seq).digest in shown.stdout
    assert "test_firmware" in shown.stdout
