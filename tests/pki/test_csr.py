"""CSR checks and device subjects: what a station accepts from a unit, and why it refuses."""

from __future__ import annotations

import contextlib
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from ate.pki.csr import CertTemplate, check_csr, fingerprint, public_key_bytes, subject_for
from ate.pki.errors import CsrRejected, PkiError, TemplateError
from tests.pki.conftest import DeviceFactory, build_csr, seeded_ec_key

# Derandomised: the same 300 inputs in every run (the "seed" of these tests).
HYPOTHESIS = settings(max_examples=300, deadline=None, derandomize=True)


def _replace(name: x509.Name, oid: x509.ObjectIdentifier, value: str | None) -> x509.Name:
    """`name` with attribute `oid` set to `value` (dropped if None, appended if absent)."""
    attrs = [a for a in name if a.oid != oid]
    if value is not None:
        attrs.append(x509.NameAttribute(oid, value))
    return x509.Name(attrs)


# --- subjects -------------------------------------------------------------------------


def test_subject_has_template_attributes_and_serial_number(template: CertTemplate) -> None:
    name = subject_for(template, serial="SN42", mac="24:0a:c4:00:00:2a", product="widget")
    assert [(a.oid, a.value) for a in name] == [
        (NameOID.COUNTRY_NAME, "DE"),
        (NameOID.ORGANIZATION_NAME, "Acme Devices"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "Line 1"),
        (NameOID.COMMON_NAME, "widget-SN42"),
        (NameOID.SERIAL_NUMBER, "SN42"),
    ]
    assert NameOID.SERIAL_NUMBER.dotted_string == "2.5.4.5"


def test_subject_leaves_out_attributes_not_given() -> None:
    t = CertTemplate(common_name="{mac}")
    name = subject_for(t, serial="S1", mac="24:0a:c4:00:00:01", product="p")
    assert [a.oid for a in name] == [NameOID.COMMON_NAME, NameOID.SERIAL_NUMBER]
    assert name.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "24:0a:c4:00:00:01"


@pytest.mark.parametrize(
    ("changes", "words"),
    [
        ({"common_name": "{serial}-{uid}"}, "{uid}"),
        ({"common_name": "{serial.__class__}"}, "fields allowed"),
        ({"common_name": "{serial"}, "not a valid format string"),
        ({"common_name": "x" * 65}, "1 to 64 characters"),
        ({"country": "DEU"}, "two-letter"),
        ({"key_type": "rsa-2048"}, "not supported"),
        ({"validity_days": 0}, "validity_days"),
    ],
)
def test_template_refuses_bad_values(changes: dict[str, object], words: str) -> None:
    args: dict[str, object] = {"common_name": "{serial}"} | changes
    with pytest.raises(TemplateError, match=re.escape(words)):
        CertTemplate(**args)  # type: ignore[arg-type]


def test_template_error_is_a_value_error() -> None:
    with pytest.raises(ValueError):
        CertTemplate(common_name="{nope}")


