"""Line-wide invariants: one serial per unit and per line, one certificate, states only
forward, the retest policy."""

from __future__ import annotations

import pytest

from ate.store import PROV_STATES, CertificateRow, InvariantViolation, Store, StoreError
from tests.store.conftest import Raw
from tests.store.records import mac_of, make_record, provisioning, time_of

A, B = mac_of(1), mac_of(2)


def cert(chip: str, serial: str, fp: str) -> CertificateRow:
    return CertificateRow(
        fingerprint=fp,
        chip_id=chip,
        serial=serial,
        cert_serial="5f3a01",
        issuer="CN=ATE Test Manufacturing CA",
        not_after="2046-11-21T00:00:00+00:00",
        station="st1",
        operator="op1",
        issued_at="2026-11-21T07:15:03.250+00:00",
    )


def fp(n: int) -> str:
    return f"sha256:{n:064x}"


def test_a_serial_belongs_to_one_unit(store: Store, raw: Raw) -> None:
    store.claim_serial(A, "S-1")
    store.claim_serial(A.upper(), "S-1")  # the same claim again (any MAC form) is fine
    with pytest.raises(InvariantViolation) as err:
        store.claim_serial(B, "S-1")
    assert str(err.value) == (f"serial S-1 already belongs to unit {A}; a serial is issued once")
    with pytest.raises(InvariantViolation, match=rf"unit {A} already has serial S-1, not S-2"):
        store.claim_serial(A, "S-2")
    # A refused claim keeps nothing, not even the unit row it would have made.
    assert raw("SELECT chip_id, serial FROM units ORDER BY chip_id") == [(A, "S-1")]


def test_the_database_itself_refuses_a_second_holder(store: Store, raw: Raw) -> None:
    store.claim_serial(A, "S-1")
    store.claim_serial(B, "S-2")
    with pytest.raises(Exception, match=r"(?i)unique"):
        raw("UPDATE units SET serial = 'S-1' WHERE chip_id = ?", B)


def test_claim_needs_a_mac_and_a_serial(store: Store) -> None:
    with pytest.raises(StoreError, match=r"chip id 'unit-7' is not a MAC address"):
        store.claim_serial("unit-7", "S-1")
    with pytest.raises(StoreError, match=r"a serial is a non-empty text"):
        store.claim_serial(A, "")


def test_a_certificate_is_recorded_once(store: Store) -> None:
    store.record_certificate(cert(A, "S-1", fp(1)))
    store.record_certificate(cert(A, "S-1", fp(1)))  # the same row again: a retry, fine
    h = store.unit_history("S-1")
    assert h is not None and h.serial == "S-1" and h.certificate == cert(A, "S-1", fp(1))
    cases = [
        (cert(B, "S-2", fp(1)), f"certificate {fp(1)} is already recorded for unit {A}"),
        (cert(A, "S-1", fp(2)), f"unit {A} already has certificate {fp(1)} (serial S-1)"),
        (cert(B, "S-1", fp(3)), f"serial S-1 already belongs to unit {A}"),
        (cert(A, "S-9", fp(4)), f"unit {A} already has serial S-1, not S-9"),
    ]
    for row, message in cases:
        with pytest.raises(InvariantViolation) as err:
            store.record_certificate(row)
        assert message in str(err.value)
    assert store.unit_history(B) is None


def test_a_serial_on_another_units_certificate(store: Store, raw: Raw) -> None:
    store.record_certificate(cert(A, "S-1", fp(1)))
    raw("UPDATE units SET serial = NULL WHERE chip_id = ?", A)  # a hand-edited unit row
    with pytest.raises(InvariantViolation, match=r"serial S-1 is already on the certificate"):
        store.record_certificate(cert(B, "S-1", fp(2)))


def test_ingest_refuses_a_record_whose_identity_is_taken(store: Store) -> None:
    store.claim_serial(A, "S-1")
    rec = make_record(2, prov=provisioning("S-1", fp(7)))
    with pytest.raises(InvariantViolation) as err:
        store.ingest(rec)
    assert f"record {rec['record_id']}: serial S-1 already belongs to unit {A}" in str(err.value)
    assert not store.has_record(rec["record_id"])
    assert store.unit_history(B) is None  # nothing of the record was kept
    store.record_certificate(cert(A, "S-1", fp(8)))
    rec = make_record(3, mac=A, prov=provisioning("S-1", fp(9)))
    with pytest.raises(InvariantViolation, match=rf"unit {A} already has certificate {fp(8)}"):
        store.ingest(rec)
    assert not store.has_record(rec["record_id"])


