"""Bad input gets a clear answer and nothing irreversible happens: a CA that cannot sign,
a wrong PIN, a bad CSR, a bad proof, a serial that exists, an altered release, a profile
that mixes test and production trust."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import yaml
from prov_bench import write_sequence
from prov_helpers import station_state, usr_serial

from ate.cli.main import main
from ate.config.errors import InputError
from ate.config.loader import load_sequence
from ate.model.verdict import Verdict
from ate.pki.devpki import make_production_like_root
from ate.pki.softhsm import SoftHsmToken
from ate.provision.journal import JournalError
from ate.provision.profile import CaNotReady
from ate.sim.devkit import PIN_ENV, make_dev_profile
from ate.station.provisioning import local_store_url, open_provisioning
from ate.store import open_store


def open_for(profile: Path, seq: Any, tmp: Path) -> Any:
    return open_provisioning(
        profile, seq, state_dir=tmp / "st", out_dir=tmp / "o", station="s", operator="o"
    )


def nothing_burned(bench: Any, slot: int) -> None:
    assert usr_serial(bench, slot) is None
    for fuse in ("SECURE_BOOT_EN", "ENABLE_SECURITY_DOWNLOAD", "DIS_PAD_JTAG"):
        assert not bench.efuse(slot, fuse), fuse
    assert bench.efuse(slot, "SPI_BOOT_CRYPT_CNT") == 0


def edit_profile(profile: Path, name: str, change: Any) -> Path:
    doc = yaml.safe_load(profile.read_text())
    change(doc)
    out = profile.with_name(name)
    out.write_text(yaml.safe_dump(doc, sort_keys=False))
    return out


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ({"prov_key_type": "p384"}, "CSR rejected"),
        ({"prov_subject_tamper": True}, "CSR rejected"),
        ({"prov_bad_signature": True}, "does not verify"),
    ],
    ids=["csr-key-type", "csr-subject", "bad-proof"],
)
async def test_a_misbehaving_device_fails_before_anything_is_issued(
    make_prov_bench: Any, fault: dict[str, Any], words: str
) -> None:
    bench = make_prov_bench(slots=1, sim_slots={1: {"faults": fault}})
    result = await bench.run()
    r = result.slots[1]
    assert r.verdict is Verdict.FAIL and words in r.reason, r.reason
    assert all(s.verdict is Verdict.PASS for s in r.steps)
    with station_state(bench.state_dir) as (store, _journal):
        assert store.certificates() == []
    nothing_burned(bench, 1)


async def test_a_serial_that_belongs_to_another_unit_is_refused(make_prov_bench: Any) -> None:
    bench = make_prov_bench(slots=1)
    station = bench.open_station()
    mac = bench.efuses(1).mac.hex(":")
    serial = station.provisioner.derive(mac, None)
    with open_store(local_store_url(bench.state_dir)) as store:
        store.claim_serial("aa:bb:cc:00:00:01", serial)
    try:
        result = await bench.run(station=station)
    finally:
        station.close()
    r = result.slots[1]
    assert r.verdict is Verdict.ERROR
    assert f"serial {serial} already belongs to unit aa:bb:cc:00:00:01" in r.reason
    nothing_burned(bench, 1)


def test_an_altered_release_refuses_the_run(tmp_path: Path) -> None:
    kit = make_dev_profile(tmp_path / "kit")
    doc = yaml.safe_load(kit.profile.read_text())
    app = (kit.profile.parent / doc["release"]).parent / "app.bin"
    app.write_bytes(app.read_bytes()[:-1] + b"\x00")
    seq = load_sequence(write_sequence(tmp_path))
    with pytest.raises(InputError) as err:
        open_for(kit.profile, seq, tmp_path)
    text = str(err.value)
    assert str(kit.profile) in text and "app.bin" in text and "sha256" in text


def test_a_missing_release_file_refuses_the_run(tmp_path: Path) -> None:
    kit = make_dev_profile(tmp_path / "kit")
    doc = yaml.safe_load(kit.profile.read_text())
    ((kit.profile.parent / doc["release"]).parent / "bootloader.bin").unlink()
    seq = load_sequence(write_sequence(tmp_path))
    with pytest.raises(InputError, match=r"bootloader\.bin"):
        open_for(kit.profile, seq, tmp_path)


def test_production_profile_with_a_test_root_is_refused(
    tmp_path: Path, hsm_token: SoftHsmToken, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PIN_ENV, hsm_token.pin)
    kit = make_dev_profile(tmp_path / "kit", token=hsm_token, ica_key_label="prod-mix")
    root = kit.profile.parent / yaml.safe_load(kit.profile.read_text())["ca"]["root"]
    pin = hashlib.sha256(_der(root)).hexdigest()

    def production(doc: dict[str, Any]) -> None:
        doc["environment"] = "production"
        doc["ca"]["root_sha256"] = pin

    profile = edit_profile(kit.profile, "production.yaml", production)
    seq = load_sequence(write_sequence(tmp_path))
    with pytest.raises(InputError, match=r"test root|TEST") as err:
        open_for(profile, seq, tmp_path)
    assert "production.yaml" in str(err.value)


def test_dev_profile_with_a_production_root_is_refused(tmp_path: Path) -> None:
    kit = make_dev_profile(tmp_path / "kit")
    cert, _key = make_production_like_root(tmp_path / "prodroot", "ACME Device Root CA")

    def swap_root(doc: dict[str, Any]) -> None:
        doc["ca"]["root"] = str(cert)

    profile = edit_profile(kit.profile, "mixed.yaml", swap_root)
    seq = load_sequence(write_sequence(tmp_path))
    with pytest.raises(InputError, match="trust"):
        open_for(profile, seq, tmp_path)


def test_wrong_pin_refuses_to_start_with_exit_3(
    tmp_path: Path,
    hsm_token: SoftHsmToken,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    kit = make_dev_profile(tmp_path / "kit", token=hsm_token, ica_key_label="wrong-pin")
    monkeypatch.setenv(PIN_ENV, "not-the-pin")
    seq = load_sequence(write_sequence(tmp_path))
    with pytest.raises(CaNotReady, match="wrong PIN"):
        open_for(kit.profile, seq, tmp_path)
    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "sim-quad.yaml"
    code = main(
        [
            "run",
            "-f",
            str(fixture),
            "-s",
            str(seq.path),
            "--profile",
            str(kit.profile),
            "--state",
            str(tmp_path / "st"),
            "--out",
            str(tmp_path / "o"),
            "--no-live",
        ]
    )
    err = capsys.readouterr().err
    assert code == 3
    assert "wrong PIN" in err and "not-the-pin" not in err and len(err.strip().splitlines()) == 1


def test_a_bad_profile_is_one_line_with_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    kit = make_dev_profile(tmp_path / "kit")
    profile = edit_profile(kit.profile, "typo.yaml", lambda d: d["serial"].update(prefix="toolong"))
    seq = write_sequence(tmp_path)
    fixture = Path(__file__).resolve().parents[2] / "fixtures" / "sim-quad.yaml"
    code = main(
        [
            "run",
            "-f",
            str(fixture),
            "-s",
            str(seq),
            "--profile",
            str(profile),
            "--state",
            str(tmp_path / "st"),
            "--out",
            str(tmp_path / "o"),
            "--no-live",
        ]
    )
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and "typo.yaml:" in err and "prefix" in err


def _der(pem_path: Path) -> bytes:
    from cryptography import x509
    from cryptography.hazmat.primitives.serialization import Encoding

    return x509.load_pem_x509_certificate(pem_path.read_bytes()).public_bytes(Encoding.DER)


def test_an_older_ates_ledger_in_the_state_folder_refuses_provisioning(
    tmp_path: Path, dev_kit: Any
) -> None:
    """Its units' identities and half-done acts are nowhere else: never silently ignored."""
    seq = load_sequence(write_sequence(tmp_path))
    (tmp_path / "st").mkdir()
    (tmp_path / "st" / "ledger.sqlite").write_bytes(b"")
    with pytest.raises(JournalError, match=r"ledger\.sqlite is a provisioning ledger of an older"):
        open_for(dev_kit.profile, seq, tmp_path)


def test_the_journal_is_in_the_spool_file_only_the_station_reads(
    tmp_path: Path, dev_kit: Any
) -> None:
    seq = load_sequence(write_sequence(tmp_path))
    station = open_for(dev_kit.profile, seq, tmp_path)
    station.close()
    spool = tmp_path / "st" / "spool.db"
    assert spool.stat().st_mode & 0o777 == 0o600
    with sqlite3.connect(spool) as db:
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    db.close()
    assert {"outbox", "acts", "flash_images"} <= tables
    assert not (tmp_path / "st" / "ledger.sqlite").exists()  # no third SQLite file
