"""Typed reply fields: strict parsers from the text a device or instrument sent.

Each takes the raw text of one `key=value` field and returns a value that can be
judged, or raises ValueError. Strict on purpose: Python's own int() and float() accept
'nan', 'inf', '1e999' (an infinity), '1_0', '+5' and digits of other scripts, each a
way for a broken or hostile device to slip a reading past a limit. Pure functions, no
imports from ate.
"""

from __future__ import annotations

import math
import re

MAX_FIELD = 256  # longer than any honest reading; bounds the work per field

_INT = re.compile(r"-?[0-9]{1,20}")
_INT_OR_HEX = re.compile(r"-?[0-9]{1,20}|0x[0-9a-fA-F]{1,16}")
_FLOAT = re.compile(r"-?(?:[0-9]{1,40}(?:\.[0-9]{0,40})?|\.[0-9]{1,40})(?:[eE][-+]?[0-9]{1,3})?")
_HEX_BYTES = re.compile(r"(?:[0-9a-fA-F]{2})*")
MAX_BLOB = 4096  # a CSR, a public key, a signature
_MAC = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2}){5}")


def _bounded(text: str) -> str:
    if len(text) > MAX_FIELD:
        raise ValueError(f"field of {len(text)} characters")
    return text


def as_int(text: str) -> int:
    """A decimal integer, or 0x-prefixed hex (register values, ids)."""
    if not _INT_OR_HEX.fullmatch(_bounded(text)):
        raise ValueError(f"not an integer: {text[:40]!r}")
    return int(text, 0) if text.startswith("0x") else int(text)


def as_decimal(text: str) -> int:
    """A decimal integer only."""
    if not _INT.fullmatch(_bounded(text)):
        raise ValueError(f"not a decimal integer: {text[:40]!r}")
    return int(text)


def as_count(text: str) -> int:
    """A non-negative decimal integer (millivolts from an ADC, milliseconds of uptime)."""
    value = as_decimal(text)
    if value < 0:
        raise ValueError(f"a count cannot be negative: {text[:40]!r}")
    return value


def as_level(text: str) -> int:
    """A logic level or a yes/no flag: exactly 0 or 1."""
    if text not in ("0", "1"):
        raise ValueError(f"not a level (0 or 1): {text[:40]!r}")
    return int(text)


def as_finite(text: str) -> float:
    """A finite decimal number: never NaN, never an infinity, not even by overflow."""
    if not _FLOAT.fullmatch(_bounded(text)):
        raise ValueError(f"not a finite decimal number: {text[:40]!r}")
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"not a finite number: {text[:40]!r}")
    return value


def as_hex_bytes(text: str) -> bytes:
    """Bytes of a bus transfer as an even number of hex digits (at most 128 bytes)."""
    if not _HEX_BYTES.fullmatch(_bounded(text)):
        raise ValueError(f"not hex bytes: {text[:40]!r}")
    return bytes.fromhex(text)


def as_blob(text: str) -> bytes:
    """Hex of a key, CSR or signature: at most MAX_BLOB bytes."""
    if len(text) > 2 * MAX_BLOB or not _HEX_BYTES.fullmatch(text):
        raise ValueError(f"not hex of at most {MAX_BLOB} bytes: {text[:40]!r}")
    return bytes.fromhex(text)


def as_mac(text: str) -> str:
    """A MAC address, six lower-case hex octets separated by colons."""
    mac = _bounded(text).lower()
    if not _MAC.fullmatch(mac):
        raise ValueError(f"not a MAC address: {text[:40]!r}")
    return mac


def as_text(text: str) -> str:
    """Free text of bounded length (firmware versions, chip names)."""
    return _bounded(text)
