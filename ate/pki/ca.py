"""The issuing CA as the station sees it, and what both backends share: the device
certificate profile, serial numbers and reading PEM chains.

Backends: `ate.pki.file_ca` (PEM key, development only) and `ate.pki.pkcs11_ca` (key in a
token). May import cryptography, stdlib, ate.pki and ate.config.files (to read files).
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from ate.config.files import PEM_MAX, FileRefused, read_file
from ate.pki.csr import CertTemplate
from ate.pki.errors import CaUnavailable, CsrRejected, PkiError

SERIAL_LIMIT = 2**159  # positive and at most 20 octets in DER (RFC 5280 4.1.2.2)
BACKDATE = timedelta(seconds=60)  # tolerate station/verifier clocks a little behind


@runtime_checkable
class IssuingCA(Protocol):
    """An intermediate CA that signs device certificates.

    `chain` is the issuing CA certificate first, then its issuers up to, excluding, `root`.
    """

    backend: str
    chain: tuple[x509.Certificate, ...]
    root: x509.Certificate

    def issue(
        self,
        csr: x509.CertificateSigningRequest,
        subject: x509.Name,
        template: CertTemplate,
        *,
        serial_number: int,
        now: datetime,
    ) -> x509.Certificate:
        """Sign a device certificate (blocking; call it from a worker thread)."""
        ...

    def probe(self) -> None:
        """Prove the key can sign now; CaUnavailable if not."""
        ...

    def close(self) -> None: ...


def new_cert_serial() -> int:
    """A random positive certificate serial below 2**159 (RFC 5280: at most 20 octets)."""
    return secrets.randbelow(SERIAL_LIMIT - 1) + 1


def load_pem_chain(paths: Sequence[Path]) -> tuple[x509.Certificate, ...]:
    """Every certificate in the PEM files, in file order then order inside each file.

    CaUnavailable names the file that is missing, unreadable or holds no certificate.
    """
    certs: list[x509.Certificate] = []
    for path in paths:
        path = Path(path)
        try:
            data = read_file(path, PEM_MAX)
        except FileRefused as exc:
            if str(exc) == "no such file":
                raise CaUnavailable(f"certificate file {path} does not exist") from None
            raise CaUnavailable(f"certificate file {path} {exc}") from None
        if b"-----BEGIN CERTIFICATE-----" not in data:
            raise CaUnavailable(
                f"certificate file {path} holds no PEM certificate "
                "(expected '-----BEGIN CERTIFICATE-----' blocks)"
            )
        try:
            certs.extend(x509.load_pem_x509_certificates(data))
        except ValueError as exc:
            raise CaUnavailable(f"certificate file {path} is not valid PEM ({exc})") from None
    return tuple(certs)


def assemble_chain(
    cert: Path, chain: Sequence[Path], root: Path
) -> tuple[tuple[x509.Certificate, ...], x509.Certificate]:
    """(chain, root) for a CA: `cert` first, then `chain`, without duplicates or root copies
    (so a chain file that already holds the issuing CA or the root is accepted)."""
    roots = load_pem_chain([root])
    if len(roots) != 1:
        raise CaUnavailable(f"root file {root} must hold exactly one certificate, not {len(roots)}")
    root_cert = roots[0]
    seen: set[bytes] = {root_cert.fingerprint(hashes.SHA256())}
    out: list[x509.Certificate] = []
    for c in load_pem_chain([cert, *chain]):
        fp = c.fingerprint(hashes.SHA256())
        if fp not in seen:
            seen.add(fp)
            out.append(c)
    if not out:
        raise CaUnavailable(f"CA certificate file {cert} holds only the root certificate")
    return tuple(out), root_cert


def _ski(cert: x509.Certificate) -> x509.SubjectKeyIdentifier | None:
    try:
        return cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return None


def check_signing_key_matches(key: ec.EllipticCurvePrivateKey, cert: x509.Certificate) -> bool:
    """Sign a throwaway message with `key` and verify it with `cert`'s public key."""
    cert_key = cert.public_key()
    if not isinstance(cert_key, ec.EllipticCurvePublicKey):
        return False
    message = b"ate.pki probe " + secrets.token_bytes(32)
    signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
    try:
        cert_key.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return False
    return True


def build_device_certificate(
    signing_key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate,
    csr: x509.CertificateSigningRequest,
    subject: x509.Name,
    template: CertTemplate,
    *,
    serial_number: int,
    now: datetime,
) -> x509.Certificate:
    """The device certificate profile, signed ECDSA-SHA256 with `signing_key` (which may be a
    key in a token) and checked against `issuer` after signing."""
    if now.tzinfo is None:
        raise PkiError("issue() needs a timezone-aware `now` (datetime.now(UTC))")
    if not 0 < serial_number < SERIAL_LIMIT:
        raise PkiError(
            "serial_number must be positive and below 2**159 (RFC 5280); use new_cert_serial()"
        )
    if not issuer.not_valid_before_utc <= now <= issuer.not_valid_after_utc:
        raise CaUnavailable(
            f"the issuing CA certificate {issuer.subject.rfc4514_string()} is not valid at "
            f"{now.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z (valid "
            f"{issuer.not_valid_before_utc:%Y-%m-%d} to {issuer.not_valid_after_utc:%Y-%m-%d})"
        )
    public_key = csr.public_key()
    if not isinstance(public_key, ec.EllipticCurvePublicKey) or not isinstance(
        public_key.curve, ec.SECP256R1
    ):
        raise CsrRejected(f"template key_type {template.key_type} needs an EC P-256 key in the CSR")
    if not csr.is_signature_valid:
        raise CsrRejected("the CSR's signature does not verify with its own public key")
    issuer_ski = _ski(issuer)
    aki = (
        x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(issuer_ski)
        if issuer_ski is not None
        else x509.AuthorityKeyIdentifier.from_issuer_public_key(
            issuer.public_key()  # type: ignore[arg-type]
        )
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(public_key)
        .serial_number(serial_number)
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + timedelta(days=template.validity_days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=True,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(aki, critical=False)
    )
    cert = builder.sign(signing_key, hashes.SHA256())
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError):
        raise CaUnavailable(
            "the certificate just signed does not verify with the issuing CA certificate: "
            "the CA key does not match its certificate"
        ) from None
    return cert
