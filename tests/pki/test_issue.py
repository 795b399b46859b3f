"""Issuing device certificates, the same tests on both CA backends (PEM file and SoftHSM2
token), checked by real `openssl verify` and by verify_issued."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, SignatureAlgorithmOID

from ate.pki.ca import IssuingCA, load_pem_chain, new_cert_serial
from ate.pki.csr import CertTemplate, check_csr, public_key_bytes
from ate.pki.devpki import DevPki
from ate.pki.errors import CaUnavailable, CsrRejected, PkiError, TrustError
from ate.pki.trust import check_trust, verify_issued
from tests.pki.conftest import Backend, DeviceFactory, openssl_verify, seeded_ec_key


def _issue(
    ca: IssuingCA, make_device: DeviceFactory, template: CertTemplate, n: int
) -> x509.Certificate:
    dev = make_device(n)
    csr = check_csr(dev.csr_der, dev.subject, expected_public_key=dev.point)
    return ca.issue(
        csr, dev.subject, template, serial_number=new_cert_serial(), now=datetime.now(UTC)
    )


def test_issued_certificate_verifies_with_openssl_and_python(
    backend: Backend, make_device: DeviceFactory, template: CertTemplate, tmp_path: Path
) -> None:
    cert = _issue(backend.ca, make_device, template, 100)
    rc, out = openssl_verify(backend.pki.root_cert, backend.pki.ica_cert, cert, tmp_path)
    assert rc == 0 and out.endswith(": OK"), out
    verify_issued(cert, backend.ca.chain, backend.ca.root)


def test_openssl_refuses_a_certificate_against_the_other_root(
    backend: Backend,
    make_device: DeviceFactory,
    template: CertTemplate,
    tmp_path: Path,
    file_pki: DevPki,
    token_pki: DevPki,
) -> None:
    # The check above can fail: the same command with the other backend's PKI refuses.
    cert = _issue(backend.ca, make_device, template, 101)
    other = token_pki if backend.ca.backend == "file" else file_pki
    rc, out = openssl_verify(other.root_cert, other.ica_cert, cert, tmp_path)
    assert rc != 0, out
    other_root = load_pem_chain([other.root_cert])[0]
    with pytest.raises(TrustError, match="signature does not verify"):
        verify_issued(cert, load_pem_chain([other.ica_cert]), other_root)


def test_certificate_follows_the_device_profile(
    backend: Backend, make_device: DeviceFactory, template: CertTemplate
) -> None:
    dev = make_device(102)
    now = datetime.now(UTC).replace(microsecond=0)
    serial = new_cert_serial()
    cert = backend.ca.issue(dev.csr, dev.subject, template, serial_number=serial, now=now)
    issuer = backend.ca.chain[0]
    assert cert.subject == dev.subject
    assert cert.issuer == issuer.subject
    assert cert.serial_number == serial
    assert public_key_bytes(cert.public_key()) == dev.point  # type: ignore[arg-type]
    assert cert.not_valid_before_utc == now - timedelta(seconds=60)
    assert cert.not_valid_after_utc == now + timedelta(days=template.validity_days)
    assert cert.signature_algorithm_oid == SignatureAlgorithmOID.ECDSA_WITH_SHA256
    ext = cert.extensions
    bc = ext.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca is False
    ku = ext.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.digital_signature and ku.value.key_agreement
    assert not ku.value.key_cert_sign and not ku.value.key_encipherment
    eku = ext.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    ski = ext.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(cert.public_key())
    aki = ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    issuer_ski = issuer.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == issuer_ski.digest
    assert len(ext) == 5
    cert.verify_directly_issued_by(issuer)


def test_subject_comes_from_the_caller_never_from_the_csr(
    backend: Backend, make_device: DeviceFactory, template: CertTemplate
) -> None:
    forged = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "someone-else")])
    dev = make_device(103, subject=forged)
    assert dev.csr.subject == forged
    cert = backend.ca.issue(
        dev.csr, dev.subject, template, serial_number=new_cert_serial(), now=datetime.now(UTC)
    )
    assert cert.subject == dev.subject != forged


def test_ca_extensions_requested_in_the_csr_are_not_copied(
    backend: Backend, make_device: DeviceFactory, template: CertTemplate
) -> None:
    dev = make_device(
        104,
        extensions=(
            (x509.BasicConstraints(ca=True, path_length=None), True),
            (x509.SubjectAlternativeName([x509.DNSName("evil.example")]), False),
        ),
    )
    cert = backend.ca.issue(
        dev.csr, dev.subject, template, serial_number=new_cert_serial(), now=datetime.now(UTC)
    )
    assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)


def test_issue_refuses_a_non_p256_csr(
    backend: Backend, make_device: DeviceFactory, template: CertTemplate
) -> None:
    dev = make_device(105, key=seeded_ec_key(105, ec.SECP384R1()))
    with pytest.raises(CsrRejected, match="P-256"):
        backend.ca.issue(
            dev.csr, dev.subject, template, serial_number=new_cert_serial(), now=datetime.now(UTC)
        )


@pytest.mark.parametrize("serial", [0, -5, 2**159])
def test_issue_refuses_serials_outside_rfc5280(
    backend: Backend, make_device: DeviceFactory, template: CertTemplate, serial: int
) -> None:
    dev = make_device(106)
    with pytest.raises(PkiError, match="2\\*\\*159"):
        backend.ca.issue(
            dev.csr, dev.subject, template, serial_number=serial, now=datetime.now(UTC)
        )


def test_issue_refuses_naive_time_and_times_outside_the_ca_validity(
    backend: Backend, make_device: DeviceFactory, template: CertTemplate
) -> None:
    dev = make_device(107)
    with pytest.raises(PkiError, match="timezone-aware"):
        backend.ca.issue(dev.csr, dev.subject, template, serial_number=1, now=datetime(2030, 1, 1))
    past = backend.ca.chain[0].not_valid_before_utc - timedelta(days=1)
    with pytest.raises(CaUnavailable, match="is not valid at"):
        backend.ca.issue(dev.csr, dev.subject, template, serial_number=1, now=past)


def test_probe_and_close(backend: Backend) -> None:
    backend.ca.probe()
    backend.ca.close()
    with pytest.raises(CaUnavailable, match="closed"):
        backend.ca.probe()


def test_dev_pki_passes_the_dev_trust_rules(backend: Backend) -> None:
    check_trust("dev", backend.ca.backend, backend.ca.chain, backend.ca.root, None)
    assert backend.ca.chain[0].subject.rfc4514_string().endswith("Manufacturing CA TEST,O=ate")


def test_new_cert_serial_is_positive_below_2_159_and_fits_20_octets() -> None:
    serials = {new_cert_serial() for _ in range(2000)}
    assert len(serials) == 2000
    assert all(0 < s < 2**159 for s in serials)
    # Random, not small: with 159 random bits, a serial below 2**120 has odds 2**-39.
    assert all(s >= 2**120 for s in serials)
    key = seeded_ec_key(1)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "s")])
    top = 2**159 - 1
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(top)
        .not_valid_before(datetime(2020, 1, 1, tzinfo=UTC))
        .not_valid_after(datetime(2021, 1, 1, tzinfo=UTC))
        .sign(key, hashes.SHA256())
    )
    der = cert.public_bytes(serialization.Encoding.DER)
    assert top.to_bytes(20, "big") in der and b"\x02\x14" + top.to_bytes(20, "big") in der
