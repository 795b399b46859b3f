"""The audit log's hash chain: canonical encoding, entry hashes and `verify_chain`.

Pure functions, no database. An entry is (station, seq, at, kind, payload, prev_hash);
its hash is SHA-256 over the canonical encoding of those six fields: a JSON array with
sorted object keys, no whitespace, ASCII only, no NaN. seq counts 1, 2, 3... per station;
the first entry's prev_hash is 64 zeros. The chain alone proves order and completeness,
not authorship (anyone can compute a hash): each entry's hash is also signed by the
station's key (`verify_signatures`). May import stdlib, ate.store.api and
ate.store.signing only.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from ate.store.api import GENESIS_HASH, AuditEntry, StoreError
from ate.store.signing import signature_valid

_KIND = re.compile(r"[a-z][a-z0-9_.-]{0,39}")


def _dumps(value: Any) -> str:
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False
    )


def canonical_payload(payload: Mapping[str, Any]) -> str:
    """The payload as stored: canonical JSON text. StoreError if it is not JSON data."""
    if not isinstance(payload, Mapping):
        raise StoreError(
            f"an audit payload is a JSON object (a dict), not {type(payload).__name__}"
        )
    try:
        return _dumps(dict(payload))
    except (TypeError, ValueError) as exc:
        raise StoreError(
            f"the audit payload is not plain JSON data ({exc}); use str, int, float, bool, "
            "None, lists and dicts with string keys"
        ) from None


def canonical_encoding(
    station: str, seq: int, at: str, kind: str, payload: Mapping[str, Any], prev_hash: str
) -> bytes:
    """The bytes an entry's hash covers."""
    return _dumps([station, seq, at, kind, dict(payload), prev_hash]).encode("ascii")


def entry_hash(
    station: str, seq: int, at: str, kind: str, payload: Mapping[str, Any], prev_hash: str
) -> str:
    return hashlib.sha256(
        canonical_encoding(station, seq, at, kind, payload, prev_hash)
    ).hexdigest()


def hash_of(entry: AuditEntry) -> str:
    """What `entry.hash` should be, from the entry's other fields."""
    return entry_hash(
        entry.station, entry.seq, entry.at, entry.kind, entry.payload, entry.prev_hash
    )


def check_kind(kind: str) -> None:
    if not isinstance(kind, str) or not _KIND.fullmatch(kind):
        raise StoreError(
            f"audit kind {kind!r} is not a lowercase word (a-z, 0-9, _ . -, at most 40); "
            "the station uses run, signin, issue, burn, config"
        )


def make_entry(
    station: str, seq: int, at: str, kind: str, payload: Mapping[str, Any], prev_hash: str
) -> AuditEntry:
    """A new entry with its hash. The payload is first put through its stored form, so
    the entry read back from the database hashes the same."""
    if not station:
        raise StoreError("an audit entry needs a station name")
    check_kind(kind)
    stored: dict[str, Any] = json.loads(canonical_payload(payload))
    digest = entry_hash(station, seq, at, kind, stored, prev_hash)
    return AuditEntry(station, seq, at, kind, stored, prev_hash, digest)


def verify_chain(
    entries: Iterable[AuditEntry], *, expected_head: tuple[int, str] | None = None
) -> list[str]:
    """Problems found in the chains of `entries` (each station's entries in the order
    given, from seq 1); an empty list means intact.

    Detects an edited entry (its hash no longer matches), a removed entry (a seq gap, a
    prev_hash that does not match), reordered entries, and, given `expected_head` (the
    last (seq, hash) the station remembers; entries of one station only), a truncated
    tail or a rewritten head.
    """
    chains: dict[str, list[AuditEntry]] = {}
    for entry in entries:
        chains.setdefault(entry.station, []).append(entry)
    if expected_head is not None and len(chains) > 1:
        raise ValueError("expected_head applies to one station's chain; pass one station's entries")
    problems: list[str] = []
    for station, chain in chains.items():
        problems.extend(_verify_one(station, chain))
    if expected_head is not None:
        station = next(iter(chains), "")
        problems.extend(_check_head(station, chains.get(station, []), expected_head))
    return problems


