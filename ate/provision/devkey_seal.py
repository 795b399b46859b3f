"""The device key record under flash encryption by the station (`key: host`): the test
firmware writes its `dev_key` record in plain text before lock-down; the production app
reads the partition (flagged `encrypted`) through the flash-encryption engine. The
station therefore encrypts the record with the same XTS key it encrypts the images with
and writes that ciphertext back once the key is burned (PROVISIONING.md, "Protection").

Owns the station's reading of the record (the layout PROVISIONING.md fixes; the device's
own codec is ate.sim.devkey, and a test keeps the two in step) and the sealed bytes.
May import cryptography, espsecure and the standard library.
"""

from __future__ import annotations

import hashlib
import io
import struct

import espsecure
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

SEAL_BYTES = 0x80  # one XTS data unit: the 72-byte record and the erased bytes after it
_MAGIC = b"ATEK"
_HEADER = struct.Struct("<4sBBH")  # magic, version 1, curve 1 (P-256), scalar length 32
_SCALAR = 32
_RECORD = _HEADER.size + _SCALAR + 32
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551


def record_public_key(raw: bytes) -> bytes | None:
    """The X9.62 uncompressed public point of the key in the record at the start of
    `raw`, or None when `raw` holds no whole, intact record (erased, torn, encrypted)."""
    if len(raw) < _RECORD:
        return None
    magic, version, curve, length = _HEADER.unpack_from(raw)
    if (magic, version, curve, length) != (_MAGIC, 1, 1, _SCALAR):
        return None
    body = raw[: _HEADER.size + _SCALAR]
    if hashlib.sha256(body).digest() != raw[len(body) : _RECORD]:
        return None
    d = int.from_bytes(body[_HEADER.size :], "big")
    if not 1 <= d < _P256_ORDER:
        return None
    key = ec.derive_private_key(d, ec.SECP256R1())
    return key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def seal(plain: bytes, offset: int, key: bytes) -> bytes:
    """The first SEAL_BYTES of the partition at `offset` as the engine would have written
    them with `key` (32 or 64 bytes: XTS-AES-128 or -256), espsecure's encrypt-flash-data."""
    if len(plain) < SEAL_BYTES:
        raise ValueError(f"seal {len(plain)} bytes: the record's data unit is {SEAL_BYTES}")
    if offset % SEAL_BYTES:
        raise ValueError(f"the dev_key partition at {offset:#x} is not {SEAL_BYTES}-aligned")
    out = io.BytesIO()
    espsecure.encrypt_flash_data(
        io.BytesIO(key), out, offset, 0xF, True, io.BytesIO(plain[:SEAL_BYTES])
    )
    return out.getvalue()
