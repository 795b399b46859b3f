"""The production firmware release: its YAML manifest and the images it names, checked before
anything is flashed (hashes, layout, Secure Boot V2 signatures), and flash encryption of its
images with espsecure, in memory.

Imports the stdlib, cryptography, esptool/espsecure, pydantic, ate.chips and ate.config only.

    release: acme-sensor
    version: "1.4.2"
    chip: esp32s3
    images:
      - {role: bootloader, file: bootloader.bin, offset: 0x0, sha256: <64 hex>}
      - {role: partition_table, file: partition-table.bin, offset: 0x8000, sha256: ...}
      - {role: app, file: app.bin, offset: 0x10000, sha256: ...}
      - {role: data, file: storage.bin, offset: 0x320000, sha256: ...}   # any number
"""

from __future__ import annotations

import hashlib
import io
import itertools
import re
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import espsecure
import esptool
import esptool.targets
import esptool.util
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pydantic import Field, StrictInt, field_validator

from ate import chips
from ate.config.common import Strict
from ate.config.errors import InputError
from ate.config.files import IMAGE_MAX, FileRefused, read_file
from ate.config.loader import load_document
from ate.config.sequence import Chip
from ate.config.yaml_source import NodePath

SECTOR = 0x1000
REQUIRED_ROLES = ("bootloader", "partition_table", "app")
SIGNED_ROLES = ("bootloader", "app")
_SHA256_RE = re.compile(r"[0-9a-fA-F]{64}")
_SIG_BLOCKS = 3  # Secure Boot V2: up to three signature blocks in the last sector

# ESP-IDF binary partition table (components/partition_table/gen_esp32part.py): 32-byte
# entries <magic 0x50AA, type, subtype, offset, size, label[16], flags>, then optionally an
# MD5 entry (0xEBEB, 14 x 0xFF, MD5 of the entries before it), then 0xFF padding.
_ENTRY = struct.Struct("<HBBII16sI")
_ENTRY_MAGIC = 0x50AA
_MD5_MAGIC = 0xEBEB
_APP, _FACTORY, _OTA_0 = 0x00, 0x00, 0x10


class ReleaseError(InputError, ValueError):
    """A release that must not be flashed; the message starts with the manifest's path (and
    line when known). Also an InputError, so the CLI reports it like any bad input file."""


Role = Literal["bootloader", "partition_table", "app", "data"]


class ImageSpec(Strict):
    role: Role
    file: Annotated[str, Field(min_length=1, description="path relative to the manifest")]
    offset: Annotated[StrictInt, Field(ge=0, description="flash offset, e.g. 0x10000")]
    sha256: str

    @field_validator("sha256")
    @classmethod
    def _hex(cls, value: str) -> str:
        if not _SHA256_RE.fullmatch(value):
            raise ValueError("sha256 must be 64 hex digits (what `sha256sum <file>` prints)")
        return value.lower()


class Manifest(Strict):
    release: Annotated[str, Field(min_length=1)]
    version: Annotated[str, Field(min_length=1)]
    chip: Chip
    images: Annotated[tuple[ImageSpec, ...], Field(min_length=1)]

    @field_validator("version", mode="before")
    @classmethod
    def _quoted(cls, value: Any) -> Any:
        if isinstance(value, int | float) and not isinstance(value, bool):
            raise ValueError(f'version {value!r} was read as a number; quote it: "{value}"')
        return value


@dataclass(frozen=True)
class ReleaseImage:
    role: str
    path: Path  # absolute
    offset: int
    data: bytes = field(repr=False)  # the bytes that were hashed are the bytes flashed
    sha256: str


@dataclass(frozen=True)
class Release:
    name: str
    version: str
    chip: str
    path: Path  # the manifest, absolute
    sha256: str  # of the manifest file
    images: tuple[ReleaseImage, ...]

    def image(self, role: str) -> ReleaseImage:
        """The (first) image with `role`; KeyError if there is none."""
        for img in self.images:
            if img.role == role:
                return img
        raise KeyError(role)


@dataclass(frozen=True)
class PartitionEntry:
    name: str
    type: int
    subtype: int
    offset: int
    size: int
    flags: int = 0  # bit 0: encrypted (under flash encryption), bit 1: read-only

    @property
    def encrypted(self) -> bool:
        return bool(self.flags & 1)


