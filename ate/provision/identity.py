"""A unit's identity, sans-IO: serial numbers (derived, checked, read off labels), the label
text, and the BLOCK_USR_DATA eFuse image that carries the serial on the chip.

Pure functions, no I/O. Imports the stdlib and ate.protocol (for its CRC) only.

A serial looks like `AS-7K2M9-QXH4T-Z`: a product prefix, a body of Crockford base32
symbols taken from HMAC-SHA256(factory secret, b"ate-serial/1" + chip id) in groups of five,
and one ISO/IEC 7064 MOD 37,36 check character over prefix + body. Keying the HMAC with a
factory secret (rather than hashing the chip id) means nobody outside the factory can compute
the serial of a chip, or the chip of a serial. The whole serial is at most 16 characters
because BLOCK_USR_DATA stores it in 16 bytes: with the default 10 body symbols the prefix may
be at most 2 characters, 9 symbols allow 3, 8 allow 4.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import struct
from dataclasses import dataclass

from ate.protocol.lines import crc16

SERIAL_MAX = 16  # bytes 2-17 of BLOCK_USR_DATA
_HMAC_LABEL = b"ate-serial/1"
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # base32 without I L O U
_ISO_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # MOD 37,36 over the 36 alphanumerics
_ISO_VALUE = {c: i for i, c in enumerate(_ISO_ALPHABET)}
_PREFIX_RE = re.compile(r"[A-Z0-9]{1,4}")
_SERIAL_RE = re.compile(
    r"(?P<prefix>[A-Z0-9]{1,4})-(?P<body>(?:[0-9A-HJKMNP-TV-Z]{5}-)+[0-9A-HJKMNP-TV-Z]{1,5})"
    r"-(?P<check>[0-9A-Z])"
)
# At least two body groups, the first of exactly five: then no moved hyphen between prefix
# and body leaves a well-formed serial, which the check character (over prefix + body,
# hyphens excluded) could not notice.
MIN_DIGITS = 6
_CHIP_ID_LENGTHS = (6, 16)  # a MAC, or the 128-bit OPTIONAL_UNIQUE_ID
_MIN_SECRET = 16
# Crockford's reading rules, applied to the body only: the prefix and the check character
# are drawn from all 36 alphanumerics, where O, I and L are symbols of their own.
_READING = str.maketrans({"O": "0", "I": "1", "L": "1"})
_MAC_RE = re.compile(r"[0-9a-f]{2}([:-]?)(?:[0-9a-f]{2}\1){4}[0-9a-f]{2}")

# BLOCK_USR_DATA (BLOCK3), 32 bytes, Reed-Solomon coded: written once.
USR_DATA_SIZE = 32
USR_DATA_MAGIC = b"A1"
_USR_LAYOUT = struct.Struct("<2s16sI")  # magic, serial NUL-padded, product id; CRC follows


def _mod37_36(text: str) -> int:
    """ISO/IEC 7064 MOD 37,36 (hybrid system, M = 36): the running product after `text`,
    from which the check value is (M + 1 - p) mod M."""
    m = 36
    p = m
    for ch in text:
        s = (p + _ISO_VALUE[ch]) % m or m
        p = (2 * s) % (m + 1)
    return p


def _check_char(text: str) -> str:
    return _ISO_ALPHABET[(37 - _mod37_36(text)) % 36]


def _serial_length(prefix: str, digits: int) -> int:
    groups = -(-digits // 5)
    return len(prefix) + 1 + digits + (groups - 1) + 2


def derive_serial(secret: bytes, chip_id: bytes, *, prefix: str, digits: int = 10) -> str:
    """The unit's serial for `chip_id` (6-byte MAC or 16-byte OPTIONAL_UNIQUE_ID), keyed with
    the factory `secret`. Deterministic: re-testing a unit gives it the same serial."""
    if len(secret) < _MIN_SECRET:
        raise ValueError(
            f"the factory secret has {len(secret)} bytes; it must have at least {_MIN_SECRET}"
        )
    if len(chip_id) not in _CHIP_ID_LENGTHS:
        raise ValueError(
            f"chip id has {len(chip_id)} bytes; expected 6 (MAC) or 16 (OPTIONAL_UNIQUE_ID)"
        )
    if not _PREFIX_RE.fullmatch(prefix):
        raise ValueError(f"serial prefix {prefix!r}: use 1 to 4 characters of A-Z and 0-9")
    if digits < MIN_DIGITS:
        raise ValueError(
            f"a serial needs at least {MIN_DIGITS} body symbols (two groups), not {digits}: "
            "with one group a moved hyphen between prefix and body makes another valid serial"
        )
    length = _serial_length(prefix, digits)
    if length > SERIAL_MAX:
        raise ValueError(
            f"prefix {prefix!r} with {digits} body symbols makes a {length}-character serial; "
            f"BLOCK_USR_DATA holds at most {SERIAL_MAX} "
            "(10 symbols allow a 2-character prefix, 9 allow 3, 8 allow 4)"
        )
    digest = hmac.new(secret, _HMAC_LABEL + chip_id, hashlib.sha256).digest()
    value = int.from_bytes(digest, "big")
    top = len(digest) * 8
    body = "".join(_CROCKFORD[(value >> (top - 5 * (i + 1))) & 0x1F] for i in range(digits))
    groups = [body[i : i + 5] for i in range(0, digits, 5)]
    return f"{prefix}-{'-'.join(groups)}-{_check_char(prefix + body)}"


def check_serial(text: str) -> bool:
    """True if `text` is a well-formed serial whose check character is right (exact form:
    upper case, hyphens in place, at least two body groups; see normalise_serial for
    scanned or typed labels). Every single-character error makes it False, and so does
    every transposition of neighbouring characters except MOD 37,36's blind spot: 1 in 630
    transpositions of two symbols (those where the running sums at the two places are 18
    and 19) keep the check character right. No one-character ISO 7064 code over the 36
    alphanumerics catches them all."""
    if len(text) > SERIAL_MAX:
        return False
    m = _SERIAL_RE.fullmatch(text)
    if m is None:
        return False
    payload = m["prefix"] + m["body"].replace("-", "")
    return _check_char(payload) == m["check"]


def normalise_serial(text: str) -> str:
    """A scanned or typed serial in its exact form: upper case, whitespace removed, and in
    the body O read as 0, I and L as 1 (Crockford's reading rules). It does not check the
    result; pass it to check_serial."""
    compact = "".join(text.split()).upper()
    parts = compact.split("-")
    if len(parts) < 3:
        return compact
    body = [part.translate(_READING) for part in parts[1:-1]]
    return "-".join([parts[0], *body, parts[-1]])


def _normalise_mac(mac: str) -> str:
    text = mac.strip().lower()
    if not _MAC_RE.fullmatch(text):
        raise ValueError(
            f"MAC {mac!r} is not six hex bytes (write aa:bb:cc:dd:ee:ff, aa-bb-..., or aabbcc...)"
        )
    digits = text.replace(":", "").replace("-", "")
    return ":".join(digits[i : i + 2] for i in range(0, 12, 2))


def label_payload(serial: str, mac: str) -> str:
    """The QR code / label text: `S/N:<serial>;MAC:<aa:bb:cc:dd:ee:ff>`."""
    if not check_serial(serial):
        raise ValueError(f"{serial!r} is not a valid serial (format or check character)")
    return f"S/N:{serial};MAC:{_normalise_mac(mac)}"


@dataclass(frozen=True)
class UsrData:
    """What BLOCK_USR_DATA holds: the unit's serial and the product it was built as."""

    serial: str
    product_id: int


class UsrDataCorrupt(ValueError):
    """A BLOCK_USR_DATA image that is neither blank nor a valid record."""


def encode_usr_data(d: UsrData) -> bytes:
    """The 32-byte BLOCK_USR_DATA image: b"A1", serial (ASCII, NUL-padded to 16), product id
    (u32 LE), CRC-16/CCITT-FALSE of bytes 0-21 (big-endian), then 8 zero bytes."""
    if not d.serial or len(d.serial) > SERIAL_MAX or not _printable_ascii(d.serial):
        raise ValueError(
            f"serial {d.serial!r} cannot be stored: use 1 to {SERIAL_MAX} printable ASCII "
            "characters, no spaces"
        )
    if not 0 <= d.product_id <= 0xFFFF_FFFF:
        raise ValueError(f"product id {d.product_id} does not fit in 32 bits (0 to 4294967295)")
    head = _USR_LAYOUT.pack(USR_DATA_MAGIC, d.serial.encode("ascii"), d.product_id)
    block = head + crc16(head).to_bytes(2, "big")
    return block + bytes(USR_DATA_SIZE - len(block))


def decode_usr_data(block: bytes) -> UsrData | None:
    """The record in a BLOCK_USR_DATA image; None for a blank (all-zero) block.

    Raises UsrDataCorrupt for anything else that does not parse exactly: wrong size, magic,
    CRC, or a serial field that is not ASCII followed by NULs.
    """
    if len(block) != USR_DATA_SIZE:
        raise UsrDataCorrupt(
            f"BLOCK_USR_DATA image has {len(block)} bytes; it must have {USR_DATA_SIZE}"
        )
    if not any(block):
        return None
    magic, raw_serial, product_id = _USR_LAYOUT.unpack_from(block)
    if magic != USR_DATA_MAGIC:
        raise UsrDataCorrupt(
            f"BLOCK_USR_DATA starts with {magic!r}, not {USR_DATA_MAGIC!r}: not an ate record"
        )
    head = block[: _USR_LAYOUT.size]
    stored = int.from_bytes(block[22:24], "big")
    if crc16(head) != stored:
        raise UsrDataCorrupt(
            f"BLOCK_USR_DATA CRC is {stored:04X} but bytes 0-21 give {crc16(head):04X}"
        )
    # Bytes 24-31 are not ours: CUSTOM_MAC sits at 25-30 on the S3, burned in the same
    # (single, Reed-Solomon coded) write when a line assigns one.
    serial = raw_serial.rstrip(b"\0")
    if not serial or b"\0" in serial:
        raise UsrDataCorrupt("BLOCK_USR_DATA serial field is empty or has a NUL inside it")
    text = serial.decode("latin-1")
    if not _printable_ascii(text):
        raise UsrDataCorrupt("BLOCK_USR_DATA serial field is not printable ASCII")
    return UsrData(serial=text, product_id=product_id)


def _printable_ascii(text: str) -> bool:
    return all(" " < ch <= "~" for ch in text)
