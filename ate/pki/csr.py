"""Device identity templates and the station's checks on a device's CSR.

Owns `CertTemplate`, the subject a unit gets, and `check_csr`, which decides whether a CSR
(DER, from the test firmware) may be signed. May import cryptography, stdlib and ate.pki.
"""

from __future__ import annotations

import string
from collections import Counter
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ate.pki.errors import CsrRejected, PkiError, TemplateError

KEY_TYPES = ("ec-p256",)
TEMPLATE_FIELDS = frozenset({"serial", "mac", "product"})
# Hashes a device may sign its CSR with; SHA-1 and older are refused.
CSR_HASHES = (hashes.SHA256, hashes.SHA384, hashes.SHA512)
_POINT_LEN = 65  # X9.62 uncompressed P-256 point: 0x04 || X (32) || Y (32)

_OID_NAMES = {
    NameOID.COUNTRY_NAME: "countryName (C)",
    NameOID.ORGANIZATION_NAME: "organizationName (O)",
    NameOID.ORGANIZATIONAL_UNIT_NAME: "organizationalUnitName (OU)",
    NameOID.COMMON_NAME: "commonName (CN)",
    NameOID.SERIAL_NUMBER: "serialNumber",
}


@dataclass(frozen=True)
class CertTemplate:
    """What a device certificate says about the unit; checked when constructed.

    `common_name` is a format string over the fields {serial}, {mac} and {product}
    (format specs allowed, attribute or index access not).
    """

    common_name: str
    organization: str | None = None
    organizational_unit: str | None = None
    country: str | None = None
    validity_days: int = 7300
    key_type: str = "ec-p256"

    def __post_init__(self) -> None:
        if self.key_type not in KEY_TYPES:
            raise TemplateError(
                f"key_type {self.key_type!r} is not supported: devices must use one of "
                f"{', '.join(KEY_TYPES)}"
            )
        if not isinstance(self.validity_days, int) or not 1 <= self.validity_days <= 36500:
            raise TemplateError(
                f"validity_days must be a whole number of days from 1 to 36500, "
                f"not {self.validity_days!r}"
            )
        if self.country is not None and not (
            len(self.country) == 2 and self.country.isascii() and self.country.isalpha()
        ):
            raise TemplateError(
                f"country must be a two-letter ISO 3166 code such as 'DE', not {self.country!r}"
            )
        try:
            parsed = list(string.Formatter().parse(self.common_name))
        except ValueError as exc:
            raise TemplateError(
                f"common_name {self.common_name!r} is not a valid format string ({exc})"
            ) from None
        for _, field, _, _ in parsed:
            if field is not None and field not in TEMPLATE_FIELDS:
                raise TemplateError(
                    f"common_name {self.common_name!r} uses {{{field}}}; the fields allowed are "
                    + ", ".join("{" + f + "}" for f in sorted(TEMPLATE_FIELDS))
                )
        # Catch bad format specs and over-long names now, not at the first unit.
        subject_for(self, serial="S" * 8, mac="00:00:00:00:00:00", product="P")


def subject_for(t: CertTemplate, *, serial: str, mac: str, product: str) -> x509.Name:
    """The subject of a unit's certificate: C, O, OU (those the template gives), CN from the
    template, and serialNumber (2.5.4.5) = the unit's serial."""
    try:
        cn = t.common_name.format(serial=serial, mac=mac, product=product)
    except (ValueError, TypeError) as exc:
        raise TemplateError(f"common_name {t.common_name!r} cannot be filled in: {exc}") from None
    attrs: list[x509.NameAttribute[Any]] = []
    for oid, value in (
        (NameOID.COUNTRY_NAME, t.country),
        (NameOID.ORGANIZATION_NAME, t.organization),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, t.organizational_unit),
        (NameOID.COMMON_NAME, cn),
        (NameOID.SERIAL_NUMBER, serial),
    ):
        if value is None:
            continue
        if not value or len(value) > 64:
            raise TemplateError(
                f"{_OID_NAMES[oid]} {value!r} must be 1 to 64 characters long "
                f"(RFC 5280 upper bound), it has {len(value)}"
            )
        try:
            attrs.append(x509.NameAttribute(oid, value))
        except ValueError as exc:
            raise TemplateError(f"{_OID_NAMES[oid]} {value!r} is not acceptable: {exc}") from None
    return x509.Name(attrs)


def public_key_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    """The 65-byte X9.62 uncompressed point of a P-256 public key."""
    if not isinstance(key.curve, ec.SECP256R1):
        raise PkiError(f"expected a P-256 key, got a {key.curve.name} key")
    return key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def fingerprint(cert: x509.Certificate) -> str:
    """The SHA-256 fingerprint of the certificate's DER: "sha256:<64 lowercase hex>"."""
    return "sha256:" + cert.fingerprint(hashes.SHA256()).hex()


def _attribute_label(oid: x509.ObjectIdentifier) -> str:
    return _OID_NAMES.get(oid, f"{oid._name} ({oid.dotted_string})")


