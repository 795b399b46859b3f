"""A file-based issuing CA: the intermediate's key in a PEM file. For development only
(`check_trust` refuses it in production). May import cryptography, stdlib, ate.pki and
ate.config.files.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ate.config.files import PEM_MAX, FileRefused, read_file
from ate.pki.ca import (
    IssuingCA,
    assemble_chain,
    build_device_certificate,
    check_signing_key_matches,
)
from ate.pki.csr import CertTemplate
from ate.pki.errors import CaUnavailable


class FileCA:
    """An `IssuingCA` whose key was read from a PEM file; signing is thread-safe."""

    backend = "file"

    def __init__(
        self,
        key: ec.EllipticCurvePrivateKey,
        chain: tuple[x509.Certificate, ...],
        root: x509.Certificate,
    ) -> None:
        self._key: ec.EllipticCurvePrivateKey | None = key
        self.chain = chain
        self.root = root

    def __repr__(self) -> str:
        return f"FileCA({self.chain[0].subject.rfc4514_string()!r})"

    def _signing_key(self) -> ec.EllipticCurvePrivateKey:
        if self._key is None:
            raise CaUnavailable("the file CA is closed")
        return self._key

    def issue(
        self,
        csr: x509.CertificateSigningRequest,
        subject: x509.Name,
        template: CertTemplate,
        *,
        serial_number: int,
        now: datetime,
    ) -> x509.Certificate:
        return build_device_certificate(
            self._signing_key(),
            self.chain[0],
            csr,
            subject,
            template,
            serial_number=serial_number,
            now=now,
        )

    def probe(self) -> None:
        if not check_signing_key_matches(self._signing_key(), self.chain[0]):
            raise CaUnavailable("the CA key no longer matches the CA certificate")

    def close(self) -> None:
        self._key = None


def _load_key(key: Path, password: bytes | None) -> ec.EllipticCurvePrivateKey:
    try:
        data = read_file(key, PEM_MAX)
    except FileRefused as exc:
        if str(exc) == "no such file":
            raise CaUnavailable(f"CA key file {key} does not exist") from None
        raise CaUnavailable(f"CA key file {key} {exc}") from None
    try:
        loaded = serialization.load_pem_private_key(data, password)
    except TypeError:
        # cryptography says whether a password was missing or superfluous; its words
        # never contain the password or the key.
        if password is None:
            raise CaUnavailable(f"CA key file {key} is encrypted: give its password") from None
        raise CaUnavailable(
            f"CA key file {key} is not encrypted but a password was given: remove the password "
            "from the configuration (or encrypt the key)"
        ) from None
    except ValueError:
        raise CaUnavailable(
            f"CA key file {key} cannot be loaded: wrong password, or not a PEM private key"
        ) from None
    except Exception as exc:  # e.g. UnsupportedAlgorithm; the message names no key bytes
        raise CaUnavailable(f"CA key file {key} cannot be loaded ({type(exc).__name__})") from None
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise CaUnavailable(
            f"CA key file {key} holds a {type(loaded).__name__.removesuffix('PrivateKey')} key; "
            "the issuing CA signs ECDSA-SHA256 and needs an EC key"
        )
    return loaded


def open_file_ca(
    cert: Path,
    key: Path,
    chain: Sequence[Path],
    root: Path,
    password: bytes | None,
) -> IssuingCA:
    """Open a PEM-key CA: `cert` is the issuing CA certificate, `chain` any further
    intermediates (copies of `cert` or of the root are ignored), `root` the trust anchor.

    CaUnavailable for a missing or unreadable file, a wrong or missing password, a key that
    is not EC, or a key that does not match `cert`.
    """
    chain_certs, root_cert = assemble_chain(Path(cert), [Path(p) for p in chain], Path(root))
    private_key = _load_key(Path(key), password)
    if not check_signing_key_matches(private_key, chain_certs[0]):
        raise CaUnavailable(
            f"CA key file {key} does not match the CA certificate {cert} "
            f"({chain_certs[0].subject.rfc4514_string()})"
        )
    return FileCA(private_key, chain_certs, root_cert)
