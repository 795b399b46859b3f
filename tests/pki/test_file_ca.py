"""The file CA's refusals (missing files, passwords, wrong key) and reading PEM chains."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ate.pki.ca import load_pem_chain
from ate.pki.devpki import DevPki, make_dev_pki, write_private
from ate.pki.errors import CaUnavailable
from ate.pki.file_ca import open_file_ca

PASSWORD = b"correct horse battery staple 1"


def _key_secrets(key: ec.EllipticCurvePrivateKey) -> list[str]:
    """Forms in which key material might leak into a message."""
    value = key.private_numbers().private_value
    raw = value.to_bytes(32, "big")
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    body = "".join(pem.splitlines()[1:-1])
    return [str(value), raw.hex(), body[20:60]]


@pytest.fixture
def encrypted_pki(tmp_path: Path) -> tuple[DevPki, Path, ec.EllipticCurvePrivateKey]:
    pki = make_dev_pki(tmp_path / "pki")
    assert pki.ica_key is not None
    key = serialization.load_pem_private_key(pki.ica_key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    encrypted = tmp_path / "pki" / "ica-encrypted.key"
    write_private(
        encrypted,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSWORD),
        ),
    )
    return pki, encrypted, key


def test_encrypted_key_opens_with_its_password(
    encrypted_pki: tuple[DevPki, Path, ec.EllipticCurvePrivateKey],
) -> None:
    pki, encrypted, _ = encrypted_pki
    ca = open_file_ca(pki.ica_cert, encrypted, pki.chain, pki.root_cert, PASSWORD)
    assert ca.backend == "file" and len(ca.chain) == 1  # chain file == cert: no duplicate
    ca.probe()
    assert "PRIVATE" not in repr(ca)


@pytest.mark.parametrize(
    ("password", "words"),
    [
        (None, "is encrypted: give its password"),
        (b"wrong password 12345", "wrong password, or not a PEM private key"),
    ],
)
def test_password_problems_are_named_without_leaking(
    encrypted_pki: tuple[DevPki, Path, ec.EllipticCurvePrivateKey],
    password: bytes | None,
    words: str,
) -> None:
    pki, encrypted, key = encrypted_pki
    with pytest.raises(CaUnavailable, match=re.escape(words)) as err:
        open_file_ca(pki.ica_cert, encrypted, (), pki.root_cert, password)
    message = str(err.value)
    assert PASSWORD.decode() not in message
    assert password is None or password.decode() not in message
    for secret in _key_secrets(key):
        assert secret not in message
    assert err.value.__cause__ is None and err.value.__suppress_context__


def test_password_for_a_plain_key_is_refused(file_pki: DevPki) -> None:
    assert file_pki.ica_key is not None
    with pytest.raises(CaUnavailable, match="not encrypted but a password was given") as err:
        open_file_ca(file_pki.ica_cert, file_pki.ica_key, (), file_pki.root_cert, PASSWORD)
    assert PASSWORD.decode() not in str(err.value)


def test_missing_files_are_named(file_pki: DevPki, tmp_path: Path) -> None:
    assert file_pki.ica_key is not None
    with pytest.raises(CaUnavailable, match=r"CA key file .*nope.key does not exist"):
        open_file_ca(file_pki.ica_cert, tmp_path / "nope.key", (), file_pki.root_cert, None)
    with pytest.raises(CaUnavailable, match=r"certificate file .*nope.pem does not exist"):
        open_file_ca(tmp_path / "nope.pem", file_pki.ica_key, (), file_pki.root_cert, None)
    with pytest.raises(CaUnavailable, match=r"certificate file .*root.pem does not exist"):
        open_file_ca(file_pki.ica_cert, file_pki.ica_key, (), tmp_path / "root.pem", None)


def test_key_that_is_not_pem_is_refused(file_pki: DevPki, tmp_path: Path) -> None:
    junk = tmp_path / "junk.key"
    junk.write_bytes(b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
    with pytest.raises(CaUnavailable, match="not a PEM private key"):
        open_file_ca(file_pki.ica_cert, junk, (), file_pki.root_cert, None)


def test_rsa_key_is_refused(file_pki: DevPki, tmp_path: Path) -> None:
    path = tmp_path / "rsa.key"
    key = rsa.generate_private_key(65537, 2048)
    write_private(
        path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )
    with pytest.raises(CaUnavailable, match="RSA key; the issuing CA signs ECDSA"):
        open_file_ca(file_pki.ica_cert, path, (), file_pki.root_cert, None)


def test_key_of_another_ca_is_refused(file_pki: DevPki, tmp_path: Path) -> None:
    other = make_dev_pki(tmp_path / "other")
    assert other.ica_key is not None
    with pytest.raises(CaUnavailable, match="does not match the CA certificate") as err:
        open_file_ca(file_pki.ica_cert, other.ica_key, (), file_pki.root_cert, None)
    key = serialization.load_pem_private_key(other.ica_key.read_bytes(), None)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    for secret in _key_secrets(key):
        assert secret not in str(err.value)


def test_load_pem_chain_reads_files_in_order(file_pki: DevPki, tmp_path: Path) -> None:
    both = tmp_path / "both.pem"
    both.write_bytes(file_pki.ica_cert.read_bytes() + file_pki.root_cert.read_bytes())
    chain = load_pem_chain([both, file_pki.root_cert])
    assert [c.subject.rfc4514_string() for c in chain] == [
        "CN=ate Manufacturing CA TEST,O=ate",
        "CN=ate Device Root CA TEST,O=ate",
        "CN=ate Device Root CA TEST,O=ate",
    ]
    assert load_pem_chain([]) == ()


def test_load_pem_chain_names_the_bad_file(file_pki: DevPki, tmp_path: Path) -> None:
    assert file_pki.ica_key is not None
    with pytest.raises(CaUnavailable, match=r"ica.key holds no PEM certificate"):
        load_pem_chain([file_pki.ica_cert, file_pki.ica_key])
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nQUJD\n-----END CERTIFICATE-----\n")
    with pytest.raises(CaUnavailable, match=r"broken.pem is not valid PEM"):
        load_pem_chain([broken])
    with pytest.raises(CaUnavailable, match=r"is a folder, not a regular file"):
        load_pem_chain([tmp_path])
