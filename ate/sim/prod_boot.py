"""What a simulated chip runs at a boot from flash, its security eFuses as they are: the
flash as its CPU sees it through the flash-encryption engine, the Secure Boot V2 check of
the bootloader (by the ROM) and of the app (by the bootloader) against the burned key
digests, and the simulated production app's boot banner (the line PROVISIONING.md asks a
production app to print).

ESP-IDF encrypts the bootloader, the partition table, every app partition and every data
partition flagged `encrypted`; with SPI_BOOT_CRYPT_CNT odd the engine decrypts exactly
those on every CPU read, with the XTS-AES key in the key block(s) of an XTS purpose.
Anything written there in plain text reads back as garbage.

May import ate.sim.boot, ate.sim.devkey, ate.sim.rom (flash, eFuses), ate.provision's pure
readers (identity, partitions, release), the esp driver's log capture, espsecure,
espefuse's tables and cryptography.
"""

from __future__ import annotations

import hashlib
import importlib
import io
import struct
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import espsecure
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from esptool.util import FatalError

from ate.drivers.esp.log_capture import SlotCapture, captured
from ate.provision.identity import UsrDataCorrupt, decode_usr_data
from ate.provision.partitions import read_secure_cert
from ate.provision.release import PartitionEntry, partition_table_entries
from ate.sim import devkey
from ate.sim.boot import TEST_FIRMWARE_PROJECT, BootedApp, NoApp, find_app
from ate.sim.rom.efuses import EfuseBank
from ate.sim.rom.flash import SparseFlash

BANNER_PREFIX = "ATE-PROD"
BOOTLOADER_OFFSET = 0x0
BOOTLOADER_WINDOW = 0x8000  # the bootloader ends where the partition table starts
PARTITION_TABLE_OFFSET = 0x8000
PARTITION_TABLE_SIZE = 0xC00
APP_WINDOW = 0x40000  # how much of the app partition the simulated bootloader decrypts
_SECTOR = 0x1000
_SIG_BLOCKS = 3
_SIG_BLOCK_SIZE = 1216
_SIG_KEY_PART = slice(36, 36 + 776)  # n, e, rinv, m': what SECURE_BOOT_DIGESTn hashes
_USR_DATA_BLOCK = 3


@dataclass(frozen=True, slots=True)
class ProductionApp:
    """A production app that booted; `console` is all it prints (the banner last)."""

    banner: str
    console: str


def _purposes(chip: str) -> list[str]:
    kinds: Any = importlib.import_module(f"espefuse.efuse.{chip}.fields")
    table = kinds.EfuseKeyPurposeField.KEY_PURPOSES
    by_id = {int(p[1]): str(p[0]) for p in table if int(p[1]) >= 0}
    return [by_id.get(i, "?") for i in range(max(by_id) + 1)]


def _key_purposes(chip: str, efuses: EfuseBank) -> list[str]:
    names = _purposes(chip)
    out = []
    for field in efuses.chip.key_purpose_fields:
        value = int(efuses.field(field))
        out.append(names[value] if value < len(names) else "?")
    return out


def flash_encryption_on(efuses: EfuseBank) -> bool:
    return bin(int(efuses.field("SPI_BOOT_CRYPT_CNT"))).count("1") % 2 == 1


def engine_key(chip: str, efuses: EfuseBank) -> bytes | None:
    """The XTS-AES key the engine uses: 32 bytes (XTS_AES_128_KEY) or 64 (the two halves
    of an XTS-AES-256 key), or None when no key block holds one. espefuse burns XTS keys
    byte-reversed, so each block is read back reversed."""
    purposes = _key_purposes(chip, efuses)
    if "XTS_AES_256_KEY_1" in purposes and "XTS_AES_256_KEY_2" in purposes:
        first = efuses.engine_key_block(purposes.index("XTS_AES_256_KEY_1"))
        second = efuses.engine_key_block(purposes.index("XTS_AES_256_KEY_2"))
        return first[::-1] + second[::-1]
    if "XTS_AES_128_KEY" in purposes:
        return efuses.engine_key_block(purposes.index("XTS_AES_128_KEY"))[::-1]
    return None


