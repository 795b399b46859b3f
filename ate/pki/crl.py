"""An X.509 CRL of the device certificates the line no longer trusts, signed by the issuing
CA's key (the file CA's: a PKCS#11 token's key would need the token's signing hook,
which cryptography's CRL builder cannot call). May import cryptography and stdlib.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec


class CrlError(Exception):
    """The CRL cannot be signed (a file missing, a key that is not the CA's); one line."""


@dataclass(frozen=True)
class Revoked:
    cert_serial: str  # hex, as the line database keeps it
    revoked_at: str  # ISO 8601
    scrapped: bool  # the unit was destroyed, not distrusted


def build_crl(
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Certificate,
    revoked: Iterable[Revoked],
    *,
    now: dt.datetime,
    valid_days: int = 7,
) -> x509.CertificateRevocationList:
    """A CRL over `revoked`, numbered by `now` (seconds) so a later one has a higher number."""
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.subject)
        .last_update(now)
        .next_update(now + dt.timedelta(days=valid_days))
        .add_extension(x509.CRLNumber(int(now.timestamp())), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(key.public_key()), critical=False
        )
    )
    for item in revoked:
        reason = (
            x509.ReasonFlags.cessation_of_operation
            if item.scrapped
            else x509.ReasonFlags.unspecified
        )
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(int(item.cert_serial, 16))
            .revocation_date(dt.datetime.fromisoformat(item.revoked_at))
            .add_extension(x509.CRLReason(reason), critical=False)
            .build()
        )
        builder = builder.add_revoked_certificate(entry)
    return builder.sign(key, hashes.SHA256())


def load_file_ca(cert: Path, key: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """The issuing CA's certificate and (unencrypted, development) key from PEM files."""
    try:
        ca_cert = x509.load_pem_x509_certificate(cert.read_bytes())
    except (OSError, ValueError) as exc:
        raise CrlError(
            f"CA certificate {cert}: {type(exc).__name__}: not a readable PEM certificate"
        ) from None
    try:
        loaded = serialization.load_pem_private_key(key.read_bytes(), None)
    except TypeError:
        raise CrlError(
            f"CA key file {key} is encrypted; sign the CRL where the key is kept"
        ) from None
    except (OSError, ValueError):
        raise CrlError(f"CA key file {key} is not a readable PEM private key") from None
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise CrlError(f"CA key file {key} does not hold an EC key")
    if loaded.public_key().public_numbers() != ca_cert.public_key().public_numbers():  # type: ignore[union-attr]
        raise CrlError(f"CA key file {key} does not match the CA certificate {cert}")
    return loaded, ca_cert