def load_release(path: Path) -> Release:
    """Read and check a release manifest and every image it names (each file read once).

    Refuses, with a ReleaseError naming file and line: unknown or missing fields, a missing
    or unreadable image file, a sha256 mismatch, a missing bootloader / partition_table /
    app (or two of one), offsets not 4 KiB aligned, overlapping images, a bootloader not at
    the chip's boot offset, and an app that is not at (or does not fit) the partition
    table's factory app partition (ota_0 when the table has no factory partition).
    """
    path = Path(path)
    try:
        loaded = load_document(path, Manifest)
    except InputError as exc:
        raise ReleaseError(exc.path or path, exc.message, exc.line, exc.column) from None
    manifest, positions = loaded.model, loaded.positions

    def fail(message: str, at: NodePath = ()) -> ReleaseError:
        line, column = positions.value(at)
        return ReleaseError(path, message, line, column)

    for role in REQUIRED_ROLES:
        found = [i for i, spec in enumerate(manifest.images) if spec.role == role]
        if not found:
            raise fail(
                f"no image with role {role!r}; a release needs one each of "
                f"{', '.join(REQUIRED_ROLES)}",
                ("images",),
            )
        if len(found) > 1:
            first = positions.value(("images", found[0])).line
            raise fail(
                f"a second image with role {role!r} (the first is on line {first}); "
                "a release has one each of bootloader, partition_table and app",
                ("images", found[1], "role"),
            )
    for i, spec in enumerate(manifest.images):
        if spec.offset % SECTOR:
            raise fail(
                f"{spec.file}: offset {spec.offset:#x} is not a multiple of 0x1000 (4 KiB)",
                ("images", i, "offset"),
            )

    base = path.resolve().parent
    images: list[ReleaseImage] = []
    for i, spec in enumerate(manifest.images):
        file_path = base / spec.file
        try:
            data = read_file(file_path, IMAGE_MAX)
        except FileRefused as exc:
            if str(exc) == "no such file":
                raise fail(
                    f"{spec.file}: no such file (looked for {file_path})", ("images", i)
                ) from None
            raise fail(f"{spec.file}: {exc}", ("images", i)) from None
        digest = hashlib.sha256(data).hexdigest()
        if digest != spec.sha256:
            raise fail(
                f"{spec.file}: sha256 is {digest}, the manifest says {spec.sha256}",
                ("images", i, "sha256"),
            )
        if not data:
            raise fail(f"{spec.file}: the file is empty", ("images", i))
        images.append(ReleaseImage(spec.role, file_path, spec.offset, data, digest))

    order = sorted(range(len(images)), key=lambda k: images[k].offset)
    for a, b in itertools.pairwise(order):
        lower, upper = images[a], images[b]
        end = lower.offset + len(lower.data)
        if end > upper.offset:
            raise fail(
                f"{manifest.images[a].file} ({lower.offset:#x}-{end - 1:#x}) overlaps "
                f"{manifest.images[b].file} at {upper.offset:#x}",
                ("images", b, "offset"),
            )

    index = {img.role: i for i, img in reversed(list(enumerate(images)))}
    boot = images[index["bootloader"]]
    boot_offset = int(esptool.targets.CHIP_DEFS[manifest.chip].BOOTLOADER_FLASH_OFFSET)
    if boot.offset != boot_offset:
        raise fail(
            f"{manifest.images[index['bootloader']].file}: the bootloader is at "
            f"{boot.offset:#x}; the {manifest.chip} ROM loads it from {boot_offset:#x}",
            ("images", index["bootloader"], "offset"),
        )
    table_at = ("images", index["partition_table"])
    try:
        entries = partition_table_entries(images[index["partition_table"]].data)
    except ValueError as exc:
        raise fail(f"{manifest.images[table_at[1]].file}: {exc}", table_at) from None
    apps = [e for e in entries if e.type == _APP and e.subtype == _FACTORY] or [
        e for e in entries if e.type == _APP and e.subtype == _OTA_0
    ]
    if not apps:
        raise fail(
            f"{manifest.images[table_at[1]].file}: the partition table has no factory "
            "(or ota_0) app partition for the app",
            table_at,
        )
    boot_part = apps[0]
    app_i = index["app"]
    app = images[app_i]
    if app.offset != boot_part.offset:
        raise fail(
            f"{manifest.images[app_i].file}: the app is at {app.offset:#x} but the partition "
            f"table's {boot_part.name!r} app partition is at {boot_part.offset:#x}",
            ("images", app_i, "offset"),
        )
    if len(app.data) > boot_part.size:
        raise fail(
            f"{manifest.images[app_i].file}: the app has {len(app.data):#x} bytes; "
            f"partition {boot_part.name!r} holds {boot_part.size:#x}",
            ("images", app_i),
        )
    return Release(
        name=manifest.release,
        version=manifest.version,
        chip=manifest.chip,
        path=path.resolve(),
        sha256=loaded.sha256,
        images=tuple(images),
    )


def partition_table_entries(table: bytes) -> list[PartitionEntry]:
    """The partitions in an ESP-IDF binary partition table (a reader only; ESP-IDF's
    gen_esp32part.py writes them). Checks the MD5 entry when there is one; raises
    ValueError for an entry with an unknown magic or a wrong MD5."""
    entries: list[PartitionEntry] = []
    for pos in range(0, len(table) - _ENTRY.size + 1, _ENTRY.size):
        raw = table[pos : pos + _ENTRY.size]
        magic = int.from_bytes(raw[:2], "little")
        if magic == 0xFFFF:
            return entries
        if magic == _MD5_MAGIC:
            if hashlib.md5(table[:pos]).digest() != raw[16:32]:
                raise ValueError("the partition table's MD5 does not match its entries")
            continue
        if magic != _ENTRY_MAGIC:
            raise ValueError(
                f"partition table entry {pos // _ENTRY.size} has magic {magic:#06x}, "
                f"expected {_ENTRY_MAGIC:#06x}: not a partition table, or corrupt"
            )
        _, kind, subtype, offset, size, label, flags = _ENTRY.unpack(raw)
        name = label.split(b"\0", 1)[0].decode("ascii", "replace")
        entries.append(PartitionEntry(name, kind, subtype, offset, size, flags))
    return entries


