"""Fixtures for the PKI tests: one real SoftHSM2 token per session (random PIN), development
PKIs with the intermediate's key in that token and in a PEM file, and a stand-in for the
device that generates its key and answers with a DER CSR.

SoftHSM2 reads SOFTHSM2_CONF when python-pkcs11 first loads it in this process, so the token
is session-scoped and made before any CA is opened.
"""

from __future__ import annotations

import random
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ate.pki.ca import IssuingCA
from ate.pki.csr import CertTemplate, public_key_bytes, subject_for
from ate.pki.devpki import DevPki, make_dev_pki
from ate.pki.file_ca import open_file_ca
from ate.pki.pkcs11_ca import open_pkcs11_ca
from ate.pki.softhsm import SoftHsmToken

ICA_KEY_LABEL = "mfg-ica"


@dataclass(frozen=True)
class Device:
    """What a unit under test holds and says: its key, identity and CSR (DER)."""

    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    serial: str
    mac: str
    product: str
    subject: x509.Name
    csr_der: bytes

    @property
    def point(self) -> bytes:
        """The public key as the device reports it: 65-byte uncompressed point."""
        public = self.key.public_key()
        assert isinstance(public, ec.EllipticCurvePublicKey)
        return public_key_bytes(public)

    @property
    def csr(self) -> x509.CertificateSigningRequest:
        return x509.load_der_x509_csr(self.csr_der)


DeviceFactory = Callable[..., Device]


def seeded_ec_key(seed: int, curve: ec.EllipticCurve | None = None) -> ec.EllipticCurvePrivateKey:
    """A reproducible EC key: the private value drawn from random.Random(seed)."""
    curve = curve or ec.SECP256R1()
    order_bits = curve.key_size
    value = random.Random(seed).getrandbits(order_bits - 1) | 1
    return ec.derive_private_key(value, curve)


def build_csr(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    subject: x509.Name,
    extensions: tuple[tuple[x509.ExtensionType, bool], ...] = (),
) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(subject)
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical=critical)
    # RFC 6979 signatures: the same unit gives the same bytes in every run.
    deterministic = True if isinstance(key, ec.EllipticCurvePrivateKey) else None
    csr = builder.sign(key, hashes.SHA256(), ecdsa_deterministic=deterministic)
    return csr.public_bytes(serialization.Encoding.DER)


@pytest.fixture(scope="session")
def template() -> CertTemplate:
    return CertTemplate(
        common_name="{product}-{serial}",
        organization="Acme Devices",
        organizational_unit="Line 1",
        country="DE",
        validity_days=3650,
    )


@pytest.fixture(scope="session")
def make_device(template: CertTemplate) -> DeviceFactory:
    """`make_device(n, *, key=None, subject=None, extensions=())`: unit n (seeded P-256 key
    unless `key` is given) with a CSR for `subject` (default: the template's subject)."""

    def make(
        n: int = 1,
        *,
        key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | None = None,
        subject: x509.Name | None = None,
        extensions: tuple[tuple[x509.ExtensionType, bool], ...] = (),
    ) -> Device:
        serial = f"SN{n:06d}"
        mac = f"24:0a:c4:00:{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}"
        product = "widget"
        expected = subject_for(template, serial=serial, mac=mac, product=product)
        key = key or seeded_ec_key(n)
        der = build_csr(key, subject or expected, extensions)
        return Device(key, serial, mac, product, expected, der)

    return make


@pytest.fixture(scope="session")
def token_pki(tmp_path_factory: pytest.TempPathFactory, hsm_token: SoftHsmToken) -> DevPki:
    return make_dev_pki(tmp_path_factory.mktemp("pki-token"), token=hsm_token)


@pytest.fixture(scope="session")
def file_pki(tmp_path_factory: pytest.TempPathFactory) -> DevPki:
    return make_dev_pki(tmp_path_factory.mktemp("pki-file"))


def open_token_ca(token: SoftHsmToken, pki: DevPki, **changes: object) -> IssuingCA:
    args: dict[str, object] = {
        "module": token.module,
        "token_label": token.label,
        "key_label": ICA_KEY_LABEL,
        "pin": token.pin,
        "cert": pki.ica_cert,
        "chain": pki.chain,
        "root": pki.root_cert,
    }
    args.update(changes)
    return open_pkcs11_ca(**args)  # type: ignore[arg-type]


@dataclass
class Backend:
    ca: IssuingCA
    pki: DevPki


@pytest.fixture(params=["file", "pkcs11"])
def backend(
    request: pytest.FixtureRequest, hsm_token: SoftHsmToken, token_pki: DevPki, file_pki: DevPki
) -> Iterator[Backend]:
    """Each issuing-CA backend in turn, opened on its development PKI."""
    if request.param == "file":
        assert file_pki.ica_key is not None
        ca = open_file_ca(file_pki.ica_cert, file_pki.ica_key, (), file_pki.root_cert, None)
        pki = file_pki
    else:
        ca = open_token_ca(hsm_token, token_pki)
        pki = token_pki
    assert ca.backend == request.param
    yield Backend(ca, pki)
    ca.close()


def openssl_verify(root: Path, ica: Path, cert: x509.Certificate, tmp: Path) -> tuple[int, str]:
    """`openssl verify -CAfile root -untrusted ica dev.pem` (strict, TLS client purpose), at
    the current time: (exit code, output)."""
    dev = tmp / f"dev-{cert.serial_number:x}.pem"
    dev.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    result = subprocess.run(
        [
            "openssl",
            "verify",
            "-x509_strict",
            "-purpose",
            "sslclient",
            "-CAfile",
            str(root),
            "-untrusted",
            str(ica),
            str(dev),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    return result.returncode, (result.stdout + result.stderr).strip()
