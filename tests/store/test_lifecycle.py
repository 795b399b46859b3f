"""Units after the factory in the line database (both backends): moves by the one table,
refusals that change nothing, every move in the audit chain, revoked certificates listed,
and migration 0006 keeping every unit and its references."""

from __future__ import annotations

import itertools
import sqlite3

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ate.model.prov_state import (
    FACTORY,
    FINAL,
    LIFECYCLE_EVENTS,
    STATES,
    IllegalTransition,
    ProvState,
    advance,
    apply,
)
from ate.store import (
    CertificateRow,
    MoveRefused,
    Store,
    StoreError,
    open_store,
    verify_chain,
)
from ate.store.queries import known_version, migrations
from tests.store.conftest import Raw, raw_sql
from tests.store.records import mac_of, make_record, provisioning

A, B = mac_of(1), mac_of(2)


def locked_unit(store: Store, n: int, serial: str) -> str:
    fp = f"sha256:{n:064x}"
    store.ingest(make_record(n, mac=mac_of(n), prov=provisioning(serial, fp, state="locked")))
    return fp


def test_the_schema_takes_exactly_the_models_states(store: Store, raw: Raw) -> None:
    store.advance(A, "tested")
    for state in STATES:
        raw("UPDATE units SET prov_state = ? WHERE chip_id = ?", state, A)
    with pytest.raises(Exception, match=r"(?i)check"):
        raw("UPDATE units SET prov_state = 'sold' WHERE chip_id = ?", A)


def test_ship_rma_ship_scrap_each_audited(store: Store) -> None:
    fp = locked_unit(store, 1, "S-1")
    moves = [
        store.move_unit("S-1", "ship", station="st1", user="erik"),
        store.move_unit(A.upper(), "rma", station="st1", user="erik", reason="no wifi"),
        store.move_unit("s-1", "ship", station="st1", user="anna", reason="reflowed"),
        store.move_unit("S-1", "rma", station="st1", user="erik"),
        store.move_unit("S-1", "scrap", station="st1", user="erik", reason="cracked"),
    ]
    assert [(m.before, m.after) for m in moves] == [
        ("locked", "shipped"),
        ("shipped", "rma"),
        ("rma", "shipped"),
        ("shipped", "rma"),
        ("rma", "scrapped"),
    ]
    h = store.unit_history(A)
    assert h is not None and h.prov_state == "scrapped"
    assert [(m.kind, m.payload["to"]) for m in h.moves] == [
        ("unit.ship", "shipped"),
        ("unit.rma", "rma"),
        ("unit.ship", "shipped"),
        ("unit.rma", "rma"),
        ("unit.scrap", "scrapped"),
    ]
    assert store.unit_history(B) is None
    entries = store.audit_entries("st1")
    assert verify_chain(entries) == []
    assert [e.kind for e in entries] == [
        "unit.ship",
        "unit.rma",
        "unit.ship",
        "unit.rma",
        "unit.scrap",
    ]
    assert [e.seq for e in entries] == [m.audit_seq for m in moves]
    last = entries[-1].payload
    assert last["user"] == "erik" and last["reason"] == "cracked"
    assert last["revoked_certificate"] == fp  # a scrapped unit's certificate is not trusted
    [revoked] = store.revoked_certificates()
    assert (revoked.fingerprint, revoked.serial, revoked.state, revoked.reason) == (
        fp,
        "S-1",
        "scrapped",
        "cracked",
    )


def test_a_refused_move_changes_nothing_and_says_what_is_allowed(store: Store) -> None:
    store.ingest(
        make_record(1, mac=A, prov=provisioning("S-1", "sha256:" + "1" * 64, state="written"))
    )
    with pytest.raises(MoveRefused) as err:
        store.move_unit("S-1", "ship", station="st1", user="erik")
    assert err.value.state == "written"
    assert err.value.allowed == ("locking", "locked", "scrap", "revoke")
    assert "in state written cannot take ship; allowed: locking, locked, scrap, revoke" in str(
        err.value
    )
    assert store.unit_history(A).prov_state == "written"  # type: ignore[union-attr]
    assert store.audit_entries("st1") == []
    store.move_unit("S-1", "revoke", station="st1", user="erik", reason="key leaked")
    for verb in ("ship", "rma", "scrap", "revoke"):
        with pytest.raises(MoveRefused, match="revoked is final"):
            store.move_unit("S-1", verb, station="st1", user="erik")
    with pytest.raises(StoreError, match="not a unit move"):
        store.move_unit("S-1", "tested", station="st1", user="erik")
    with pytest.raises(StoreError, match="no unit with serial or MAC S-9"):
        store.move_unit("S-9", "ship", station="st1", user="erik")
    with pytest.raises(StoreError, match="names who made it"):
        store.move_unit("S-1", "ship", station="st1", user=" ")


def test_revoke_lists_the_certificate_and_a_late_record_changes_nothing(store: Store) -> None:
    fp = locked_unit(store, 1, "S-1")
    locked_unit(store, 2, "S-2")
    store.move_unit("S-1", "ship", station="st1", user="erik")
    store.move_unit("S-1", "revoke", station="st1", user="erik", reason="stolen")
    assert [
        (r.fingerprint, r.state, r.reason, r.cert_serial) for r in store.revoked_certificates()
    ] == [(fp, "revoked", "stolen", fp[7:23])]
    # A record of an earlier panel arrives late from a spool: the unit stays revoked.
    late = make_record(7, mac=A, prov=provisioning("S-1", fp, state="locked"))
    assert store.ingest(late)
    assert store.advance(A, "locked") == "revoked"
    assert store.unit_history(A).prov_state == "revoked"  # type: ignore[union-attr]
    ok, reason = store.retest_allowed(A, 99)
    assert not ok and "is revoked" in reason


def test_shipping_a_unit_without_a_certificate_row_revokes_nothing(store: Store) -> None:
    store.advance(B, "tested")
    move = store.move_unit(B, "scrap", station="st1", user="erik", reason="bent pins")
    assert move.after == "scrapped" and store.revoked_certificates() == []
    assert store.audit_entries("st1")[0].payload["revoked_certificate"] is None


def test_migration_6_keeps_units_and_their_references(store_url: str) -> None:
    """A line database at schema 5 with units, runs and certificates is migrated to 6."""
    backend = "sqlite" if store_url.startswith("sqlite:") else "postgresql"
    if backend == "sqlite":
        with sqlite3.connect(store_url.removeprefix("sqlite://")) as db:
            db.execute(
                "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
                "applied_at TEXT NOT NULL, description TEXT NOT NULL)"
            )
        db.close()
    else:
        raw_sql(
            store_url,
            "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, "
            "applied_at TEXT NOT NULL, description TEXT NOT NULL)",
        )
    for mig in migrations(backend):
        if mig.version > 5:
            break
        for statement in mig.statements:
            raw_sql(store_url, statement)
        raw_sql(
            store_url,
            "INSERT INTO schema_migrations VALUES (?, '2026-01-01', ?)",
            (mig.version, mig.description),
        )
    raw_sql(
        store_url,
        "INSERT INTO units (chip_id, serial, prov_state, first_seen, last_seen, runs) "
        "VALUES (?, 'S-1', 'locked', '2026-01-01', '2026-01-01', 0)",
        (A,),
    )
    cert = CertificateRow(
        f"sha256:{1:064x}", A, "S-1", "5f3a01", "CN=ca", "2046", "st1", "op", "2026-01-01"
    )
    raw_sql(
        store_url,
        "INSERT INTO certificates VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        tuple(cert.__dict__.values())[:9],  # the columns before migration 7
    )
    store = open_store(store_url)
    try:
        assert store.schema_version() == known_version()
        assert store.unit_history("S-1").prov_state == "locked"  # type: ignore[union-attr]
        store.move_unit("S-1", "ship", station="st1", user="erik")
        store.move_unit("S-1", "revoke", station="st1", user="erik")
        assert [r.fingerprint for r in store.revoked_certificates()] == [cert.fingerprint]
        if backend == "sqlite":
            assert raw_sql(store_url, "PRAGMA foreign_key_check") == []
        # The references still hold: a certificate for a unit that does not exist is refused.
        with pytest.raises(Exception, match=r"(?i)foreign key"):
            other = ("sha256:" + "2" * 64, B, "S-2", "1", "CN=ca", "2046", "st1", "op", "x", "", "")
            if backend == "sqlite":
                with sqlite3.connect(store_url.removeprefix("sqlite://")) as db:
                    db.execute("PRAGMA foreign_keys = ON")
                    db.execute(f"INSERT INTO certificates VALUES ({', '.join('?' * 11)})", other)
            else:
                raw_sql(
                    store_url, f"INSERT INTO certificates VALUES ({', '.join('?' * 11)})", other
                )
    finally:
        store.close()


_macs = itertools.count(0x1000)
_steps = st.lists(
    st.one_of(
        st.sampled_from([e.value for e in LIFECYCLE_EVENTS]).map(lambda v: ("move", v)),
        st.sampled_from([s.value for s in FACTORY[1:]]).map(lambda v: ("advance", v)),
    ),
    max_size=12,
)


@settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(steps=_steps)
def test_the_store_follows_the_table_for_any_sequence(
    store: Store, steps: list[tuple[str, str]]
) -> None:
    """Factory reports and unit moves in any order: the database's state is always the
    model's, a refused move changes nothing, and a final state stays final."""
    mac = mac_of(next(_macs))
    store.advance(mac, "tested")
    model = ProvState.TESTED
    for kind, what in steps:
        if kind == "advance":
            model = advance(model, ProvState(what))
            assert store.advance(mac, what) == model.value
            continue
        was_final = model in FINAL
        try:
            expected = apply(model, next(e for e in LIFECYCLE_EVENTS if e.value == what))
        except IllegalTransition:
            with pytest.raises(MoveRefused):
                store.move_unit(mac, what, station="hyp", user="h")
        else:
            assert not was_final
            move = store.move_unit(mac, what, station="hyp", user="h")
            assert (move.before, move.after) == (model.value, expected.value)
            model = expected
        h = store.unit_history(mac)
        assert h is not None and h.prov_state == model.value
