"""A development/test PKI made on the spot: a TEST root and a TEST manufacturing CA (its key
in a SoftHSM2 token or a PEM file), and production-like roots for testing the trust rules.

Private keys are written with mode 0600 into the directory given; callers never put that
directory under a run's --out. May import cryptography, stdlib and ate.pki.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ate.pki.errors import PkiError
from ate.pki.softhsm import SoftHsmToken, generate_ec_key
from ate.pki.trust import has_test_word

CA_VALIDITY = timedelta(days=7305)  # 20 years
_BACKDATE = timedelta(minutes=5)


@dataclass
class DevPki:
    """Paths of a development PKI. `chain` is the issuing CA's certificate file(s) up to,
    excluding, the root; `ica_key` is None when the intermediate's key is in a token."""

    root_cert: Path
    root_key: Path
    ica_cert: Path
    ica_key: Path | None
    chain: tuple[Path, ...]


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable by its owner only (0600, also when it existed)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, data)
    finally:
        os.close(fd)


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    write_private(
        path,
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
    )


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _ca_name(common_name: str, organization: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise PkiError(f"{path} does not hold an EC private key")
    return key


def _prepare(directory: Path) -> Path:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(directory, 0o700)
    return directory


def make_root(
    directory: Path, common_name: str, *, organization: str, stem: str = "root"
) -> tuple[Path, Path]:
    """A self-signed EC P-256 root (CA:true pathlen 1, 20 years): (stem.pem, stem.key)."""
    directory = _prepare(directory)
    key = ec.generate_private_key(ec.SECP256R1())
    name = _ca_name(common_name, organization)
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / f"{stem}.pem", directory / f"{stem}.key"
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return cert_path, key_path


def make_intermediate(
    directory: Path,
    root_cert: Path,
    root_key: Path,
    common_name: str,
    *,
    organization: str,
    stem: str = "ica",
    token: SoftHsmToken | None = None,
    key_label: str = "mfg-ica",
    always_authenticate: bool = False,
) -> tuple[Path, Path | None]:
    """An intermediate (CA:true pathlen 0) signed by the root: (stem.pem, stem.key or None
    when the key was generated inside `token` under `key_label`, asking for the PIN at every
    signature if `always_authenticate`)."""
    directory = _prepare(directory)
    issuer = x509.load_pem_x509_certificate(Path(root_cert).read_bytes())
    issuer_key = _load_key(Path(root_key))
    key_path: Path | None = None
    public_key: ec.EllipticCurvePublicKey
    if token is not None:
        public_key = generate_ec_key(token, key_label, always_authenticate=always_authenticate)
    else:
        private_key = ec.generate_private_key(ec.SECP256R1())
        public_key = private_key.public_key()
        key_path = directory / f"{stem}.key"
        _write_key(key_path, private_key)
    issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_ca_name(common_name, organization))
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(min(now + CA_VALIDITY, issuer.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski),
            critical=False,
        )
        .sign(issuer_key, hashes.SHA256())
    )
    cert_path = directory / f"{stem}.pem"
    _write_cert(cert_path, cert)
    return cert_path, key_path


def make_dev_pki(
    directory: Path,
    *,
    name: str = "ate",
    token: SoftHsmToken | None = None,
    ica_key_label: str = "mfg-ica",
) -> DevPki:
    """Root "<name> Device Root CA TEST" and intermediate "<name> Manufacturing CA TEST"
    (EC P-256, 20 years) in `directory`: root.pem/root.key, ica.pem and, without a token,
    ica.key. With a token, the intermediate's key is generated inside it (`ica_key_label`)."""
    root_cert, root_key = make_root(directory, f"{name} Device Root CA TEST", organization=name)
    ica_cert, ica_key = make_intermediate(
        directory,
        root_cert,
        root_key,
        f"{name} Manufacturing CA TEST",
        organization=name,
        token=token,
        key_label=ica_key_label,
    )
    return DevPki(root_cert, root_key, ica_cert, ica_key, (ica_cert,))


def make_production_like_root(directory: Path, name: str) -> tuple[Path, Path]:
    """A root without TEST in its name, for tests of the trust rules (made at test time):
    (prod-root.pem, prod-root.key)."""
    if has_test_word(name):
        raise PkiError(f"name {name!r} contains the word TEST; a production-like root must not")
    return make_root(directory, f"{name} Device Root CA", organization=name, stem="prod-root")
