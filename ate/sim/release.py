"""A production release for the simulator, the tests and the demo: small, deterministic
ESP-IDF-shaped bootloader and app images (project "acme_prod", told apart from the test
firmware "ate_test_fw"), a partition table, optional Secure Boot V2 signatures made with
espsecure sign-data, and the manifest.yaml that ate.provision.release loads.

The partition table is written here in ESP-IDF's binary format because ESP-IDF's
gen_esp32part.py is not on PyPI; a real release takes partition-table.bin from the ESP-IDF
build. The images are not code: never flash them on a board.

May import ate.chips, ate.provision, the stdlib, cryptography and espsecure.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType

import espsecure
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ate import chips
from ate.provision.release import PartitionEntry

PROJECT = b"acme_prod"
RELEASE_NAME = "acme-prod"
IDF_VERSION = b"v5.3"
# Fixed so that the images are byte-for-byte reproducible.
BUILD_TIME, BUILD_DATE = b"00:00:00", b"Jan  1 2025"

BOOTLOADER_OFFSET = 0x0
PARTITION_TABLE_OFFSET = 0x8000
APP_OFFSET = 0x10000
BOOTLOADER_SIZE = 16 * 1024  # before signing; the signature sector adds 4 KiB
APP_SIZE = 64 * 1024
_TABLE_SIZE = 0xC00  # gen_esp32part.py pads the table to this
_DATA, _APP = 0x01, 0x00
_NVS, _FACTORY = 0x02, 0x00
_ENCRYPTED = 0x1  # partition flag bit 0

SIM_PARTITIONS: tuple[PartitionEntry, ...] = (
    PartitionEntry("nvs", _DATA, _NVS, 0x9000, 0x4000),
    PartitionEntry("esp_secure_cert", 0x3F, 0x00, 0xD000, 0x2000),
    # Flagged encrypted: under flash encryption the app reads it through the engine.
    PartitionEntry("dev_key", _DATA, 0x40, 0xF000, 0x1000, flags=_ENCRYPTED),
    PartitionEntry("factory", _APP, _FACTORY, APP_OFFSET, 0x300000),
    PartitionEntry("fctry", _DATA, _NVS, 0x310000, 0x6000),
)
# name -> (offset, size), the shape ate.provision.release.check_layout takes.
SIM_LAYOUT: Mapping[str, tuple[int, int]] = MappingProxyType(
    {p.name: (p.offset, p.size) for p in SIM_PARTITIONS}
)


def make_signing_key(path: Path) -> Path:
    """Generate an RSA-3072 Secure Boot V2 signing key now and write it as PEM with mode
    0600. Never overwrites: an existing file is an error."""
    path = Path(path)
    key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        # the format espsecure generate-signing-key writes
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise FileExistsError(f"{path} exists; a signing key is never overwritten") from None
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    os.chmod(path, 0o600)
    return path


def public_key_pem(private_key_path: Path) -> bytes:
    """The public half of a PEM private key, as SubjectPublicKeyInfo PEM."""
    key = serialization.load_pem_private_key(Path(private_key_path).read_bytes(), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def filler(tag: str, size: int) -> bytes:
    """Deterministic bytes that stand for code: SHA-256 of `tag:counter`, chained."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{tag}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


def esp_image(
    chip_id: int, entry: int, load_addr: int, payload: bytes, size: int, tag: str
) -> bytes:
    """One-segment ESP image of exactly `size` bytes: header, extended header (chip id,
    hash appended), the segment (payload + filler), checksum, SHA-256."""
    header = struct.pack("<BBBBI", 0xE9, 1, 2, 0x20, entry)  # 1 segment, DIO, 4 MB 40 MHz
    extended = struct.pack("<BBBBHBHHIB", 0xEE, 0, 0, 0, chip_id, 0, 0, 0xFFFF, 0, 1)
    seg_len = size - len(header) - len(extended) - 8 - 16 - 32
    data = payload + filler(tag, seg_len - len(payload))
    body = header + extended + struct.pack("<II", load_addr, len(data)) + data
    checksum = 0xEF
    for b in data:
        checksum ^= b
    body += b"\0" * (15 - len(body) % 16) + bytes([checksum])  # checksum ends a 16-byte block
    return body + hashlib.sha256(body).digest()


def _bootloader_desc() -> bytes:
    """esp_bootloader_desc_t, 80 bytes (ESP-IDF >= 5.2): what esptool image-info shows."""
    return struct.pack(
        "<B3sI32s24s16s", 0x50, b"", 1, IDF_VERSION, BUILD_DATE + b" " + BUILD_TIME, b""
    )


