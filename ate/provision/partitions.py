"""Per-unit partition images built with Espressif's own tools: esp_secure_cert (TLV, with
esp-secure-cert-tool) and NVS (with esp-idf-nvs-partition-gen), and small readers for both.

Imports the stdlib, cryptography, esp_secure_cert and esp_idf_nvs_partition_gen only.
"""

from __future__ import annotations

import contextlib
import io
import re
import struct
import zlib
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import Encoding
from esp_idf_nvs_partition_gen import nvs_partition_gen as nvs_gen
from esp_secure_cert import tlv_parser
from esp_secure_cert.tlv_format import tlv_type_t
from esp_secure_cert.tlv_format_construct import PARTITION_SIZE as TLV_CAPACITY
from esp_secure_cert.tlv_format_construct import TlvPartitionBuilder

SECTOR = 0x1000
SECURE_CERT_SIZE = 0x2000
NVS_MIN_SIZE = 0x3000  # ESP-IDF: a read/write NVS partition needs at least 3 pages
NVS_KEY_MAX = 15
NVS_STRING_MAX = 4000  # Page.PAGE_PARAMS["max_blob_size"][VERSION2]: bytes incl. the NUL
_TLV_MAGIC = 0xBA5EBA11
_CERT_TLVS = {
    tlv_type_t.ESP_SECURE_CERT_CA_CERT_TLV.value: "ca_cert",
    tlv_type_t.ESP_SECURE_CERT_DEV_CERT_TLV.value: "dev_cert",
}
# nvs_partition_gen.write_entry adds hidden Wi-Fi entries for these keys.
_NVS_TOOL_RESERVED = frozenset({"ap.ssid", "ap.passwd", "ap.authmode", "sta.ssid", "sta.pswd"})
_NVS_KEY_RE = re.compile(r"[\x21-\x7e]{1,15}")


# ---- esp_secure_cert ------------------------------------------------------------------


def _load_certs(pem: bytes, what: str) -> list[x509.Certificate]:
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError:
        raise ValueError(f"{what} is not PEM certificate text") from None
    if not certs:
        raise ValueError(f"{what} holds no certificate")
    return certs


def build_secure_cert(
    ca_chain_pem: bytes, device_cert_pem: bytes, *, size: int = SECURE_CERT_SIZE
) -> bytes:
    """The esp_secure_cert partition image: a CA_CERT TLV with the chain (issuing CA first,
    PEM, as esp_secure_cert_mgr hands it to TLS) and a DEV_CERT TLV, built by the tool's
    TlvPartitionBuilder and padded with 0xFF to `size`. No private-key TLV: the device keeps
    its key in its own dev_key partition. Deterministic (same input, same bytes), so a
    re-run can compare the MD5 of the flash with what it would write.

    The certificates are re-encoded as canonical PEM; the device certificate must be signed
    by the chain's first certificate. The builder prints one line per TLV; that output is
    discarded (stdout is redirected for the duration of the call).
    """
    if size % SECTOR or size < SECTOR:
        raise ValueError(f"esp_secure_cert size {size:#x} must be a positive multiple of 0x1000")
    chain = _load_certs(ca_chain_pem, "the CA chain")
    devices = _load_certs(device_cert_pem, "the device certificate")
    if len(devices) != 1:
        raise ValueError(f"the device certificate PEM holds {len(devices)} certificates, not 1")
    device = devices[0]
    try:
        device.verify_directly_issued_by(chain[0])
    except (ValueError, TypeError, InvalidSignature):
        raise ValueError(
            "the device certificate was not issued by the first certificate of the CA chain; "
            "put the issuing CA first"
        ) from None
    chain_pem = b"".join(c.public_bytes(Encoding.PEM) for c in chain)
    builder = TlvPartitionBuilder()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            # PEM TLVs carry a terminating NUL, as TlvPartitionBuilder.add_certificate
            # writes them (add_certificate itself reads one certificate from a file).
            builder.add_tlv_entry(tlv_type_t.ESP_SECURE_CERT_CA_CERT_TLV, 0, chain_pem + b"\0", 0)
            builder.add_tlv_entry(
                tlv_type_t.ESP_SECURE_CERT_DEV_CERT_TLV,
                0,
                device.public_bytes(Encoding.PEM) + b"\0",
                0,
            )
    except ValueError:
        raise ValueError(
            f"the certificates do not fit in esp_secure_cert (the tool's limit is "
            f"{TLV_CAPACITY:#x} bytes)"
        ) from None
    used = bytes(builder.partition_data[: builder.current_offset])
    if len(used) > size:
        raise ValueError(
            f"the certificates take {len(used):#x} bytes; esp_secure_cert size {size:#x} is "
            "too small"
        )
    return used + b"\xff" * (size - len(used))