def decrypt(key: bytes, offset: int, data: bytes) -> bytes:
    """What the engine returns for `data` stored at `offset` (16-byte aligned)."""
    out = io.BytesIO()
    with _quiet():
        espsecure.decrypt_flash_data(io.BytesIO(key), out, offset, 0xF, True, io.BytesIO(data))
    return out.getvalue()


def _quiet() -> AbstractContextManager[object]:
    """espsecure's chatter ("Using 256-bit key", "Signature block 0 is valid") belongs
    to no one's console: the simulated chip does this silently."""
    return captured(SlotCapture("espsecure", lambda line: None))


class CpuView:
    """The flash as the CPU reads it: regions ESP-IDF encrypts go through the engine
    when flash encryption is on (with whatever key the eFuses hold, or garbage)."""

    def __init__(self, chip: str, flash: SparseFlash, efuses: EfuseBank) -> None:
        self.flash = flash
        self.fe = flash_encryption_on(efuses)
        self.key = engine_key(chip, efuses) if self.fe else None

    def read(self, offset: int, size: int, *, encrypted: bool) -> bytes:
        raw = self.flash.read(offset, size)
        if not (self.fe and encrypted):
            return raw
        if self.key is None:  # no key: the engine reads an all-zero key's garbage
            return decrypt(b"\0" * 32, offset, raw)
        return decrypt(self.key, offset, raw)


def _rsa_pem(block: bytes) -> bytes:
    n_le, e = struct.unpack_from("<384sI", block, 36)
    numbers = rsa.RSAPublicNumbers(e, int.from_bytes(n_le, "little"))
    return numbers.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def burned_digests(chip: str, efuses: EfuseBank) -> list[bytes]:
    """The SECURE_BOOT_DIGESTn blocks whose slot is not revoked."""
    out = []
    for index, purpose in enumerate(_key_purposes(chip, efuses)):
        if not purpose.startswith("SECURE_BOOT_DIGEST"):
            continue
        if efuses.field(f"SECURE_BOOT_KEY_REVOKE{purpose[-1]}"):
            continue
        out.append(efuses.engine_key_block(index))
    return out