def _verify_one(station: str, chain: list[AuditEntry]) -> list[str]:
    problems: list[str] = []
    prev_seq, prev_hash = 0, GENESIS_HASH
    for entry in chain:
        where = f"audit log of station {station!r}, entry seq {entry.seq}"
        if entry.hash != hash_of(entry):
            problems.append(f"{where}: its hash does not match its contents (the entry was edited)")
        if entry.seq <= prev_seq:
            problems.append(
                f"{where} comes after seq {prev_seq}: entries are out of order or duplicated"
            )
        elif entry.seq != prev_seq + 1:
            missing = (
                f"seq {prev_seq + 1}"
                if entry.seq == prev_seq + 2
                else f"seq {prev_seq + 1} to {entry.seq - 1}"
            )
            problems.append(f"{where}: {missing} missing (entries were removed)")
        if entry.prev_hash != prev_hash:
            before = f"seq {prev_seq}" if prev_seq else "the start of the chain"
            problems.append(
                f"{where}: prev_hash does not match the hash of {before} "
                "(an entry before it was removed, reordered or edited)"
            )
        prev_seq, prev_hash = entry.seq, entry.hash
    return problems


def _check_head(station: str, chain: list[AuditEntry], head: tuple[int, str]) -> list[str]:
    head_seq, head_hash = head
    last = chain[-1].seq if chain else 0
    if last < head_seq:
        return [
            f"audit log of station {station!r} ends at seq {last} but the station's last entry "
            f"was seq {head_seq}: entries were removed from the end"
        ]
    at_head = [e for e in chain if e.seq == head_seq]
    if at_head and at_head[0].hash != head_hash:
        return [
            f"audit log of station {station!r}, entry seq {head_seq}: its hash differs from the "
            "one the station remembers (the chain was rewritten)"
        ]
    return []


def verify_signatures(
    station: str, chain: Iterable[AuditEntry], public_key: str | None
) -> list[str]:
    """Entries of `station` whose signature does not verify with its key, in order: the
    first names the first entry forged, or edited, without the station's key."""
    problems: list[str] = []
    for entry in chain:
        where = f"audit log of station {station!r}, entry seq {entry.seq}"
        if public_key is None:
            return [
                f"audit log of station {station!r}: no signing key is registered or pinned, "
                "so no entry can be authenticated"
            ]
        if entry.signature is None:
            problems.append(f"{where}: not signed (appended without the station's key)")
        elif not signature_valid(public_key, hash_of(entry), entry.signature):
            problems.append(
                f"{where}: its signature does not verify with the station's key "
                "(forged, or edited without the key)"
            )
    return problems


_HEX64 = re.compile(r"[0-9a-f]{64}")


def row_problem(row: tuple[Any, ...]) -> str | None:
    """Why a raw audit_log row cannot be an entry (wrong types, bad JSON), or None."""
    station, seq, at, kind, payload, prev_hash, digest, signature = row
    if not isinstance(station, str) or not station:
        return f"station is {station!r}, not a name"
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        return f"seq is {seq!r}, not a whole number from 1"
    if not isinstance(at, str) or not isinstance(kind, str):
        return "at or kind is not text"
    if not isinstance(payload, str):
        return f"payload is {type(payload).__name__}, not JSON text"
    try:
        value = json.loads(payload)
    except ValueError as exc:
        return f"payload is not JSON ({exc.args[0] if exc.args else exc})"
    if not isinstance(value, dict):
        return f"payload is JSON {type(value).__name__}, not an object"
    for name, h in (("prev_hash", prev_hash), ("hash", digest)):
        if not isinstance(h, str) or not _HEX64.fullmatch(h):
            return f"{name} is {h!r}, not 64 hex digits"
    if signature is not None and not isinstance(signature, str):
        return f"signature is {type(signature).__name__}, not hex text"
    return None
