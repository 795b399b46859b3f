"""The development PKI and SoftHSM2 helpers: names, constraints, file modes, token keys."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509

from ate.pki.ca import load_pem_chain
from ate.pki.devpki import DevPki, make_dev_pki, make_production_like_root
from ate.pki.errors import PkiError
from ate.pki.softhsm import SoftHsmToken, create_token, find_module
from ate.pki.trust import is_test_root

ROOT = Path(__file__).resolve().parents[2]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _bc(cert: x509.Certificate) -> x509.BasicConstraints:
    return cert.extensions.get_extension_for_class(x509.BasicConstraints).value


def test_file_dev_pki(tmp_path: Path) -> None:
    pki = make_dev_pki(tmp_path / "pki", name="line7")
    assert pki.ica_key is not None and pki.chain == (pki.ica_cert,)
    assert _mode(tmp_path / "pki") == 0o700
    assert _mode(pki.root_key) == 0o600 and _mode(pki.ica_key) == 0o600
    root = load_pem_chain([pki.root_cert])[0]
    ica = load_pem_chain([pki.ica_cert])[0]
    assert root.subject.rfc4514_string() == "CN=line7 Device Root CA TEST,O=line7"
    assert ica.subject.rfc4514_string() == "CN=line7 Manufacturing CA TEST,O=line7"
    assert is_test_root(root)
    assert _bc(root).ca and _bc(root).path_length == 1
    assert _bc(ica).ca and _bc(ica).path_length == 0
    lifetime = root.not_valid_after_utc - root.not_valid_before_utc
    assert timedelta(days=365 * 20) <= lifetime <= timedelta(days=365 * 20 + 6)
    assert ica.not_valid_after_utc <= root.not_valid_after_utc
    ica.verify_directly_issued_by(root)
    root.verify_directly_issued_by(root)
    result = subprocess.run(
        ["openssl", "verify", "-x509_strict", "-CAfile", str(pki.root_cert), str(pki.ica_cert)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_key_files_are_private_even_when_they_existed(tmp_path: Path) -> None:
    (tmp_path / "pki").mkdir()
    for name in ("root.key", "ica.key"):
        (tmp_path / "pki" / name).write_text("old")
        (tmp_path / "pki" / name).chmod(0o644)
    pki = make_dev_pki(tmp_path / "pki")
    assert pki.ica_key is not None
    assert _mode(pki.root_key) == 0o600 and _mode(pki.ica_key) == 0o600
    assert b"PRIVATE KEY" in pki.root_key.read_bytes()


def test_token_dev_pki_keeps_the_intermediate_key_in_the_token(token_pki: DevPki) -> None:
    assert token_pki.ica_key is None
    assert sorted(p.name for p in token_pki.root_cert.parent.glob("*.key")) == ["root.key"]
    ica = load_pem_chain([token_pki.ica_cert])[0]
    assert "Manufacturing CA TEST" in ica.subject.rfc4514_string()


def test_production_like_root(tmp_path: Path) -> None:
    cert_path, key_path = make_production_like_root(tmp_path, "Acme")
    root = load_pem_chain([cert_path])[0]
    assert not is_test_root(root)
    assert root.subject.rfc4514_string() == "CN=Acme Device Root CA,O=Acme"
    assert _mode(key_path) == 0o600
    assert root.not_valid_before_utc <= datetime.now(UTC) <= root.not_valid_after_utc


def test_token_pin_is_not_in_its_repr(hsm_token: SoftHsmToken) -> None:
    assert hsm_token.pin not in repr(hsm_token) and hsm_token.so_pin not in repr(hsm_token)
    assert hsm_token.conf.read_text().startswith("directories.tokendir = ")
    assert _mode(hsm_token.conf.parent) == 0o700


def test_create_token_without_softhsm2_util(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(PkiError, match="softhsm2-util is not installed"):
        create_token(tmp_path / "t", "x", pin="1234", so_pin="5678")
    assert not (tmp_path / "t").exists()


def test_find_module_honours_the_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOFTHSM2_MODULE", str(tmp_path / "libsofthsm2.so"))
    with pytest.raises(PkiError, match=r"libsofthsm2\.so was not found .*SOFTHSM2_MODULE"):
        find_module()


def test_create_token_failure_names_the_reason_not_the_pin(tmp_path: Path) -> None:
    before = os.environ.get("SOFTHSM2_CONF")
    with pytest.raises(PkiError, match="softhsm2-util could not create token") as err:
        create_token(tmp_path / "t", "bad-pin", pin="q7z", so_pin="so-pin-9f8e7d")  # too short
    assert "q7z" not in str(err.value) and "so-pin-9f8e7d" not in str(err.value)
    assert os.environ.get("SOFTHSM2_CONF") == before


def test_second_token_after_the_module_is_loaded(tmp_path: Path) -> None:
    # In a child process: SOFTHSM2_CONF and the module's load are per process.
    script = textwrap.dedent(
        f"""
        import pkcs11
        from pathlib import Path
        from ate.pki.softhsm import create_token
        a = create_token(Path({str(tmp_path / "a")!r}), "token-a", pin="1111", so_pin="2222")
        lib = pkcs11.lib(str(a.module))
        assert [t.label for t in lib.get_tokens(token_label="token-a")] == ["token-a"]
        b = create_token(Path({str(tmp_path / "b")!r}), "token-b", pin="3333", so_pin="4444")
        print(sorted(t.label for t in lib.get_tokens() if t.label))
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['token-b']"