def test_public_key_bytes_and_fingerprint(tmp_path: Path) -> None:
    key = seeded_ec_key(7)
    point = public_key_bytes(key.public_key())
    assert len(point) == 65 and point[0] == 4
    with pytest.raises(PkiError, match="P-256"):
        public_key_bytes(seeded_ec_key(7, ec.SECP384R1()).public_key())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fp")])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2100, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    pem = tmp_path / "c.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    out = subprocess.run(
        ["openssl", "x509", "-noout", "-fingerprint", "-sha256", "-in", str(pem)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    hex_colon = out.strip().split("=", 1)[1]
    assert fingerprint(cert) == "sha256:" + hex_colon.replace(":", "").lower()


# --- accepted -------------------------------------------------------------------------


def test_good_csr_is_accepted(make_device: DeviceFactory) -> None:
    dev = make_device(1)
    csr = check_csr(dev.csr_der, dev.subject, expected_public_key=dev.point)
    assert csr.subject == dev.subject
    assert public_key_bytes(csr.public_key()) == dev.point  # type: ignore[arg-type]


def test_subject_order_does_not_matter(make_device: DeviceFactory) -> None:
    dev = make_device(2)
    reordered = x509.Name(list(reversed(list(dev.subject))))
    assert check_csr(build_csr(dev.key, reordered), dev.subject)


def test_compressed_reported_point_is_accepted(make_device: DeviceFactory) -> None:
    dev = make_device(3)
    public = dev.key.public_key()
    assert isinstance(public, ec.EllipticCurvePublicKey)
    compressed = public.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint
    )
    check_csr(dev.csr_der, dev.subject, expected_public_key=compressed)


def test_ca_false_extension_is_accepted(make_device: DeviceFactory) -> None:
    dev = make_device(4, extensions=((x509.BasicConstraints(ca=False, path_length=None), True),))
    check_csr(dev.csr_der, dev.subject)


# --- refused --------------------------------------------------------------------------


def test_p384_key_is_refused(make_device: DeviceFactory) -> None:
    dev = make_device(5, key=seeded_ec_key(5, ec.SECP384R1()))
    with pytest.raises(CsrRejected, match=r"secp384r1; devices must use P-256"):
        check_csr(dev.csr_der, dev.subject)


def test_rsa_key_is_refused(make_device: DeviceFactory) -> None:
    dev = make_device(6, key=rsa.generate_private_key(65537, 2048))
    with pytest.raises(CsrRejected, match=r"RSA key; devices must use EC P-256"):
        check_csr(dev.csr_der, dev.subject)


@pytest.mark.parametrize(
    ("oid", "label"),
    [
        (NameOID.COUNTRY_NAME, "countryName (C)"),
        (NameOID.ORGANIZATION_NAME, "organizationName (O)"),
        (NameOID.ORGANIZATIONAL_UNIT_NAME, "organizationalUnitName (OU)"),
        (NameOID.COMMON_NAME, "commonName (CN)"),
        (NameOID.SERIAL_NUMBER, "serialNumber"),
    ],
)
def test_altered_subject_attribute_is_named(
    make_device: DeviceFactory, oid: x509.ObjectIdentifier, label: str
) -> None:
    dev = make_device(7)
    original = str(dev.subject.get_attributes_for_oid(oid)[0].value)
    altered_value = "FR" if oid == NameOID.COUNTRY_NAME else f"{original}x"
    der = build_csr(dev.key, _replace(dev.subject, oid, altered_value))
    with pytest.raises(CsrRejected) as err:
        check_csr(der, dev.subject, expected_public_key=dev.point)
    assert str(err.value) == (
        f"the CSR subject {label} is {altered_value!r}, expected {original!r}"
    )


def test_missing_subject_attribute_is_named(make_device: DeviceFactory) -> None:
    dev = make_device(8)
    der = build_csr(dev.key, _replace(dev.subject, NameOID.ORGANIZATIONAL_UNIT_NAME, None))
    with pytest.raises(CsrRejected, match=r"lacks organizationalUnitName \(OU\)"):
        check_csr(der, dev.subject)


def test_extra_subject_attribute_is_named(make_device: DeviceFactory) -> None:
    dev = make_device(9)
    der = build_csr(dev.key, _replace(dev.subject, NameOID.LOCALITY_NAME, "Berlin"))
    with pytest.raises(CsrRejected, match=r"has localityName .*'Berlin', which is not expected"):
        check_csr(der, dev.subject)


def test_tampered_signature_is_refused(make_device: DeviceFactory) -> None:
    dev = make_device(10)
    tampered = dev.csr_der[:-1] + bytes([dev.csr_der[-1] ^ 0x01])  # last byte of s
    with pytest.raises(CsrRejected, match="signature does not verify"):
        check_csr(tampered, dev.subject)


def test_tampered_subject_bytes_break_the_signature(make_device: DeviceFactory) -> None:
    dev = make_device(11)
    assert dev.csr_der.count(b"SN000011") == 2  # CN and serialNumber
    tampered = dev.csr_der.replace(b"SN000011", b"SN000012")
    with pytest.raises(CsrRejected, match="signature does not verify"):
        check_csr(tampered, dev.subject)


def test_csr_of_another_key_is_refused(make_device: DeviceFactory) -> None:
    dev, other = make_device(12), make_device(13)
    with pytest.raises(CsrRejected, match="not the key the device reported"):
        check_csr(dev.csr_der, dev.subject, expected_public_key=other.point)


def test_reported_point_that_is_not_a_point_is_refused(make_device: DeviceFactory) -> None:
    dev = make_device(14)
    bad = b"\x04" + bytes(64)
    with pytest.raises(CsrRejected, match="not a P-256 point"):
        check_csr(dev.csr_der, dev.subject, expected_public_key=bad)


@pytest.mark.parametrize(
    ("ext", "words"),
    [
        (x509.BasicConstraints(ca=True, path_length=None), "requests CA:true"),
        (
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            "keyCertSign",
        ),
    ],
)
def test_csr_asking_for_ca_powers_is_refused(
    make_device: DeviceFactory, ext: x509.ExtensionType, words: str
) -> None:
    dev = make_device(15, extensions=((ext, True),))
    with pytest.raises(CsrRejected, match=words):
        check_csr(dev.csr_der, dev.subject)


def test_sha1_signed_csr_is_refused(make_device: DeviceFactory) -> None:
    dev = make_device(16)
    key = dev.key
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    # cryptography no longer signs CSRs with SHA-1: re-sign the request info by hand.
    tbs = dev.csr.tbs_certrequest_bytes
    signature = key.sign(tbs, ec.ECDSA(hashes.SHA1()))
    ecdsa_with_sha1 = bytes.fromhex("300906072a8648ce3d0401")
    der = _der(0x30, tbs + ecdsa_with_sha1 + _der(0x03, b"\x00" + signature))
    parsed = x509.load_der_x509_csr(der)
    assert isinstance(parsed.signature_hash_algorithm, hashes.SHA1)
    key.public_key().verify(parsed.signature, tbs, ec.ECDSA(hashes.SHA1()))
    with pytest.raises(CsrRejected, match="hash sha1"):
        check_csr(der, dev.subject)


def _der(tag: int, content: bytes) -> bytes:
    n = len(content)
    length = bytes([n]) if n < 0x80 else bytes([0x81, n]) if n < 0x100 else b"\x82" + n.to_bytes(2)
    return bytes([tag]) + length + content


@pytest.mark.parametrize(
    "data",
    [b"", b"\x00", b"\x30\x03abc", b"\x30\x82\xff\xff" + bytes(10), bytes(range(256))],
)
def test_garbage_is_refused(make_device: DeviceFactory, data: bytes) -> None:
    with pytest.raises(CsrRejected, match="not a DER PKCS#10 CSR"):
        check_csr(data, make_device(1).subject)


def test_pem_is_refused_with_a_hint(make_device: DeviceFactory) -> None:
    dev = make_device(17)
    pem = dev.csr.public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CsrRejected, match="PEM text"):
        check_csr(pem, dev.subject)


def test_truncated_and_extended_der_are_refused(make_device: DeviceFactory) -> None:
    dev = make_device(18)
    for data in (dev.csr_der[:-1], dev.csr_der + b"\x00"):
        with pytest.raises(CsrRejected):
            check_csr(data, dev.subject)


@HYPOTHESIS
@given(st.binary(max_size=600))
def test_random_bytes_only_ever_raise_csr_rejected(make_device: DeviceFactory, data: bytes) -> None:
    with contextlib.suppress(CsrRejected):
        check_csr(data, make_device(1).subject)


@HYPOTHESIS
@given(st.data())
def test_mutated_csr_only_ever_raises_csr_rejected(
    make_device: DeviceFactory, data: st.DataObject
) -> None:
    dev = make_device(19)
    buf = bytearray(dev.csr_der)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(buf) - 1))
        buf[i] = data.draw(st.integers(0, 255))
    try:
        csr = check_csr(bytes(buf), dev.subject, expected_public_key=dev.point)
    except CsrRejected:
        return
    # Whatever survives must still be this unit's request.
    assert csr.is_signature_valid
    assert public_key_bytes(csr.public_key()) == dev.point  # type: ignore[arg-type]