def test_ingest_of_the_provisioned_unit_matches_what_the_station_recorded(store: Store) -> None:
    # The station claims and records during provisioning; the record arrives later.
    store.claim_serial(A, "S-1")
    store.record_certificate(cert(A, "S-1", fp(1)))
    store.advance(A, "locked")
    assert store.ingest(make_record(1, prov=provisioning("S-1", fp(1), state="written")))
    h = store.unit_history(A)
    assert h is not None and h.prov_state == "locked" and len(h.runs) == 1


def test_state_moves_forward_only(store: Store) -> None:
    assert store.advance(A, "certified") == "certified"
    assert store.advance(A, "tested") == "certified"  # a state it passed changes nothing
    assert store.advance(A, "certified") == "certified"
    with pytest.raises(InvariantViolation, match=r"is already certified; .* never moves back"):
        store.advance(A, "tested", strict=True)
    assert store.advance(A, "serial", strict=True) == "serial"
    with pytest.raises(
        StoreError, match=r"unknown provisioning state 'done'; the states are new, "
    ):
        store.advance(A, "done")
    for state in PROV_STATES:
        assert store.advance(B, state) == state


def test_ingest_never_moves_state_back(store: Store) -> None:
    store.ingest(
        make_record(1, prov=provisioning("S-1", fp(1), state="written"), started_at=time_of(100))
    )
    # An older record of the same unit arrives late: it says "certified".
    old = make_record(
        2, mac=A, prov=provisioning("S-1", fp(1), state="certified"), started_at=time_of(50)
    )
    assert store.ingest(old)
    h = store.unit_history(A)
    assert h is not None and h.prov_state == "written"
    assert [r.attempt for r in h.runs] == [1, 2]
    untouched = make_record(3, mac=A, started_at=time_of(200))
    untouched["provisioning"] = {
        "serial": "S-1",
        "state": "untouched",
        "certificate": None,
        "acts": [],
    }
    assert store.ingest(untouched)
    assert store.unit_history(A).prov_state == "written"  # type: ignore[union-attr]


def test_the_database_refuses_an_unknown_state(store: Store, raw: Raw) -> None:
    store.advance(A, "tested")
    with pytest.raises(Exception, match=r"(?i)check"):
        raw("UPDATE units SET prov_state = 'bogus' WHERE chip_id = ?", A)


def test_retest_policy(store: Store) -> None:
    assert store.retest_allowed(A, 2) == (True, f"unit {A} has not been tested on this line")
    store.ingest(make_record(1, verdict="FAIL", started_at=time_of(10)))
    assert store.retest_allowed(A, 2) == (True, f"retest 1 of at most 2 for unit {A}")
    ok, reason = store.retest_allowed(A, 0)
    assert not ok and reason == (
        f"unit {A} has been tested 1 times (0 retests); the line allows at most 0 retests"
    )
    store.ingest(make_record(2, mac=A, verdict="ERROR", started_at=time_of(20)))
    assert store.retest_allowed(A, 2)[0] is True
    store.ingest(make_record(3, mac=A, verdict="FAIL", started_at=time_of(30)))
    ok, reason = store.retest_allowed(A, 2)
    assert not ok and "has been tested 3 times (2 retests)" in reason
    assert store.retest_allowed(A, 3)[0] is True


def test_a_locked_unit_is_never_retested(store: Store) -> None:
    store.ingest(make_record(1, prov=provisioning("S-1", fp(1), state="locked")))
    ok, reason = store.retest_allowed(A, 99)
    assert not ok
    assert (
        reason
        == f"unit {A} is locked (serial S-1); a locked unit is never re-tested into a new identity"
    )
    store.advance(B, "written")
    assert store.retest_allowed(B, 1)[0] is True


@pytest.mark.parametrize("bad", [-1, True, 1.5])
def test_retest_policy_needs_a_count(store: Store, bad: object) -> None:
    with pytest.raises(StoreError, match=r"max_retests is a count of 0 or more"):
        store.retest_allowed(A, bad)  # type: ignore[arg-type]