def _app_desc(version: bytes) -> bytes:
    """esp_app_desc_t, 256 bytes."""
    return struct.pack(
        "<II8s32s32s16s16s32s32sHHB3s72s",
        0xABCD5432,  # ESP_APP_DESC_MAGIC_WORD
        0,  # secure_version
        b"",
        version,
        PROJECT,
        BUILD_TIME,
        BUILD_DATE,
        IDF_VERSION,
        hashlib.sha256(PROJECT + version).digest(),  # stands in for the ELF's hash
        0,
        0,
        16,  # mmu_page_size, log2 (64 KiB pages)
        b"",
        b"",
    )


def sim_partition_table(partitions: tuple[PartitionEntry, ...] = SIM_PARTITIONS) -> bytes:
    """`partitions` in ESP-IDF's binary format with its MD5 entry, padded to 0xC00."""
    raw = b"".join(
        struct.pack(
            "<HBBII16sI", 0x50AA, p.type, p.subtype, p.offset, p.size, p.name.encode(), p.flags
        )
        for p in partitions
    )
    raw += b"\xeb\xeb" + b"\xff" * 14 + hashlib.md5(raw).digest()
    return raw + b"\xff" * (_TABLE_SIZE - len(raw))


def _sign(image: Path, signing_key: Path) -> None:
    """espsecure sign-data --version 2 --keyfile KEY IMAGE (in place), as a library call."""
    with signing_key.open("rb") as keyfile, image.open("rb") as datafile:
        espsecure.sign_data(
            version="2",
            keyfile=[keyfile],
            output=None,
            append_signatures=False,
            hsm=False,
            hsm_config=None,
            pub_key=[],
            signature=[],
            datafile=datafile,
        )


def make_sim_release(
    directory: Path, chip: str, *, version: str = "1.0.0", signing_key: Path | None = None
) -> Path:
    """Write bootloader.bin (at 0x0), partition-table.bin (at 0x8000), app.bin (at 0x10000)
    and manifest.yaml into `directory`; sign bootloader and app with `signing_key` when one
    is given. Unsigned images are byte-for-byte reproducible (RSA-PSS signatures are not).
    Returns the manifest's path."""
    layout = chips.get(chip).image_layout
    if layout is None:
        made_for = [c.name for c in chips.all_chips() if c.image_layout is not None]
        raise ValueError(f"the simulated release is made for {' or '.join(made_for)}, not {chip!r}")
    raw_version = version.encode("ascii", "replace")
    if not version or len(raw_version) > 31 or not version.isascii() or not version.isprintable():
        raise ValueError(f"version {version!r}: use 1 to 31 printable ASCII characters")
    chip_id, boot_entry, boot_addr = layout.chip_id, layout.bootloader_entry, layout.bootloader_dram
    app_entry, drom_addr = layout.app_entry, layout.app_drom
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tag = f"{PROJECT.decode()}:{chip}:{version}"
    files = {
        "bootloader.bin": esp_image(
            chip_id, boot_entry, boot_addr, _bootloader_desc(), BOOTLOADER_SIZE, f"{tag}:boot"
        ),
        "partition-table.bin": sim_partition_table(),
        "app.bin": esp_image(
            chip_id, app_entry, drom_addr, _app_desc(raw_version), APP_SIZE, f"{tag}:app"
        ),
    }
    for name, data in files.items():
        (directory / name).write_bytes(data)
    if signing_key is not None:
        for name in ("bootloader.bin", "app.bin"):
            _sign(directory / name, Path(signing_key))
    rows = [
        ("bootloader", "bootloader.bin", BOOTLOADER_OFFSET),
        ("partition_table", "partition-table.bin", PARTITION_TABLE_OFFSET),
        ("app", "app.bin", APP_OFFSET),
    ]
    lines = [
        "# Simulated production release (ate.sim.release): not firmware, never flash it.",
        f"release: {RELEASE_NAME}",
        f"version: {json.dumps(version)}",
        f"chip: {chip}",
        "images:",
    ]
    for role, name, offset in rows:
        digest = hashlib.sha256((directory / name).read_bytes()).hexdigest()
        lines.append(f"  - {{role: {role}, file: {name}, offset: {offset:#x}, sha256: {digest}}}")
    manifest = directory / "manifest.yaml"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest
