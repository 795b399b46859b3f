"""The audit log: a hash chain per station, and every kind of tampering found."""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ate.store import GENESIS_HASH, AuditEntry, Store, StoreError, verify_chain
from ate.store.audit import canonical_encoding, canonical_payload, hash_of, make_entry
from tests.store.conftest import Raw

PAYLOADS: list[tuple[str, dict[str, Any]]] = [
    ("signin", {"operator": "op1"}),
    (
        "run",
        {
            "fixture": "sim-quad",
            "sequence": {"name": "s3-devkit-functional", "version": "1.2.0", "sha256": "5" * 64},
            "profile_sha256": "7" * 64,
            "config_hash": "9" * 64,
        },
    ),
    ("issue", {"serial": "AS3-1", "fingerprint": "sha256:" + "ab" * 32}),
    ("burn", {"chip": "24:0a:c4:00:00:01", "step": "sb.en", "outcome": "done"}),
    ("config", {"changed": ["max_retests"], "max_retests": 2}),
    ("burn", {"chip": "24:0a:c4:00:00:01", "step": "dis_download", "outcome": "done"}),
]


def fill(store: Store, station: str = "st1") -> list[AuditEntry]:
    return [store.audit_append(station, kind, payload) for kind, payload in PAYLOADS]


def test_entries_chain_per_station(store: Store) -> None:
    made = fill(store)
    other = store.audit_append("st2", "signin", {"operator": "op9"})
    assert [e.seq for e in made] == [1, 2, 3, 4, 5, 6]
    assert made[0].prev_hash == GENESIS_HASH == other.prev_hash and other.seq == 1
    assert all(b.prev_hash == a.hash for a, b in itertools.pairwise(made))
    assert store.audit_entries("st1") == made
    assert store.audit_entries() == [*made, other]
    assert verify_chain(store.audit_entries()) == []
    assert verify_chain(store.audit_entries("st1"), expected_head=(6, made[-1].hash)) == []
    # The hash is SHA-256 over the canonical encoding, reproducible outside ate.
    e = made[1]
    text = json.dumps(
        [e.station, e.seq, e.at, e.kind, e.payload, e.prev_hash],
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=True,
    )
    assert hashlib.sha256(text.encode()).hexdigest() == e.hash


def test_payload_is_stored_canonically(store: Store, raw: Raw) -> None:
    store.audit_append("st1", "config", {"b": 2, "a": {"z": 1, "y": [1.5, None, "é"]}})
    assert raw("SELECT payload FROM audit_log") == [
        ('{"a":{"y":[1.5,null,"\\u00e9"],"z":1},"b":2}',)
    ]


def test_edited_payload_is_found(store: Store, raw: Raw) -> None:
    fill(store)
    raw(
        "UPDATE audit_log SET payload = ? WHERE seq = 3",
        '{"fingerprint":"sha256:00","serial":"AS3-1"}',
    )
    problems = verify_chain(store.audit_entries("st1"))
    assert problems == [
        "audit log of station 'st1', entry seq 3: its hash does not match its contents "
        "(the entry was edited)"
    ]


def test_edited_hash_is_found(store: Store, raw: Raw) -> None:
    fill(store)
    raw("UPDATE audit_log SET hash = ? WHERE seq = 4", "f" * 64)
    problems = verify_chain(store.audit_entries("st1"))
    assert len(problems) == 2
    assert "seq 4: its hash does not match its contents" in problems[0]
    assert "seq 5: prev_hash does not match the hash of seq 4" in problems[1]


def test_rehashed_edit_still_breaks_the_chain(store: Store, raw: Raw) -> None:
    made = fill(store)
    forged = make_entry("st1", 2, made[1].at, "run", {"fixture": "evil"}, made[1].prev_hash)
    raw(
        "UPDATE audit_log SET payload = ?, hash = ? WHERE seq = 2",
        canonical_payload(forged.payload),
        forged.hash,
    )
    problems = verify_chain(store.audit_entries("st1"))
    assert problems == [
        "audit log of station 'st1', entry seq 3: prev_hash does not match the hash of seq 2 "
        "(an entry before it was removed, reordered or edited)"
    ]


def test_deleted_middle_entry_is_found(store: Store, raw: Raw) -> None:
    fill(store)
    raw("DELETE FROM audit_log WHERE seq = 3")
    problems = verify_chain(store.audit_entries("st1"))
    assert len(problems) == 2
    assert "entry seq 4: seq 3 missing (entries were removed)" in problems[0]
    assert "entry seq 4: prev_hash does not match the hash of seq 2" in problems[1]


def test_swapped_entries_are_found(store: Store, raw: Raw) -> None:
    fill(store)
    raw("UPDATE audit_log SET seq = 99 WHERE seq = 2")
    raw("UPDATE audit_log SET seq = 2 WHERE seq = 3")
    raw("UPDATE audit_log SET seq = 3 WHERE seq = 99")
    problems = verify_chain(store.audit_entries("st1"))
    assert any("entry seq 2: its hash does not match" in p for p in problems)
    assert any("entry seq 3: its hash does not match" in p for p in problems)
    # Read in insertion order instead of seq order: out of order.
    entries = store.audit_entries("st1")
    entries[1], entries[2] = entries[2], entries[1]
    assert any("comes after seq 3: entries are out of order" in p for p in verify_chain(entries))


def test_truncated_tail_needs_the_remembered_head(store: Store, raw: Raw) -> None:
    made = fill(store)
    head = (made[-1].seq, made[-1].hash)
    raw("DELETE FROM audit_log WHERE seq >= 5")
    entries = store.audit_entries("st1")
    assert verify_chain(entries) == []  # a clean prefix looks intact on its own...
    assert verify_chain(entries, expected_head=head) == [  # ...but not against the head
        "audit log of station 'st1' ends at seq 4 but the station's last entry was seq 6: "
        "entries were removed from the end"
    ]
    raw("DELETE FROM audit_log")
    assert "ends at seq 0" in verify_chain(store.audit_entries("st1"), expected_head=head)[0]


def test_rewritten_head_is_found(store: Store, raw: Raw) -> None:
    made = fill(store)
    raw("DELETE FROM audit_log WHERE seq = 6")
    store.audit_append("st1", "burn", {"chip": "24:0a:c4:00:00:01", "step": "x", "outcome": "done"})
    entries = store.audit_entries("st1")
    assert verify_chain(entries) == []
    problems = verify_chain(entries, expected_head=(6, made[-1].hash))
    assert problems == [
        "audit log of station 'st1', entry seq 6: its hash differs from the one the station "
        "remembers (the chain was rewritten)"
    ]


def test_head_check_is_for_one_station(store: Store) -> None:
    fill(store)
    store.audit_append("st2", "signin", {"operator": "op2"})
    with pytest.raises(ValueError, match="one station"):
        verify_chain(store.audit_entries(), expected_head=(1, "0" * 64))


@pytest.mark.parametrize(
    ("station", "kind", "payload", "message"),
    [
        ("st1", "run", {"t": float("nan")}, r"not plain JSON data"),
        ("st1", "run", {"t": object()}, r"not plain JSON data"),
        ("st1", "run", ["a"], r"is a JSON object"),
        ("st1", "Run Started", {}, r"not a lowercase word"),
        ("", "run", {}, r"needs a station name"),
    ],
)
def test_bad_appends_are_refused(
    store: Store, station: str, kind: str, payload: Any, message: str
) -> None:
    with pytest.raises(StoreError, match=message):
        store.audit_append(station, kind, payload)
    assert store.audit_entries() == []


# -- the pure chain, with hypothesis -------------------------------------------------------------

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=8,
)
payloads = st.dictionaries(st.text(max_size=6), json_values, max_size=4)
kinds = st.sampled_from(["run", "signin", "issue", "burn", "config"])


def chain_of(station: str, items: list[tuple[str, dict[str, Any]]]) -> list[AuditEntry]:
    out: list[AuditEntry] = []
    for i, (kind, payload) in enumerate(items, start=1):
        prev = out[-1].hash if out else GENESIS_HASH
        out.append(
            make_entry(station, i, f"2026-11-21T07:15:{i % 60:02d}.000+00:00", kind, payload, prev)
        )
    return out


@given(st.text(min_size=1, max_size=8), kinds, payloads)
def test_canonical_encoding_survives_the_database_round_trip(
    station: str, kind: str, payload: dict[str, Any]
) -> None:
    entry = make_entry(station, 1, "2026-11-21T07:15:00.000+00:00", kind, payload, GENESIS_HASH)
    stored = canonical_payload(entry.payload)
    assert stored.isascii()
    back = dataclasses.replace(entry, payload=json.loads(stored))
    assert hash_of(back) == entry.hash
    assert canonical_encoding(station, 1, entry.at, kind, json.loads(stored), GENESIS_HASH) == (
        canonical_encoding(station, 1, entry.at, kind, entry.payload, GENESIS_HASH)
    )


@given(st.lists(st.tuples(kinds, payloads), min_size=1, max_size=6))
def test_an_honest_chain_verifies(items: list[tuple[str, dict[str, Any]]]) -> None:
    chain = chain_of("st1", items)
    assert verify_chain(chain) == []
    assert verify_chain(chain, expected_head=(chain[-1].seq, chain[-1].hash)) == []


@settings(max_examples=200)
@given(
    st.lists(st.tuples(kinds, payloads), min_size=2, max_size=6),
    st.data(),
)
def test_any_single_tampering_is_found(
    items: list[tuple[str, dict[str, Any]]], data: st.DataObject
) -> None:
    chain = chain_of("st1", items)
    head = (chain[-1].seq, chain[-1].hash)
    i = data.draw(st.integers(0, len(chain) - 1), label="entry")
    how = data.draw(
        st.sampled_from(
            [
                "station",
                "seq",
                "at",
                "kind",
                "payload",
                "prev_hash",
                "hash",
                "delete",
                "swap",
                "truncate",
            ]
        ),
        label="how",
    )
    tampered = list(chain)
    e = chain[i]
    if how == "delete":
        del tampered[i]
    elif how == "swap":
        j = (i + 1) % len(chain)
        tampered[i], tampered[j] = tampered[j], tampered[i]
    elif how == "truncate":
        tampered = tampered[:i]
    elif how == "payload":
        tampered[i] = dataclasses.replace(e, payload={**e.payload, "tampered": True})
    elif how == "seq":
        tampered[i] = dataclasses.replace(e, seq=e.seq + data.draw(st.integers(1, 5)))
    elif how in ("station", "at", "kind"):
        tampered[i] = dataclasses.replace(e, **{how: getattr(e, how) + "x"})
    else:  # prev_hash, hash: another valid-looking digest
        tampered[i] = dataclasses.replace(e, **{how: hashlib.sha256(b"x").hexdigest()})
    if how == "station":
        # Moved to another station: both chains are checked on their own.
        assert verify_chain(tampered) != []
        return
    assert verify_chain(tampered, expected_head=head) != []
