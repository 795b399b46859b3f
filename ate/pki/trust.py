"""Which roots a station may trust in which environment, and chain checks in Python.

Owns ate's test/production root rule (`is_test_root`), the per-environment trust rules
(`check_trust`) and the check of an issued certificate (`verify_issued`). May import
cryptography, stdlib and ate.pki.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Sequence
from datetime import UTC, datetime

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

from ate.pki.csr import fingerprint
from ate.pki.errors import TrustError

ENVIRONMENTS = ("dev", "test", "production")
BACKENDS = ("file", "pkcs11")
# "TEST" as a word: not preceded or followed by a letter or digit ("ate-TEST", "Root CA
# TEST" and "test_ca" count, "Testing" and "Contest" do not).
_TEST_WORD = re.compile(r"(?<![0-9A-Za-z])test(?![0-9A-Za-z])", re.IGNORECASE)
_HEX64 = re.compile(r"[0-9a-f]{64}")


def has_test_word(text: str) -> bool:
    """True if `text` contains the word TEST in any case (see `is_test_root`)."""
    return _TEST_WORD.search(text) is not None


def is_test_root(root: x509.Certificate) -> bool:
    """ate's rule: a root is a test root if its subject commonName (CN) or organizationName
    (O) contains the word "TEST", in any case, as a word: bounded by the start or end of the
    value or by a character that is not an ASCII letter or digit. "ate Device Root CA TEST",
    "TEST-root" and "test_ca" are test roots; "Testing Root", "Contest CA" are not.
    Everything else is a production root.
    """
    for oid in (NameOID.COMMON_NAME, NameOID.ORGANIZATION_NAME):
        for attr in root.subject.get_attributes_for_oid(oid):
            if has_test_word(str(attr.value)):
                return True
    return False


def _name(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"


def _basic_constraints(cert: x509.Certificate) -> x509.BasicConstraints | None:
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None
    except ValueError as exc:
        raise TrustError(f"certificate {_name(cert)} has malformed extensions ({exc})") from None


def _check_ca(cert: x509.Certificate, what: str, below: int) -> None:
    """`cert` must be a CA allowed to have `below` intermediates under it."""
    bc = _basic_constraints(cert)
    if bc is None or not bc.ca:
        raise TrustError(
            f"{what} {_name(cert)} is not a CA certificate (BasicConstraints CA:true missing)"
        )
    if bc.path_length is not None and below > bc.path_length:
        raise TrustError(
            f"{what} {_name(cert)} allows {bc.path_length} intermediate CA(s) below it "
            f"(pathlen), this chain has {below}"
        )
    try:
        ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return
    if not ku.key_cert_sign:
        raise TrustError(f"{what} {_name(cert)} lacks keyCertSign in its KeyUsage")


def _check_link(child: x509.Certificate, parent: x509.Certificate, child_what: str) -> None:
    try:
        child.verify_directly_issued_by(parent)
    except ValueError:
        raise TrustError(
            f"{child_what} {_name(child)} is issued by {child.issuer.rfc4514_string()}, not by "
            f"{_name(parent)}: the chain is broken"
        ) from None
    except InvalidSignature:
        raise TrustError(
            f"{child_what} {_name(child)} names {_name(parent)} as issuer but its signature "
            "does not verify with that certificate's key (signed by another CA with the same "
            "name?)"
        ) from None
    except TypeError as exc:
        raise TrustError(f"{child_what} {_name(child)} cannot be checked ({exc})") from None


def _check_valid_at(cert: x509.Certificate, what: str, now: datetime) -> None:
    if not cert.not_valid_before_utc <= now <= cert.not_valid_after_utc:
        raise TrustError(
            f"{what} {_name(cert)} is not valid now (valid from "
            f"{cert.not_valid_before_utc:%Y-%m-%d %H:%M}Z to "
            f"{cert.not_valid_after_utc:%Y-%m-%d %H:%M}Z)"
        )


def _check_root(root: x509.Certificate) -> None:
    if root.issuer != root.subject:
        raise TrustError(
            f"root {_name(root)} is not self-signed (issued by {root.issuer.rfc4514_string()}); "
            "the trust anchor must be a root CA"
        )
    try:
        root.verify_directly_issued_by(root)
    except (InvalidSignature, ValueError, TypeError):
        raise TrustError(
            f"root {_name(root)} is not self-signed: its signature does not verify with its own key"
        ) from None


def _check_path(chain: Sequence[x509.Certificate], root: x509.Certificate, now: datetime) -> None:
    if not chain:
        raise TrustError("the CA chain is empty: it must start with the issuing CA certificate")
    _check_root(root)
    _check_valid_at(root, "root", now)
    _check_ca(root, "root", len(chain))
    for i, cert in enumerate(chain):
        what = "issuing CA" if i == 0 else "intermediate CA"
        _check_ca(cert, what, i)
        _check_valid_at(cert, what, now)
        _check_link(cert, chain[i + 1] if i + 1 < len(chain) else root, what)


def _normalise_pin(root_sha256: str) -> str:
    value = root_sha256.strip().lower()
    value = value.removeprefix("sha256:").replace(":", "")
    if not _HEX64.fullmatch(value):
        raise TrustError(
            "root_sha256 must be the root certificate's SHA-256 fingerprint: 64 hex digits, "
            "optionally prefixed 'sha256:' or colon-separated"
        )
    return value


def check_trust(
    environment: str,
    backend: str,
    chain: Sequence[x509.Certificate],
    root: x509.Certificate,
    root_sha256: str | None,
    *,
    now: datetime | None = None,
) -> None:
    """Refuse (TrustError) a CA setup the environment may not use.

    Always: the root is self-signed; every chain certificate is a CA (BasicConstraints
    CA:true, pathlen respected) that verifies link by link (names and signatures) up to the
    root; all are valid `now`; the root matches the `root_sha256` pin when one is given.
    production: a PKCS#11 backend, a production root and a pin are required. dev/test: the
    root must be a test root (`is_test_root`): test and production trust are separate.
    """
    if environment not in ENVIRONMENTS:
        raise TrustError(
            f"environment {environment!r} is not known; it must be one of "
            + ", ".join(ENVIRONMENTS)
        )
    if backend not in BACKENDS:
        raise TrustError(
            f"CA backend {backend!r} is not known; it must be one of " + ", ".join(BACKENDS)
        )
    _check_path(chain, root, now or datetime.now(UTC))
    if root_sha256 is not None:
        want = _normalise_pin(root_sha256)
        got = fingerprint(root).removeprefix("sha256:")
        if not hmac.compare_digest(want, got):
            raise TrustError(
                f"root {_name(root)} has SHA-256 fingerprint {got}, but root_sha256 pins "
                f"{want}: this is not the root the station is configured for"
            )
    test_root = is_test_root(root)
    if environment == "production":
        if backend == "file":
            raise TrustError(
                "the production environment needs the pkcs11 CA backend: a file CA (key in a "
                "PEM file) is for development only"
            )
        if test_root:
            raise TrustError(
                f"the production environment cannot use test root {_name(root)} (its name "
                "says TEST); test and production trust are separate"
            )
        if root_sha256 is None:
            raise TrustError(
                "the production environment needs root_sha256, the pinned SHA-256 fingerprint "
                "of the production root"
            )
    elif not test_root:
        raise TrustError(
            f"the {environment} environment cannot use production root {_name(root)} (no TEST "
            "in its CN or O); test and production trust are separate"
        )


def verify_issued(
    cert: x509.Certificate,
    chain: Sequence[x509.Certificate],
    root: x509.Certificate,
    *,
    now: datetime | None = None,
) -> None:
    """Check an issued device certificate in Python (TrustError if it fails): it is an
    end-entity clientAuth certificate, issued by chain[0], valid `now`, and the whole path
    to `root` holds; then cryptography's RFC 5280 path validation must agree."""
    when = now or datetime.now(UTC)
    _check_path(chain, root, when)
    bc = _basic_constraints(cert)
    if bc is not None and bc.ca:
        raise TrustError(f"certificate {_name(cert)} is a CA certificate, not a device's")
    _check_valid_at(cert, "certificate", when)
    _check_link(cert, chain[0], "certificate")
    try:
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        raise TrustError(f"certificate {_name(cert)} is not for client authentication (EKU)")
    # cryptography's path building as a second opinion on names, signatures, validity and
    # CA constraints. Its web-PKI extension profile (SAN required) is not the device profile,
    # which the checks above cover.
    verifier = (
        PolicyBuilder()
        .store(Store([root]))
        .time(when)
        .extension_policies(
            ca_policy=ExtensionPolicy.permit_all().require_present(
                x509.BasicConstraints, Criticality.AGNOSTIC, None
            ),
            ee_policy=ExtensionPolicy.permit_all(),
        )
        .build_client_verifier()
    )
    try:
        verifier.verify(cert, list(chain))
    except VerificationError as exc:
        raise TrustError(f"certificate {_name(cert)} fails path validation: {exc}") from None
