"""The device key as the simulated test firmware keeps and uses it (PROVISIONING.md).

Owns the dev_key record codec (`encode_record`, `decode_record`), the `prov.csr` subject
syntax and the proof message `prov.sign` signs. May import cryptography and the
standard library only.
"""

from __future__ import annotations

import hashlib
import struct
from typing import Final

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

# ---- the dev_key partition (partitions.csv) ---------------------------------------------

DEV_KEY_LABEL: Final = "dev_key"
DEV_KEY_SUBTYPE: Final = 0x40
DEV_KEY_OFFSET: Final = 0xF000
DEV_KEY_SIZE: Final = 0x1000

# ---- the record at the start of the partition -------------------------------------------

MAGIC: Final = b"ATEK"
VERSION: Final = 1
CURVE_P256: Final = 1
SCALAR_BYTES: Final = 32
_HEADER = struct.Struct("<4sBBH")  # magic, version, curve, scalar length (LE)
RECORD_SIZE: Final = _HEADER.size + SCALAR_BYTES + 32  # + SHA-256 of what precedes it

# The order n of the P-256 group: a private scalar is 1..n-1.
P256_ORDER: Final = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def encode_record(d: int) -> bytes:
    """The dev_key record for the P-256 private scalar `d` (RECORD_SIZE bytes)."""
    if not 1 <= d < P256_ORDER:
        raise ValueError("a P-256 private scalar must be in 1..n-1")
    body = _HEADER.pack(MAGIC, VERSION, CURVE_P256, SCALAR_BYTES) + d.to_bytes(SCALAR_BYTES, "big")
    return body + hashlib.sha256(body).digest()


def decode_record(raw: bytes) -> int | None:
    """The private scalar of the record at the start of `raw` (a partition's bytes), or
    None for anything that is not a whole, intact record: erased flash, a torn write,
    another version or curve, a bad hash, a scalar out of range. Never raises."""
    if len(raw) < RECORD_SIZE:
        return None
    magic, version, curve, length = _HEADER.unpack_from(raw)
    if magic != MAGIC or version != VERSION or curve != CURVE_P256 or length != SCALAR_BYTES:
        return None
    body = bytes(raw[: _HEADER.size + SCALAR_BYTES])
    if hashlib.sha256(body).digest() != bytes(raw[len(body) : RECORD_SIZE]):
        return None
    d = int.from_bytes(body[_HEADER.size :], "big")
    return d if 1 <= d < P256_ORDER else None


# ---- keys ---------------------------------------------------------------------------------


def generate_scalar() -> int:
    """A fresh P-256 private scalar from the operating system's CSPRNG (the chip's TRNG)."""
    key = ec.generate_private_key(ec.SECP256R1())
    return key.private_numbers().private_value


def private_key(d: int) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(d, ec.SECP256R1())


def public_point(key: ec.EllipticCurvePrivateKey) -> bytes:
    """X9.62 uncompressed point: 0x04 | X | Y (65 bytes for P-256)."""
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


# ---- prov.csr subjects ---------------------------------------------------------------------

SUBJECT_ATTRIBUTES: Final[dict[str, x509.ObjectIdentifier]] = {
    "CN": NameOID.COMMON_NAME,
    "O": NameOID.ORGANIZATION_NAME,
    "OU": NameOID.ORGANIZATIONAL_UNIT_NAME,
    "C": NameOID.COUNTRY_NAME,
    "serialNumber": NameOID.SERIAL_NUMBER,
}
SUBJECT_MAX_BYTES: Final = 512  # UTF-8 bytes of the whole subject text
# RFC 5280 bounds these attributes at 64 characters; counted in UTF-8 bytes here, as
# cryptography checks a CN (so the station's CA takes any subject the device takes).
VALUE_MAX_BYTES: Final = 64
# Characters that RFC 4514 (and mbedTLS's parser on the device) give a meaning: never in
# a value, so that the text means the same to every parser.
_SPECIAL = frozenset(',+="\\<>;#')
# serialNumber is a PrintableString: these are the ones left once _SPECIAL is out.
_PRINTABLE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789 '()-./:?")


