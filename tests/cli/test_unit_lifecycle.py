"""`ate unit ship|rma|scrap|revoke|show|revoked` against a real SQLite line database:
moves audited in the station's chain, refusals one line with exit 2, the revoked export
as JSON, PEM list (from the line store) and a CRL the CA's key verifies."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ate.cli.main import main
from ate.store import CertificateRow, open_store, verify_chain
from tests.ate_cli import run_ate
from tests.self_signed import self_signed, write_pem
from tests.store.records import mac_of, make_record, provisioning

FP1, FP2 = "sha256:" + "a1" * 32, "sha256:" + "b2" * 32


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path}/line.db"
    store = open_store(url)
    store.ingest(make_record(1, mac=mac_of(1), prov=provisioning("S-1", FP1, state="locked")))
    store.ingest(make_record(2, mac=mac_of(2), prov=provisioning("S-2", FP2, state="written")))
    store.close()
    return url


def ate(*args: str) -> int:
    return main(list(args))


def test_moves_are_audited_and_shown(
    db: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ATE_STATION", "rma-desk")
    assert ate("unit", "ship", "S-1", "--store", db, "--user", "erik") == 0
    assert "S-1): locked -> shipped (audit entry 1)" in capsys.readouterr().out
    assert ate("unit", "rma", "S-1", "--store", db, "--user", "anna", "--reason", "no wifi") == 0
    assert ate("unit", "show", "S-1", "--store", db) == 0
    out = capsys.readouterr().out
    assert "provisioning rma" in out
    assert "ship  locked -> shipped  by erik at rma-desk" in out
    assert "rma  shipped -> rma  by anna at rma-desk: no wifi" in out
    store = open_store(db)
    entries = store.audit_entries("rma-desk")
    store.close()
    assert verify_chain(entries) == []
    assert [(e.kind, e.payload["user"], e.payload["reason"]) for e in entries] == [
        ("unit.ship", "erik", ""),
        ("unit.rma", "anna", "no wifi"),
    ]


def test_a_refused_move_is_one_line_exit_2(db: str) -> None:
    done = run_ate("unit", "ship", "S-2", "--store", db, "--user", "erik")
    assert done.returncode == 2, done.stderr
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"ate: unit {mac_of(2)} (serial S-2) in state written cannot take ship; allowed: "
        "locking, locked, scrap, revoke"
    ]
    store = open_store(db)
    assert store.unit_history("S-2").prov_state == "written"  # type: ignore[union-attr]
    assert store.audit_entries() == []
    store.close()


def test_bad_invocations(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert ate("unit", "ship", "S-1", "--store", db) == 2
    assert "needs --user NAME" in capsys.readouterr().err
    assert ate("unit", "ship", "--store", db, "--user", "x") == 2
    assert "needs the unit's SERIAL" in capsys.readouterr().err
    assert ate("unit", "ship", "S-9", "--store", db, "--user", "x") == 1
    assert "no unit with serial or MAC S-9" in capsys.readouterr().err
    assert ate("unit", "S-1", "--db", db) == 0  # the history, as before
    assert "provisioning locked" in capsys.readouterr().out


def _ca(tmp_path: Path) -> tuple[Path, Path, ec.EllipticCurvePrivateKey]:
    cert, key = self_signed("ATE Test Issuing CA", days=365, serial=7)
    cert_path, key_path = write_pem(cert, key, tmp_path / "ca.pem", tmp_path / "ca.key")
    return cert_path, key_path, key


def test_revoked_export_json_pem_list_and_crl(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ate("unit", "revoke", "S-1", "--store", db, "--user", "erik", "--reason", "stolen") == 0
    assert ate("unit", "scrap", "S-2", "--store", db, "--user", "erik", "--reason", "cracked") == 0
    capsys.readouterr()
    out = tmp_path / "revoked.json"
    assert ate("unit", "revoked", "--store", db, "--format", "json", "-o", str(out)) == 0
    assert "2 revoked certificate(s) written to" in capsys.readouterr().out
    rows = json.loads(out.read_text())
    assert [(r["serial"], r["fingerprint"], r["state"], r["reason"]) for r in rows] == [
        ("S-1", FP1, "revoked", "stolen"),
        ("S-2", FP2, "scrapped", "cracked"),
    ]
    assert all(r["cert_serial"] and r["revoked_at"] for r in rows)

    # pem-list: the certificates themselves, as the provisioning flow recorded them in the
    # line store (FP2 came from a unit record only: identifiers, no PEM)
    pem = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
    with open_store(db) as store:
        store.record_certificate(
            CertificateRow(FP1, mac_of(1), "S-1", "a1", "CN=ca", "2046", "st", "op", "t", pem, "04")
        )
    assert ate("unit", "revoked", "--store", db, "--format", "pem-list") == 0
    got = capsys.readouterr()
    assert got.out == pem
    assert "1 revoked certificate(s) have no PEM in the line database" in got.err
    assert FP2 in got.err

    cert_path, key_path, key = _ca(tmp_path)
    crl_path = tmp_path / "line.crl.pem"
    assert (
        ate(
            "unit",
            "revoked",
            "--store",
            db,
            "--format",
            "crl",
            "--ca-cert",
            str(cert_path),
            "--ca-key",
            str(key_path),
            "-o",
            str(crl_path),
        )
        == 0
    )
    crl = x509.load_pem_x509_crl(crl_path.read_bytes())
    assert crl.is_signature_valid(key.public_key())
    assert {r.serial_number for r in crl} == {int(row["cert_serial"], 16) for row in rows}
    reasons = {
        r.serial_number: r.extensions.get_extension_for_class(x509.CRLReason).value.reason
        for r in crl
    }
    assert reasons[int(rows[1]["cert_serial"], 16)] is x509.ReasonFlags.cessation_of_operation
    assert ate("unit", "revoked", "--store", db, "--format", "crl") == 2
    assert "give --ca-cert and --ca-key" in capsys.readouterr().err