def check_layout(release: Release, expected: Mapping[str, tuple[int, int]]) -> None:
    """The release's partition table must have each named partition at (offset, size), e.g.
    {"esp_secure_cert": (0xD000, 0x2000), "dev_key": (0xF000, 0x1000)}: provisioning writes
    there, so a release with another layout would overwrite its own firmware or lose keys."""
    entries = {e.name: e for e in partition_table_entries(release.image("partition_table").data)}
    problems = []
    for name, (offset, size) in expected.items():
        entry = entries.get(name)
        if entry is None:
            problems.append(f"no partition {name!r} (expected at {offset:#x}, size {size:#x})")
        elif (entry.offset, entry.size) != (offset, size):
            problems.append(
                f"partition {name!r} is at {entry.offset:#x} size {entry.size:#x}; the "
                f"station expects {offset:#x} size {size:#x}"
            )
    if problems:
        raise ReleaseError(release.path, "partition table: " + "; ".join(problems))


def verify_signatures(release: Release, public_keys_pem: Sequence[bytes]) -> None:
    """The bootloader and the app must each carry a valid Secure Boot V2 signature block
    (RSA-3072, PSS) for one of `public_keys_pem`, checked with espsecure's verify-signature
    logic; raises ReleaseError for an unsigned image, a wrong key or a changed image."""
    if not public_keys_pem:
        raise ValueError("give at least one Secure Boot V2 public key to verify against")
    for n, pem in enumerate(public_keys_pem, 1):
        try:
            key = load_pem_public_key(pem)
        except ValueError:
            raise ReleaseError(
                release.path, f"key #{n} is not a PEM public key (give public keys only)"
            ) from None
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size != 3072:
            raise ReleaseError(
                release.path,
                f"key #{n} is not an RSA-3072 public key; Secure Boot V2 here uses RSA-3072",
            )
    for role in SIGNED_ROLES:
        img = release.image(role)
        name = img.path.name
        data = img.data
        if len(data) < 2 * SECTOR or len(data) % SECTOR:
            raise ReleaseError(
                release.path,
                f"{name} is {len(data):#x} bytes, not whole 4 KiB sectors ending in a "
                "signature sector: it is not a Secure Boot V2 signed image",
            )
        if all(espsecure.validate_signature_block(data, i) is None for i in range(_SIG_BLOCKS)):
            raise ReleaseError(
                release.path, f"{name} has no Secure Boot V2 signature block: it is unsigned"
            )
        problem = ""
        for pem in public_keys_pem:
            try:
                espsecure.verify_signature_v2(False, None, io.BytesIO(pem), io.BytesIO(data))
            except esptool.FatalError as exc:
                problem = str(exc)
                continue
            break
        else:
            if "digest does not match" in problem:
                raise ReleaseError(
                    release.path,
                    f"{name}: the signed digest does not match the image: it was changed "
                    "after signing",
                )
            raise ReleaseError(
                release.path,
                f"{name} is not signed by any of the {len(public_keys_pem)} given key(s)",
            )


def encrypt_for_flash(release: Release, key: bytes) -> list[tuple[int, bytes]]:
    """Each image encrypted for flash at its offset, as (offset, ciphertext), with espsecure's
    encrypt-flash-data logic (XTS-AES; the ESP32's own AES scheme on the ESP32), in memory:
    the key never touches a file. Images are first padded with 0xFF to the chip's encrypted
    write alignment, as esptool's write-flash --encrypt does."""
    try:
        allowed = chips.get(release.chip).flash_encryption_key_bytes
    except chips.UnknownChip:
        raise ValueError(f"no flash-encryption scheme known for chip {release.chip!r}") from None
    if len(key) not in allowed:
        sizes = " or ".join(str(n) for n in allowed)
        raise ValueError(
            f"a {release.chip} flash-encryption key has {sizes} bytes; this one has {len(key)}"
        )
    target = esptool.targets.CHIP_DEFS[release.chip]
    align = int(target.FLASH_ENCRYPTED_WRITE_ALIGN)
    xts = release.chip != "esp32"
    out: list[tuple[int, bytes]] = []
    for img in release.images:
        plain = bytes(esptool.util.pad_to(img.data, align))
        cipher = io.BytesIO()
        espsecure.encrypt_flash_data(
            io.BytesIO(key), cipher, img.offset, 0xF, xts, io.BytesIO(plain)
        )
        out.append((img.offset, cipher.getvalue()))
    return out
