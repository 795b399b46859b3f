"""The dev_key record codec and the prov.csr subject syntax (ate/sim/devkey.py)."""

from __future__ import annotations

import hashlib

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from ate.sim import devkey

SCALARS = st.integers(min_value=1, max_value=devkey.P256_ORDER - 1)


def test_record_layout_is_the_documented_one() -> None:
    d = 0x0102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F20
    rec = devkey.encode_record(d)
    assert rec[:8] == b"ATEK\x01\x01\x20\x00"
    assert rec[8:40] == d.to_bytes(32, "big")
    assert rec[40:] == hashlib.sha256(rec[:40]).digest()
    assert len(rec) == devkey.RECORD_SIZE == 72


@given(SCALARS, st.binary(max_size=64))
@example(1, b"")
@example(devkey.P256_ORDER - 1, b"\xff" * 64)
def test_round_trip_with_whatever_follows(d: int, tail: bytes) -> None:
    assert devkey.decode_record(devkey.encode_record(d) + tail) == d


@given(SCALARS, st.data())
def test_any_flipped_bit_is_no_key(d: int, data: st.DataObject) -> None:
    rec = bytearray(devkey.encode_record(d))
    pos = data.draw(st.integers(0, len(rec) - 1), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    rec[pos] ^= 1 << bit
    assert devkey.decode_record(bytes(rec)) is None


def test_a_write_torn_only_before_trailing_ff_bytes_is_the_whole_record() -> None:
    rec = devkey.encode_record(1669)  # its last check byte is 0xFF (found by hypothesis)
    assert rec[-1] == 0xFF
    torn = rec[:-1] + b"\xff" * (devkey.DEV_KEY_SIZE - len(rec) + 1)
    assert devkey.decode_record(torn) == 1669


@given(SCALARS, st.data())
def test_a_torn_write_is_no_key(d: int, data: st.DataObject) -> None:
    rec = devkey.encode_record(d)
    cut = data.draw(st.integers(0, len(rec) - 1), label="bytes written")
    # NOR flash: what was not programmed yet still reads erased.
    torn = rec[:cut] + b"\xff" * (devkey.DEV_KEY_SIZE - cut)
    # A record ending in 0xFF bytes (its check bytes can be) is whole when only those
    # were not written yet: the flash holds exactly the record, and it is a key.
    assume(torn[: len(rec)] != rec)
    assert devkey.decode_record(torn) is None
    assert devkey.decode_record(rec[:cut]) is None


@given(st.binary(max_size=200))
def test_arbitrary_bytes_never_raise(raw: bytes) -> None:
    d = devkey.decode_record(raw)
    # Whatever decodes was a whole record for exactly that scalar.
    assert d is None or raw[: devkey.RECORD_SIZE] == devkey.encode_record(d)


def test_erased_and_out_of_range_are_no_key() -> None:
    assert devkey.decode_record(b"\xff" * devkey.DEV_KEY_SIZE) is None
    assert devkey.decode_record(b"\x00" * devkey.DEV_KEY_SIZE) is None
    for d in (0, devkey.P256_ORDER, 2**256 - 1):
        body = b"ATEK\x01\x01\x20\x00" + d.to_bytes(32, "big")
        assert devkey.decode_record(body + hashlib.sha256(body).digest()) is None
        with pytest.raises(ValueError, match=r"1\.\.n-1"):
            devkey.encode_record(d)
    # Another version or curve, even with a matching hash, is not this record.
    for header in (b"ATEK\x02\x01\x20\x00", b"ATEK\x01\x02\x20\x00", b"ATEK\x01\x01\x30\x00"):
        body = header + (5).to_bytes(32, "big")
        assert devkey.decode_record(body + hashlib.sha256(body).digest()) is None


def test_scalar_gives_the_public_point() -> None:
    key = devkey.private_key(devkey.generate_scalar())
    point = devkey.public_point(key)
    assert len(point) == 65 and point[0] == 4
    pub = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    assert pub.public_numbers() == key.public_key().public_numbers()


# ---- subjects -------------------------------------------------------------------------

_TEXT = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters=',+="\\<>;#'),
    min_size=1,
    max_size=devkey.VALUE_MAX_BYTES,
).filter(
    lambda v: (
        v[0] != " "
        and v[-1] != " "
        and not any(0x7F <= ord(c) <= 0x9F for c in v)
        and len(v.encode()) <= devkey.VALUE_MAX_BYTES
    )
)
_PRINTABLE = st.text(alphabet="ABCXYZabcxyz0189 '()-./:?", min_size=1, max_size=64).filter(
    lambda v: v[0] != " " and v[-1] != " "
)
_VALUES = {
    "CN": _TEXT,
    "O": _TEXT,
    "OU": _TEXT,
    "C": st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ", min_size=2, max_size=2),
    "serialNumber": _PRINTABLE,
}