def read_secure_cert(image: bytes) -> dict[str, bytes]:
    """The certificates in an esp_secure_cert image, read with the tool's TLV parser:
    {"ca_cert": pem, "dev_cert": pem} for those present ({} for a blank partition).
    Raises ValueError for a TLV whose CRC is wrong or that runs past the image."""
    found: dict[str, bytes] = {}
    offset = 0
    while offset + 12 <= len(image):
        header, header_size = tlv_parser.parse_tlv_header(image, offset)
        if header["magic"] != _TLV_MAGIC:
            break  # erased flash (0xFF...) or the end marker: no more TLVs
        total = tlv_parser.get_tlv_total_length(header)
        if offset + total > len(image):
            raise ValueError(f"esp_secure_cert TLV at {offset:#x} runs past the image's end")
        footer, _ = tlv_parser.parse_tlv_footer(image, offset + total - 4)
        valid, _ = tlv_parser.verify_tlv_integrity(header, image[offset:], footer)
        if not valid:
            raise ValueError(f"esp_secure_cert TLV at {offset:#x} has a wrong CRC: corrupt")
        name = _CERT_TLVS.get(header["type"])
        if name is not None and header["subtype"] == 0:
            start = offset + header_size
            found[name] = image[start : start + header["length"]].rstrip(b"\0")
        offset += total
    return found


# ---- NVS ------------------------------------------------------------------------------


@dataclass(frozen=True)
class NvsEntry:
    """One string entry of an NVS namespace; key at most 15 characters."""

    key: str
    value: str


def _check_nvs_key(key: str, what: str) -> None:
    if not _NVS_KEY_RE.fullmatch(key):
        raise ValueError(
            f"NVS {what} {key!r}: use 1 to {NVS_KEY_MAX} printable ASCII characters, no spaces"
        )


def build_nvs(namespace: str, entries: Sequence[NvsEntry], *, size: int) -> bytes:
    """An unencrypted NVS partition image (format version 2) holding `entries` as strings in
    `namespace`, built with esp_idf_nvs_partition_gen (nvs_open / write_entry / nvs_close).
    Deterministic. `size` is the partition size: a multiple of 0x1000, at least 0x3000."""
    if size % SECTOR or size < NVS_MIN_SIZE:
        raise ValueError(
            f"NVS size {size:#x} must be a multiple of 0x1000 and at least {NVS_MIN_SIZE:#x}"
        )
    _check_nvs_key(namespace, "namespace")
    seen: set[str] = set()
    for entry in entries:
        _check_nvs_key(entry.key, "key")
        if entry.key in _NVS_TOOL_RESERVED:
            raise ValueError(
                f"NVS key {entry.key!r} is reserved: the NVS tool adds Wi-Fi entries for it"
            )
        if entry.key in seen:
            raise ValueError(f"NVS key {entry.key!r} appears twice; each key may appear once")
        seen.add(entry.key)
        if "\0" in entry.value:
            raise ValueError(f"NVS value of {entry.key!r} has a NUL character; strings cannot")
        if len(entry.value.encode("utf-8")) + 1 > NVS_STRING_MAX:
            raise ValueError(
                f"NVS value of {entry.key!r} is too long: at most {NVS_STRING_MAX - 1} bytes"
            )
    out = io.BytesIO()
    try:
        # The tool keeps the last page back for NVS's own use: it is told size - 0x1000.
        nvs = nvs_gen.nvs_open(out, size - SECTOR, version=nvs_gen.Page.VERSION2)
        nvs_gen.write_entry(nvs, namespace, "namespace", "", "")
        for entry in entries:
            nvs_gen.write_entry(nvs, entry.key, "data", "string", entry.value)
        nvs_gen.nvs_close(nvs)
    except nvs_gen.InsufficientSizeError:
        raise ValueError(
            f"{len(entries)} NVS entries do not fit in a {size:#x}-byte partition"
        ) from None
    except nvs_gen.InputError as exc:
        raise ValueError(f"the NVS tool refused an entry: {str(exc).strip()}") from None
    image = out.getvalue()
    if len(image) != size:  # the tool's own page accounting; guard against a change in it
        raise ValueError(f"the NVS tool produced {len(image):#x} bytes, not {size:#x}")
    return image


