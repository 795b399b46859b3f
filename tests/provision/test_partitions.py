"""esp_secure_cert and NVS images: built with Espressif's tools, read back, checked against
the tools' own parser / CLI and against openssl."""

from __future__ import annotations

import datetime as dt
import string
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from esp_secure_cert import tlv_parser
from hypothesis import given, settings
from hypothesis import strategies as st

from ate.provision.partitions import (
    NvsEntry,
    build_nvs,
    build_secure_cert,
    read_nvs_strings,
    read_secure_cert,
)

NOW = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(
    subject: str, key: ec.EllipticCurvePrivateKey, issuer: str, signer: ec.EllipticCurvePrivateKey
) -> x509.Certificate:
    is_ca = subject != "device"
    return (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW)
        .not_valid_after(NOW + dt.timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=is_ca, path_length=None), critical=True)
        .sign(signer, hashes.SHA256())
    )


@dataclass(frozen=True)
class Pki:
    root: x509.Certificate
    chain: list[x509.Certificate]  # issuing CA first, root last
    device: x509.Certificate
    other_device: x509.Certificate  # issued by a CA that is not in the chain

    def chain_pem(self) -> bytes:
        return b"".join(c.public_bytes(Encoding.PEM) for c in self.chain)

    def device_pem(self) -> bytes:
        return self.device.public_bytes(Encoding.PEM)


def _make_pki(intermediates: int = 1) -> Pki:
    """A throwaway PKI generated now: root -> intermediates -> device (EC P-256)."""
    root_key = ec.generate_private_key(ec.SECP256R1())
    root = _cert("Test Root", root_key, "Test Root", root_key)
    chain = [root]
    signer, signer_name = root_key, "Test Root"
    for n in range(intermediates):
        key = ec.generate_private_key(ec.SECP256R1())
        name = f"Test Issuing CA {n}"
        chain.insert(0, _cert(name, key, signer_name, signer))
        signer, signer_name = key, name
    device = _cert("device", ec.generate_private_key(ec.SECP256R1()), signer_name, signer)
    stranger = ec.generate_private_key(ec.SECP256R1())
    other = _cert("device", ec.generate_private_key(ec.SECP256R1()), signer_name, stranger)
    return Pki(root, chain, device, other)


@pytest.fixture(scope="module")
def pki() -> Pki:
    return _make_pki()


# ---- esp_secure_cert ------------------------------------------------------------------


def test_secure_cert_round_trip(pki: Pki) -> None:
    image = build_secure_cert(pki.chain_pem(), pki.device_pem())
    assert len(image) == 0x2000
    assert read_secure_cert(image) == {"ca_cert": pki.chain_pem(), "dev_cert": pki.device_pem()}


def test_secure_cert_is_deterministic(pki: Pki) -> None:
    first = build_secure_cert(pki.chain_pem(), pki.device_pem())
    assert build_secure_cert(pki.chain_pem(), pki.device_pem()) == first


def test_secure_cert_holds_certificates_only(pki: Pki) -> None:
    image = build_secure_cert(pki.chain_pem(), pki.device_pem())
    types, offset = [], 0
    while True:
        header, _ = tlv_parser.parse_tlv_header(image, offset)
        if header["magic"] != 0xBA5EBA11:
            break
        types.append((header["type"], header["subtype"], header["flags"]))
        offset += tlv_parser.get_tlv_total_length(header)
    assert types == [(0, 0, 0), (1, 0, 0)]  # CA_CERT, DEV_CERT; no PRIV_KEY (2)
    assert image[offset:] == b"\xff" * (len(image) - offset)
    assert b"PRIVATE KEY" not in image