@st.composite
def subjects(draw: st.DrawFn) -> list[tuple[str, str]]:
    names = draw(st.permutations(list(_VALUES)))
    names = names[: draw(st.integers(1, len(names)))]
    return [(n, draw(_VALUES[n])) for n in names]


@settings(max_examples=60)
@given(subjects())
def test_subject_text_round_trips_and_encodes_in_order(pairs: list[tuple[str, str]]) -> None:
    text = ",".join(f"{n}={v}" for n, v in pairs)
    if len(text.encode()) > devkey.SUBJECT_MAX_BYTES:
        with pytest.raises(devkey.SubjectError, match="longer than"):
            devkey.parse_subject(text)
        return
    assert devkey.parse_subject(text) == pairs
    assert devkey.format_subject(pairs) == text
    name = devkey.subject_name(pairs)
    assert [(a.oid, a.value) for a in name] == [(devkey.SUBJECT_ATTRIBUTES[n], v) for n, v in pairs]
    # One attribute per RDN, in the order given, through DER and back.
    again = x509.Name.from_rfc4514_string(name.rfc4514_string())
    assert [a.value for a in again] == [v for _, v in pairs]


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("", "empty"),
        ("CN", "not name=value"),
        ("CN=a,CN=b", "twice"),
        ("cn=a", "not allowed"),
        ("L=Berlin", "not allowed"),
        ("CN=", "empty"),
        ("CN=a+b", "contains '\\+'"),
        ("CN=a=b", "contains '='"),
        ("CN=#ab", "contains '#'"),
        ("CN= a", "space"),
        ("CN=a\x01", "control"),
        ("C=Germany", "two capital letters"),
        ("C=de", "two capital letters"),
        ("C=X0", "two capital letters"),
        ("serialNumber=A_1", "serialNumber may hold"),
        ("serialNumber=Ä1", "serialNumber may hold"),
        ("CN=" + "x" * 65, "longer than 64 bytes"),
        ("CN=" + "\u4e2d" * 22, "longer than 64 bytes"),
        ("CN=x,", "not name=value"),
        (
            "CN=a,O=" + ",O=".join(["\U0001d11e" * 16] * 8),
            "512 bytes",
        ),
    ],
)
def test_bad_subjects_say_why(text: str, why: str) -> None:
    with pytest.raises(devkey.SubjectError, match=why):
        devkey.parse_subject(text)


def test_csr_and_proof_use_the_given_key() -> None:
    key = devkey.private_key(devkey.generate_scalar())
    pairs = [("CN", "unit-1"), ("O", "Ümlaut GmbH"), ("C", "DE"), ("serialNumber", "S-1")]
    csr = x509.load_der_x509_csr(devkey.make_csr(key, pairs))
    assert csr.is_signature_valid
    assert csr.subject == devkey.subject_name(pairs)
    assert csr.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "unit-1"
    assert isinstance(csr.signature_hash_algorithm, hashes.SHA256)
    assert len(csr.extensions) == 0
    challenge = bytes(range(16))
    sig = devkey.sign_proof(key, challenge)
    key.public_key().verify(sig, b"ate-proof/1:" + challenge, ec.ECDSA(hashes.SHA256()))
    for bad in (bytes(15), bytes(65)):
        with pytest.raises(ValueError, match=r"16\.\.64"):
            devkey.proof_message(bad)