# NVS page layout (ESP-IDF nvs_flash docs, "NVS internals"): a 32-byte header (state u32,
# sequence u32, version u8, ..., CRC32 of bytes 4-27), a 32-byte entry-state bitmap (2 bits
# per entry: 0b11 empty, 0b10 written, 0b00 erased), then 126 entries of 32 bytes.
_PAGE = 0x1000
_ENTRIES = 126
_FIRST_ENTRY = 64
_ACTIVE, _FULL = 0xFFFFFFFE, 0xFFFFFFFC
_TYPE_U8, _TYPE_SZ = 0x01, 0x21
_WRITTEN = 0b10


def _crc(data: bytes) -> int:
    return zlib.crc32(data, 0xFFFFFFFF) & 0xFFFFFFFF  # as ESP-IDF's crc32_le(0xffffffff, ..)


def read_nvs_strings(image: bytes, namespace: str) -> dict[str, str]:
    """The string entries of `namespace` in an NVS image ({} if the namespace is absent).

    A reader only, for tests and for the station's read-back comparison: it reads pages that
    are active or full, skips erased entries and entry types other than strings, and raises
    ValueError for a page or entry whose CRC is wrong. It never writes NVS.
    """
    if len(image) % _PAGE:
        raise ValueError(f"an NVS image is whole 4 KiB pages; this one has {len(image):#x} bytes")
    pages = [image[i : i + _PAGE] for i in range(0, len(image), _PAGE)]
    live: list[tuple[int, bytes]] = []
    for number, page in enumerate(pages):
        state, sequence = struct.unpack_from("<II", page)
        if state not in (_ACTIVE, _FULL):
            continue
        if _crc(page[4:28]) != struct.unpack_from("<I", page, 28)[0]:
            raise ValueError(f"NVS page {number} has a wrong header CRC: corrupt")
        live.append((sequence, page))
    namespaces: dict[str, int] = {}
    strings: list[tuple[int, str, str]] = []  # (namespace index, key, value) in write order
    for _, page in sorted(live, key=lambda item: item[0]):
        bitmap = page[32:64]
        index = 0
        while index < _ENTRIES:
            state = (bitmap[index // 4] >> (2 * (index % 4))) & 0b11
            if state != _WRITTEN:
                index += 1
                continue
            entry = page[_FIRST_ENTRY + 32 * index : _FIRST_ENTRY + 32 * (index + 1)]
            ns, kind, span = entry[0], entry[1], entry[2]
            if _crc(entry[0:4] + entry[8:32]) != struct.unpack_from("<I", entry, 4)[0]:
                raise ValueError(f"NVS entry {index} has a wrong CRC: corrupt")
            span = max(span, 1)
            key = entry[8:24].split(b"\0", 1)[0].decode("ascii", "replace")
            if ns == 0 and kind == _TYPE_U8:
                namespaces[key] = entry[24]
            elif kind == _TYPE_SZ:
                length, _, data_crc = struct.unpack_from("<HHI", entry, 24)
                start = _FIRST_ENTRY + 32 * (index + 1)
                data = page[start : start + length]
                if len(data) != length or _crc(data) != data_crc:
                    raise ValueError(f"NVS string {key!r} has a wrong data CRC: corrupt")
                strings.append((ns, key, data.rstrip(b"\0").decode("utf-8", "replace")))
            index += span
    wanted = namespaces.get(namespace)
    if wanted is None:
        return {}
    return {key: value for ns, key, value in strings if ns == wanted}