def signed_length(image: bytes, chip: str) -> int:
    """The image's bytes up to the end of its signature sector (0 if it has none)."""
    from esptool.bin_image import LoadFirmwareImage

    try:
        parsed = LoadFirmwareImage(chip, image)
    except Exception:
        return 0
    size = (parsed.data_length or 0) + (32 if getattr(parsed, "stored_digest", None) else 0)
    end = -(-size // _SECTOR) * _SECTOR + _SECTOR
    return end if end <= len(image) else 0


def secure_boot_problem(image: bytes, chip: str, digests: list[bytes]) -> str | None:
    """None when a signature block of `image` is made with a key whose digest is burned
    and verifies (espsecure's verify-signature); else why the boot stops."""
    end = signed_length(image, chip)
    if end == 0:
        return "no signature sector"
    signed = image[:end]
    for i in range(_SIG_BLOCKS):
        with _quiet():
            block = espsecure.validate_signature_block(signed, i)
        if block is None:
            continue
        if hashlib.sha256(block[_SIG_KEY_PART]).digest() not in digests:
            continue
        try:
            with _quiet():
                espsecure.verify_signature_v2(
                    False, None, io.BytesIO(_rsa_pem(block)), io.BytesIO(signed)
                )
        except (FatalError, ValueError):
            continue
        return None
    return "no signature block verifies with a key whose digest is burned"


def _usr_serial(efuses: EfuseBank) -> str:
    words = efuses._block_words(_USR_DATA_BLOCK)
    try:
        usr = decode_usr_data(b"".join(int(w).to_bytes(4, "little") for w in words))
    except UsrDataCorrupt:
        return "corrupt"
    return usr.serial if usr is not None else "none"


def _partition(entries: list[PartitionEntry], name: str) -> PartitionEntry | None:
    return next((e for e in entries if e.name == name), None)


def _cert_fingerprint(view: CpuView, entry: PartitionEntry | None) -> str:
    if entry is None:
        return "none"
    raw = view.read(entry.offset, entry.size, encrypted=entry.encrypted)
    try:
        pem = read_secure_cert(raw).get("dev_cert")
        if pem is None:
            return "none"
        cert = x509.load_pem_x509_certificate(pem)
    except ValueError:
        return "corrupt"
    return "sha256:" + cert.fingerprint(hashes.SHA256()).hex()


def _key_fingerprint(view: CpuView, entry: PartitionEntry | None) -> str:
    """What the app's esp_partition_read of the dev_key record yields: the SHA-256 of the
    key's public point, or none when it reads no intact record."""
    if entry is None:
        return "none"
    raw = view.read(entry.offset, entry.size, encrypted=entry.encrypted)
    d = devkey.decode_record(raw)
    if d is None:
        return "none"
    point = devkey.public_point(devkey.private_key(d))
    return "sha256:" + hashlib.sha256(point).hexdigest()


def banner(fields: dict[str, str]) -> str:
    return " ".join([BANNER_PREFIX, *(f"{k}={v}" for k, v in fields.items())])


def boot(chip: str, flash: SparseFlash, efuses: EfuseBank) -> BootedApp | NoApp | ProductionApp:
    """ROM, second stage and app of one boot from flash: the test firmware (BootedApp),
    nothing runnable (NoApp, with what the chip prints) or a production app."""
    view = CpuView(chip, flash, efuses)
    secure = bool(efuses.field("SECURE_BOOT_EN"))
    digests = burned_digests(chip, efuses) if secure else []
    locked = secure or view.fe
    boot_image = view.read(BOOTLOADER_OFFSET, BOOTLOADER_WINDOW, encrypted=True)
    # An open chip in the simulator may hold only an app (the test firmware's images):
    # the bootloader and the partition table are checked once security is on.
    if locked and boot_image[:1] != b"\xe9":
        return NoApp(
            "invalid bootloader header",
            f"invalid header: 0x{int.from_bytes(boot_image[:4], 'little'):08x}\r\n",
        )
    if secure:
        why = secure_boot_problem(boot_image, chip, digests)
        if why is not None:
            return NoApp(
                f"secure boot: bootloader: {why}",
                f"E (31) secure_boot_v2: bootloader: {why}\r\nsecure boot check fail\r\n",
            )
    try:
        entries = partition_table_entries(
            view.read(PARTITION_TABLE_OFFSET, PARTITION_TABLE_SIZE, encrypted=True)
        )
    except ValueError:
        if locked:
            return NoApp(
                "corrupt partition table", "E (42) flash_parts: partition table corrupt\r\n"
            )
        entries = []
    app_entry = next((e for e in entries if e.type == 0), None)
    offset = app_entry.offset if app_entry is not None else efuses.chip.app_offset
    window = min(APP_WINDOW, flash.size - offset)
    app_image = view.read(offset, window, encrypted=True)
    app = find_app(chip, app_image)
    if isinstance(app, NoApp):
        return app
    if secure:
        why = secure_boot_problem(app_image, chip, digests)
        if why is not None:
            return NoApp(
                f"secure boot: app: {why}",
                f"E (120) secure_boot_v2: app: {why}\r\nE (125) boot: Factory app partition "
                "is not bootable\r\n",
            )
    if app.project == TEST_FIRMWARE_PROJECT:
        return app
    line = banner(
        {
            "version": app.version,
            "serial": _usr_serial(efuses),
            "cert": _cert_fingerprint(view, _partition(entries, "esp_secure_cert")),
            "key": _key_fingerprint(view, _partition(entries, "dev_key")),
            "sb": str(int(secure)),
            "fe": str(int(view.fe)),
        }
    )
    console = f"I (300) app_main: {app.project} {app.version} starting\r\n{line}\r\n"
    return ProductionApp(line, console)