def _subject_difference(got: x509.Name, expected: x509.Name) -> str | None:
    """Which attribute differs, or None. Order and string types do not matter: the issued
    certificate carries `expected`, never the CSR's subject."""
    got_values = Counter((a.oid, a.value) for a in got)
    want_values = Counter((a.oid, a.value) for a in expected)
    if got_values == want_values:
        return None
    for oid in dict.fromkeys([a.oid for a in expected] + [a.oid for a in got]):
        g = sorted(str(a.value) for a in got if a.oid == oid)
        w = sorted(str(a.value) for a in expected if a.oid == oid)
        if g == w:
            continue
        label = _attribute_label(oid)
        if not g:
            return f"the CSR subject lacks {label} (expected {', '.join(map(repr, w))})"
        if not w:
            return f"the CSR subject has {label} {', '.join(map(repr, g))}, which is not expected"
        return (
            f"the CSR subject {label} is {', '.join(map(repr, g))}, "
            f"expected {', '.join(map(repr, w))}"
        )
    return "the CSR subject differs from the expected one"  # pragma: no cover


def _expected_point(expected_public_key: bytes) -> bytes:
    try:
        key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), expected_public_key)
    except (ValueError, TypeError):
        raise CsrRejected(
            f"the public key the device reported ({len(expected_public_key)} bytes) is not a "
            f"P-256 point; expected a {_POINT_LEN}-byte X9.62 uncompressed point"
        ) from None
    return public_key_bytes(key)


def check_csr(
    csr_der: bytes,
    expected_subject: x509.Name,
    *,
    expected_public_key: bytes | None = None,
) -> x509.CertificateSigningRequest:
    """Parse and check a device's CSR; return it if a certificate may be issued for it.

    Raises CsrRejected when the bytes are not a DER CSR, its signature does not verify, the
    key is not EC P-256, the subject differs from `expected_subject` (naming the attribute),
    the key differs from `expected_public_key` (the point the device reported over its test
    protocol), or the CSR asks for CA powers. Any other failure to parse is a rejection too.
    """
    if not isinstance(csr_der, bytes | bytearray | memoryview):
        raise CsrRejected(f"a CSR must be DER bytes, not {type(csr_der).__name__}")
    data = bytes(csr_der)
    if data.lstrip().startswith(b"-----BEGIN"):
        raise CsrRejected("the CSR is PEM text; the device protocol carries DER bytes")
    try:
        csr = x509.load_der_x509_csr(data)
    except Exception as exc:  # any parse failure means "not a CSR", whatever the library says
        raise CsrRejected(
            f"the {len(data)} bytes received are not a DER PKCS#10 CSR ({type(exc).__name__})"
        ) from None
    try:
        key = csr.public_key()
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise CsrRejected(f"the CSR's public key cannot be read ({type(exc).__name__})") from None
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise CsrRejected(
            f"the CSR carries a {type(key).__name__.removesuffix('PublicKey').removeprefix('_')} "
            "key; devices must use EC P-256"
        )
    if not isinstance(key.curve, ec.SECP256R1):
        raise CsrRejected(f"the CSR key is on curve {key.curve.name}; devices must use P-256")
    try:
        hash_alg = csr.signature_hash_algorithm
    except (ValueError, UnsupportedAlgorithm, TypeError) as exc:
        raise CsrRejected(
            f"the CSR's signature algorithm is not supported ({type(exc).__name__}); "
            "devices must sign with ECDSA and SHA-256"
        ) from None
    if not isinstance(hash_alg, CSR_HASHES):
        name = hash_alg.name if hash_alg is not None else "none"
        raise CsrRejected(f"the CSR is signed with hash {name}; allowed are SHA-256/384/512")
    try:
        valid = csr.is_signature_valid
    except (ValueError, UnsupportedAlgorithm, TypeError) as exc:
        raise CsrRejected(f"the CSR's signature cannot be checked ({type(exc).__name__})") from None
    if not valid:
        raise CsrRejected("the CSR's signature does not verify with its own public key")
    try:
        subject = csr.subject
        # Force parsing of every attribute value now, inside the try.
        list((a.oid, a.value) for a in subject)
    except (ValueError, UnsupportedAlgorithm, TypeError) as exc:
        raise CsrRejected(f"the CSR subject cannot be parsed ({type(exc).__name__})") from None
    difference = _subject_difference(subject, expected_subject)
    if difference is not None:
        raise CsrRejected(difference)
    if expected_public_key is not None and public_key_bytes(key) != _expected_point(
        expected_public_key
    ):
        raise CsrRejected(
            "the CSR's public key is not the key the device reported: the CSR does not come "
            "from the key generated on this unit"
        )
    try:
        extensions = list(csr.extensions)
    except Exception as exc:  # malformed or duplicate extensions: not our CSR
        raise CsrRejected(f"the CSR's extension request cannot be parsed ({exc})") from None
    for ext in extensions:
        value = ext.value
        if isinstance(value, x509.BasicConstraints) and value.ca:
            raise CsrRejected("the CSR requests CA:true; a device certificate is never a CA")
        if isinstance(value, x509.KeyUsage) and (value.key_cert_sign or value.crl_sign):
            raise CsrRejected(
                "the CSR requests keyCertSign/cRLSign key usage; a device certificate never "
                "signs certificates"
            )
    return csr