class SubjectError(ValueError):
    """A prov.csr subject that breaks the rules in PROVISIONING.md."""


def _check_value(name: str, value: str) -> None:
    if not value:
        raise SubjectError(f"{name} is empty")
    if len(value.encode("utf-8", "surrogatepass")) > VALUE_MAX_BYTES:
        raise SubjectError(f"{name} is longer than {VALUE_MAX_BYTES} bytes of UTF-8")
    if value[0] == " " or value[-1] == " ":
        raise SubjectError(f"{name} starts or ends with a space")
    for ch in value:
        if ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F:
            raise SubjectError(f"{name} contains a control character")
        if 0xD800 <= ord(ch) <= 0xDFFF:
            raise SubjectError(f"{name} is not valid Unicode")
        if ch in _SPECIAL:
            raise SubjectError(f"{name} contains {ch!r}, which no value may contain")
    if name == "C" and not (len(value) == 2 and all("A" <= c <= "Z" for c in value)):
        raise SubjectError("C must be two capital letters (an ISO 3166 country code)")
    if name == "serialNumber" and not set(value) <= _PRINTABLE:
        raise SubjectError("serialNumber may hold only letters, digits, space and '()-./:?")


def parse_subject(text: str) -> list[tuple[str, str]]:
    """`CN=...,O=...` as (name, value) pairs in the given order; SubjectError unless
    every attribute is one of SUBJECT_ATTRIBUTES, at most once each, with a valid value."""
    if len(text.encode("utf-8", "surrogatepass")) > SUBJECT_MAX_BYTES:
        raise SubjectError(f"the subject is longer than {SUBJECT_MAX_BYTES} bytes")
    if not text:
        raise SubjectError("the subject is empty")
    pairs: list[tuple[str, str]] = []
    for part in text.split(","):
        name, eq, value = part.partition("=")
        if not eq:
            raise SubjectError(f"{part[:24]!r} is not name=value")
        if name not in SUBJECT_ATTRIBUTES:
            allowed = ", ".join(SUBJECT_ATTRIBUTES)
            raise SubjectError(f"attribute {name[:24]!r} is not allowed; allowed: {allowed}")
        if any(name == seen for seen, _ in pairs):
            raise SubjectError(f"{name} appears twice")
        _check_value(name, value)
        pairs.append((name, value))
    return pairs


def format_subject(pairs: list[tuple[str, str]]) -> str:
    """The subject text for `pairs` (checked: SubjectError as parse_subject)."""
    text = ",".join(f"{name}={value}" for name, value in pairs)
    parse_subject(text)
    return text


def subject_name(pairs: list[tuple[str, str]]) -> x509.Name:
    """The X.509 name, one attribute per RDN, in the order given (as the device encodes it:
    UTF8String, PrintableString for C and serialNumber)."""
    return x509.Name([x509.NameAttribute(SUBJECT_ATTRIBUTES[n], v) for n, v in pairs])


def make_csr(key: ec.EllipticCurvePrivateKey, pairs: list[tuple[str, str]]) -> bytes:
    """DER PKCS#10 request for `pairs`, signed ECDSA-SHA256, no extensions."""
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject_name(pairs))
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


# ---- prov.sign ----------------------------------------------------------------------------

PROOF_PREFIX: Final = b"ate-proof/1:"
CHALLENGE_MIN: Final = 16
CHALLENGE_MAX: Final = 64


def proof_message(challenge: bytes) -> bytes:
    """What the device signs for `prov.sign`: a domain prefix, then the challenge, so the
    device key never signs arbitrary host data."""
    if not CHALLENGE_MIN <= len(challenge) <= CHALLENGE_MAX:
        raise ValueError(f"a challenge is {CHALLENGE_MIN}..{CHALLENGE_MAX} bytes")
    return PROOF_PREFIX + challenge


def sign_proof(key: ec.EllipticCurvePrivateKey, challenge: bytes) -> bytes:
    """DER ECDSA-SHA256 signature over proof_message(challenge)."""
    return key.sign(proof_message(challenge), ec.ECDSA(hashes.SHA256()))