def test_secure_cert_passes_the_tools_own_parser(
    pki: Pki, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "esp_secure_cert.bin"
    path.write_bytes(build_secure_cert(pki.chain_pem(), pki.device_pem()))
    capsys.readouterr()
    tlv_parser.process_tlv_entries(str(path))
    out = capsys.readouterr().out
    assert "ESP_SECURE_CERT_CA_CERT_TLV" in out and "ESP_SECURE_CERT_DEV_CERT_TLV" in out
    assert out.count("✓ VALID") == 2 and "INVALID" not in out


def test_chain_read_back_verifies_with_openssl(pki: Pki, tmp_path: Path) -> None:
    parsed = read_secure_cert(build_secure_cert(pki.chain_pem(), pki.device_pem()))
    chain = x509.load_pem_x509_certificates(parsed["ca_cert"])
    assert chain[-1] == pki.root
    (tmp_path / "root.pem").write_bytes(chain[-1].public_bytes(Encoding.PEM))
    (tmp_path / "untrusted.pem").write_bytes(
        b"".join(c.public_bytes(Encoding.PEM) for c in chain[:-1])
    )
    (tmp_path / "dev.pem").write_bytes(parsed["dev_cert"])
    args = ["openssl", "verify", "-attime", str(int(NOW.timestamp()) + 60)]
    args += ["-CAfile", "root.pem", "-untrusted", "untrusted.pem", "dev.pem"]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    # and openssl does notice a device certificate the chain did not issue
    (tmp_path / "dev.pem").write_bytes(pki.other_device.public_bytes(Encoding.PEM))
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode != 0


def test_secure_cert_other_sizes(pki: Pki) -> None:
    image = build_secure_cert(pki.chain_pem(), pki.device_pem(), size=0x3000)
    assert len(image) == 0x3000
    assert read_secure_cert(image)["dev_cert"] == pki.device_pem()


@pytest.mark.parametrize("size", [0, 0x800, 0x1800, 0x2001])
def test_secure_cert_size_must_be_whole_sectors(pki: Pki, size: int) -> None:
    with pytest.raises(ValueError, match="multiple of 0x1000"):
        build_secure_cert(pki.chain_pem(), pki.device_pem(), size=size)


def test_secure_cert_size_too_small_for_a_long_chain() -> None:
    long = _make_pki(intermediates=8)
    assert len(long.chain_pem()) + len(long.device_pem()) > 0x1000
    with pytest.raises(ValueError, match="too small"):
        build_secure_cert(long.chain_pem(), long.device_pem(), size=0x1000)
    image = build_secure_cert(long.chain_pem(), long.device_pem(), size=0x2000)
    assert read_secure_cert(image)["ca_cert"] == long.chain_pem()


def test_secure_cert_refuses_a_device_cert_the_chain_did_not_issue(pki: Pki) -> None:
    with pytest.raises(ValueError, match="not issued by the first certificate"):
        build_secure_cert(pki.chain_pem(), pki.other_device.public_bytes(Encoding.PEM))
    root_first = b"".join(c.public_bytes(Encoding.PEM) for c in reversed(pki.chain))
    with pytest.raises(ValueError, match="issuing CA first"):
        build_secure_cert(root_first, pki.device_pem())


def test_secure_cert_refuses_non_pem(pki: Pki) -> None:
    with pytest.raises(ValueError, match="CA chain"):
        build_secure_cert(b"not a certificate", pki.device_pem())
    with pytest.raises(ValueError, match="holds 2 certificates"):
        build_secure_cert(pki.chain_pem(), pki.device_pem() * 2)


def test_corrupt_secure_cert_is_detected(pki: Pki) -> None:
    image = bytearray(build_secure_cert(pki.chain_pem(), pki.device_pem()))
    image[100] ^= 0x01  # inside the CA_CERT data
    with pytest.raises(ValueError, match="wrong CRC"):
        read_secure_cert(bytes(image))


def test_blank_secure_cert_partition_reads_empty() -> None:
    assert read_secure_cert(b"\xff" * 0x2000) == {}


# ---- NVS ------------------------------------------------------------------------------

FCTRY = [
    NvsEntry("serial", "AS-PDRRV-YZ9CB-H"),
    NvsEntry("product", "ACME-S3"),
    NvsEntry("cloud_ep", "a1b2c3-ats.iot.eu-west-1.amazonaws.com"),
    NvsEntry("long", "x" * 3000),
]


def test_nvs_round_trip_and_determinism() -> None:
    image = build_nvs("fctry", FCTRY, size=0x6000)
    assert len(image) == 0x6000
    assert read_nvs_strings(image, "fctry") == {e.key: e.value for e in FCTRY}
    assert read_nvs_strings(image, "other") == {}
    assert build_nvs("fctry", FCTRY, size=0x6000) == image


def test_nvs_matches_the_tools_cli(tmp_path: Path) -> None:
    """The same entries through nvs_partition_gen's own CSV command give the same bytes."""
    rows = ["key,type,encoding,value", "fctry,namespace,,"]
    rows += [f"{e.key},data,string,{e.value}" for e in FCTRY]
    (tmp_path / "fctry.csv").write_text("\n".join(rows) + "\n")
    args = [sys.executable, "-m", "esp_idf_nvs_partition_gen", "generate"]
    args += ["fctry.csv", "fctry.bin", "0x6000", "--outdir", str(tmp_path)]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    assert (tmp_path / "fctry.bin").read_bytes() == build_nvs("fctry", FCTRY, size=0x6000)


nvs_keys = st.text(string.ascii_letters + string.digits + "_.", min_size=1, max_size=15).filter(
    lambda k: k not in {"ap.ssid", "ap.passwd", "ap.authmode", "sta.ssid", "sta.pswd"}
)
nvs_values = st.text(st.characters(exclude_characters="\0", codec="utf-8"), max_size=300)


@settings(max_examples=60, deadline=None)
@given(nvs_keys, st.dictionaries(nvs_keys, nvs_values, max_size=20))
def test_nvs_round_trip_any_strings(namespace: str, entries: dict[str, str]) -> None:
    image = build_nvs(namespace, [NvsEntry(k, v) for k, v in entries.items()], size=0x8000)
    assert read_nvs_strings(image, namespace) == entries


@pytest.mark.parametrize(
    ("namespace", "entries", "size", "words"),
    [
        ("fctry", [NvsEntry("k" * 16, "v")], 0x3000, "1 to 15"),
        ("f" * 16, [], 0x3000, "namespace"),
        ("fctry", [NvsEntry("", "v")], 0x3000, "1 to 15"),
        ("fctry", [NvsEntry("a key", "v")], 0x3000, "no spaces"),
        ("fctry", [NvsEntry("sta.ssid", "v")], 0x3000, "reserved"),
        ("fctry", [NvsEntry("a", "1"), NvsEntry("a", "2")], 0x3000, "twice"),
        ("fctry", [NvsEntry("a", "x\0y")], 0x3000, "NUL"),
        ("fctry", [NvsEntry("a", "x" * 4000)], 0x3000, "too long"),
        ("fctry", [], 0x2000, "at least 0x3000"),
        ("fctry", [], 0x3800, "multiple of 0x1000"),
        ("fctry", [NvsEntry(f"k{i}", "x" * 3000) for i in range(10)], 0x3000, "do not fit"),
    ],
)
def test_nvs_refusals(namespace: str, entries: list[NvsEntry], size: int, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        build_nvs(namespace, entries, size=size)


def test_nvs_corruption_is_detected() -> None:
    image = bytearray(build_nvs("fctry", FCTRY, size=0x3000))
    index = image.index(b"AS-PDRRV")
    image[index] ^= 0x20  # a data byte of the serial string
    with pytest.raises(ValueError, match="data CRC"):
        read_nvs_strings(bytes(image), "fctry")
    image = bytearray(build_nvs("fctry", FCTRY, size=0x3000))
    key_at = image.index(b"serial\0")
    image[key_at] ^= 0x01  # the entry's key: covered by the entry header CRC
    with pytest.raises(ValueError, match="wrong CRC"):
        read_nvs_strings(bytes(image), "fctry")


def test_nvs_reader_refuses_partial_pages() -> None:
    with pytest.raises(ValueError, match="whole 4 KiB pages"):
        read_nvs_strings(b"\xff" * 0x1800, "fctry")


def test_blank_nvs_reads_empty() -> None:
    assert read_nvs_strings(b"\xff" * 0x3000, "fctry") == {}
