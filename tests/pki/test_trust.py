"""Trust rules: test and production roots kept apart, pins, and chains that must verify."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from ate.pki.ca import load_pem_chain
from ate.pki.csr import fingerprint
from ate.pki.devpki import DevPki, make_dev_pki, make_intermediate, make_production_like_root
from ate.pki.errors import PkiError, TrustError
from ate.pki.trust import check_trust, is_test_root, verify_issued
from tests.pki.conftest import seeded_ec_key


@dataclass
class Chain:
    chain: tuple[x509.Certificate, ...]
    root: x509.Certificate
    root_key: ec.EllipticCurvePrivateKey
    ica_key: ec.EllipticCurvePrivateKey


def _load(root_cert: Path, ica_cert: Path, root_key: Path, ica_key: Path | None) -> Chain:
    assert ica_key is not None
    rk = load_pem_private_key(root_key.read_bytes(), None)
    ik = load_pem_private_key(ica_key.read_bytes(), None)
    assert isinstance(rk, ec.EllipticCurvePrivateKey) and isinstance(ik, ec.EllipticCurvePrivateKey)
    return Chain(load_pem_chain([ica_cert]), load_pem_chain([root_cert])[0], rk, ik)


@pytest.fixture(scope="module")
def test_chain(file_pki: DevPki) -> Chain:
    return _load(file_pki.root_cert, file_pki.ica_cert, file_pki.root_key, file_pki.ica_key)


@pytest.fixture(scope="module")
def prod_chain(tmp_path_factory: pytest.TempPathFactory) -> Chain:
    directory = tmp_path_factory.mktemp("prod-like")
    root_cert, root_key = make_production_like_root(directory, "Acme")
    ica_cert, ica_key = make_intermediate(
        directory, root_cert, root_key, "Acme Manufacturing CA", organization="Acme"
    )
    return _load(root_cert, ica_cert, root_key, ica_key)


def _cert(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool | None,
    path_length: int | None = None,
    eku: x509.ObjectIdentifier | None = None,
) -> x509.Certificate:
    now = datetime.now(UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
        .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(hours=1))
        .not_valid_after(now + timedelta(days=30))
    )
    if ca is not None:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
        )
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([eku]), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


# --- is_test_root ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cn", "o", "expected"),
    [
        ("ate Device Root CA TEST", "ate", True),
        ("ate Device Root CA", "Acme TEST Lab", True),
        ("test root", None, True),
        ("TEST-root", None, True),
        ("root (Test)", None, True),
        ("test_ca", None, True),
        ("Testing Root", None, False),
        ("Contest CA", "Attestation Inc", False),
        ("Acme Device Root CA", "Acme", False),
        ("TESTROOT", None, False),
    ],
)
def test_test_root_rule(cn: str, o: str | None, expected: bool) -> None:
    key = seeded_ec_key(1)
    attrs = [x509.NameAttribute(NameOID.COMMON_NAME, cn)]
    if o is not None:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, o))
    name = x509.Name(attrs)
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    assert is_test_root(cert) is expected


def test_ou_does_not_make_a_test_root(prod_chain: Chain) -> None:
    assert not is_test_root(prod_chain.root)


# --- environments ---------------------------------------------------------------------


@pytest.mark.parametrize(("environment", "backend"), [("dev", "file"), ("test", "pkcs11")])
def test_dev_and_test_accept_a_test_root(test_chain: Chain, environment: str, backend: str) -> None:
    check_trust(environment, backend, test_chain.chain, test_chain.root, None)
    check_trust(
        environment, backend, test_chain.chain, test_chain.root, fingerprint(test_chain.root)
    )


def test_production_accepts_pkcs11_production_root_and_pin(prod_chain: Chain) -> None:
    check_trust(
        "production", "pkcs11", prod_chain.chain, prod_chain.root, fingerprint(prod_chain.root)
    )


def test_production_refuses_a_test_root(test_chain: Chain) -> None:
    with pytest.raises(TrustError, match=r"cannot use test root .*test and production trust"):
        check_trust(
            "production", "pkcs11", test_chain.chain, test_chain.root, fingerprint(test_chain.root)
        )


@pytest.mark.parametrize("environment", ["dev", "test"])
def test_dev_and_test_refuse_a_production_root(prod_chain: Chain, environment: str) -> None:
    with pytest.raises(TrustError) as err:
        check_trust(environment, "file", prod_chain.chain, prod_chain.root, None)
    assert str(err.value) == (
        f"the {environment} environment cannot use production root "
        "CN=Acme Device Root CA,O=Acme (no TEST in its CN or O); test and production trust "
        "are separate"
    )


def test_production_refuses_the_file_backend(prod_chain: Chain) -> None:
    with pytest.raises(TrustError, match="needs the pkcs11 CA backend"):
        check_trust(
            "production", "file", prod_chain.chain, prod_chain.root, fingerprint(prod_chain.root)
        )


def test_production_needs_a_pin(prod_chain: Chain) -> None:
    with pytest.raises(TrustError, match="needs root_sha256"):
        check_trust("production", "pkcs11", prod_chain.chain, prod_chain.root, None)


@pytest.mark.parametrize(("environment", "backend"), [("staging", "file"), ("dev", "hsm")])
def test_unknown_environment_or_backend(test_chain: Chain, environment: str, backend: str) -> None:
    with pytest.raises(TrustError, match="is not known; it must be one of"):
        check_trust(environment, backend, test_chain.chain, test_chain.root, None)


# --- pins -----------------------------------------------------------------------------


def test_pin_mismatch_is_refused(prod_chain: Chain, test_chain: Chain) -> None:
    with pytest.raises(TrustError, match="root_sha256 pins") as err:
        check_trust(
            "production", "pkcs11", prod_chain.chain, prod_chain.root, fingerprint(test_chain.root)
        )
    assert fingerprint(prod_chain.root).removeprefix("sha256:") in str(err.value)


def test_pin_spellings(prod_chain: Chain) -> None:
    hex_fp = fingerprint(prod_chain.root).removeprefix("sha256:")
    colons = ":".join(hex_fp[i : i + 2] for i in range(0, 64, 2)).upper()
    for pin in (hex_fp, hex_fp.upper(), "SHA256:" + hex_fp, colons):
        check_trust("production", "pkcs11", prod_chain.chain, prod_chain.root, pin)
    with pytest.raises(TrustError, match="64 hex digits"):
        check_trust("production", "pkcs11", prod_chain.chain, prod_chain.root, hex_fp[:-1])


# --- chains ---------------------------------------------------------------------------


def test_intermediate_signed_by_another_root_is_refused(test_chain: Chain, tmp_path: Path) -> None:
    other = make_dev_pki(tmp_path / "other")  # same names, other keys
    other_root = load_pem_chain([other.root_cert])[0]
    with pytest.raises(TrustError, match="signature does not verify with that certificate's key"):
        check_trust("dev", "file", test_chain.chain, other_root, None)


def test_intermediate_of_a_differently_named_root_is_refused(
    test_chain: Chain, prod_chain: Chain
) -> None:
    with pytest.raises(
        TrustError, match=r"is issued by CN=ate Device Root CA TEST.* the chain is broken"
    ):
        check_trust(
            "production", "pkcs11", test_chain.chain, prod_chain.root, fingerprint(prod_chain.root)
        )


def test_root_that_is_not_self_signed_is_refused(test_chain: Chain) -> None:
    with pytest.raises(TrustError, match="is not self-signed \\(issued by"):
        check_trust("dev", "file", test_chain.chain, test_chain.chain[0], None)


def test_root_with_its_own_name_but_another_key_is_refused(test_chain: Chain) -> None:
    name = test_chain.root.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
    fake = _cert(str(name), seeded_ec_key(2), str(name), seeded_ec_key(3), ca=True)
    with pytest.raises(TrustError, match="does not verify with its own key"):
        check_trust("dev", "file", test_chain.chain, fake, None)


def test_chain_certificate_that_is_not_a_ca_is_refused(test_chain: Chain) -> None:
    key = seeded_ec_key(4)
    not_ca = _reissue(
        _cert("TEST leaf", key, "x", key, ca=False), test_chain.root, test_chain.root_key
    )
    with pytest.raises(TrustError, match="is not a CA certificate"):
        check_trust("dev", "file", (not_ca,), test_chain.root, None)


def _reissue(
    cert: x509.Certificate, issuer: x509.Certificate, issuer_key: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    builder = (
        x509.CertificateBuilder()
        .subject_name(cert.subject)
        .issuer_name(issuer.subject)
        .public_key(cert.public_key())
        .serial_number(cert.serial_number)
        .not_valid_before(cert.not_valid_before_utc)
        .not_valid_after(cert.not_valid_after_utc)
    )
    for ext in cert.extensions:
        builder = builder.add_extension(ext.value, critical=ext.critical)
    return builder.sign(issuer_key, hashes.SHA256())


def test_pathlen_is_enforced(test_chain: Chain) -> None:
    sub_key = seeded_ec_key(5)
    sub = _reissue(
        _cert("TEST sub CA", sub_key, "x", sub_key, ca=True, path_length=0),
        test_chain.chain[0],
        test_chain.ica_key,
    )
    with pytest.raises(TrustError) as err:
        check_trust("dev", "file", (sub, *test_chain.chain), test_chain.root, None)
    assert str(err.value) == (
        "root CN=ate Device Root CA TEST,O=ate allows 1 intermediate CA(s) below it (pathlen), "
        "this chain has 2"
    )
    rk, ik, sk = seeded_ec_key(6), seeded_ec_key(7), seeded_ec_key(8)
    root = _cert("R TEST", rk, "R TEST", rk, ca=True)  # no pathlen limit
    ica = _cert("I", ik, "R TEST", rk, ca=True, path_length=0)
    sub = _cert("S", sk, "I", ik, ca=True, path_length=0)
    check_trust("dev", "file", (ica,), root, None)
    with pytest.raises(TrustError, match=r"intermediate CA CN=I allows 0 .* this chain has 1"):
        check_trust("dev", "file", (sub, ica), root, None)


def test_expired_chain_is_refused(test_chain: Chain) -> None:
    later = datetime.now(UTC) + timedelta(days=365 * 30)
    with pytest.raises(TrustError, match="is not valid now"):
        check_trust("dev", "file", test_chain.chain, test_chain.root, None, now=later)


def test_empty_chain_is_refused(test_chain: Chain) -> None:
    with pytest.raises(TrustError, match="chain is empty"):
        check_trust("dev", "file", (), test_chain.root, None)


# --- verify_issued --------------------------------------------------------------------


def _leaf(
    test_chain: Chain, *, ca: bool | None, eku: x509.ObjectIdentifier | None
) -> x509.Certificate:
    key = seeded_ec_key(6)
    return _reissue(
        _cert("dev", key, "x", key, ca=ca, eku=eku), test_chain.chain[0], test_chain.ica_key
    )


def test_verify_issued_accepts_a_client_leaf(test_chain: Chain) -> None:
    verify_issued(
        _leaf(test_chain, ca=False, eku=ExtendedKeyUsageOID.CLIENT_AUTH),
        test_chain.chain,
        test_chain.root,
    )


def test_verify_issued_refuses_a_ca_leaf(test_chain: Chain) -> None:
    with pytest.raises(TrustError, match="is a CA certificate"):
        verify_issued(_leaf(test_chain, ca=True, eku=None), test_chain.chain, test_chain.root)


def test_verify_issued_refuses_a_server_only_leaf(test_chain: Chain) -> None:
    leaf = _leaf(test_chain, ca=False, eku=ExtendedKeyUsageOID.SERVER_AUTH)
    with pytest.raises(TrustError, match="not for client authentication"):
        verify_issued(leaf, test_chain.chain, test_chain.root)


def test_verify_issued_refuses_an_expired_leaf(test_chain: Chain) -> None:
    leaf = _leaf(test_chain, ca=False, eku=None)
    with pytest.raises(TrustError, match="certificate CN=dev is not valid now"):
        verify_issued(
            leaf, test_chain.chain, test_chain.root, now=datetime.now(UTC) + timedelta(days=60)
        )


def test_make_production_like_root_refuses_a_test_name(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="contains the word TEST"):
        make_production_like_root(tmp_path, "Acme Test")
    assert not any(tmp_path.iterdir())
