"""Issuance claims and the guard before the CA signs, in the line store itself (both
backends): one station per unit, only a PASS, one certificate, the lot's quota, the
station's hourly rate; every refusal in the station's audit chain."""

from __future__ import annotations

import pytest

from ate.store import InvariantViolation, IssuancePolicy, IssuanceRefused, Store

A, B, C = "24:0a:c4:00:00:01", "24:0a:c4:00:00:02", "24:0a:c4:00:00:03"
WIDE = IssuancePolicy()


def refused(store: Store, station: str) -> list[str]:
    return [
        str(e.payload["refused"])
        for e in store.audit_entries(station)
        if e.kind == "issue" and "refused" in e.payload
    ]


def claim(store: Store, chip: str, station: str = "st1", tested: str = "PASS") -> None:
    store.claim_issuance(chip, station=station, lot="L1", panel_id="p1", tested=tested)


def authorize(store: Store, chip: str, station: str = "st1", **kw: object) -> None:
    policy = kw.pop("policy", WIDE)
    assert isinstance(policy, IssuancePolicy)
    args = {"station": station, "lot": "L1", "panel_id": "p1", **kw}
    store.authorize_issue(chip, policy=policy, **args)  # type: ignore[arg-type]


def test_a_unit_claimed_by_one_station_is_refused_to_another(store: Store) -> None:
    claim(store, A, "st1")
    claim(store, A, "st1")  # the same station again (a retest) is fine
    with pytest.raises(InvariantViolation, match="claimed for provisioning by station st1"):
        claim(store, A, "st2")
    with pytest.raises(IssuanceRefused, match="claimed by station st1, not st2"):
        authorize(store, A, "st2")
    assert len(refused(store, "st2")) == 2
    assert refused(store, "st1") == []


def test_only_a_claimed_pass_in_its_lot_and_panel_is_signed(store: Store) -> None:
    with pytest.raises(IssuanceRefused, match="no issuance claim"):
        authorize(store, A)
    claim(store, A, tested="FAIL")
    with pytest.raises(IssuanceRefused, match="ended FAIL, not PASS"):
        authorize(store, A)
    claim(store, B)
    with pytest.raises(IssuanceRefused, match="claimed for lot L1, not L2"):
        authorize(store, B, lot="L2")
    with pytest.raises(IssuanceRefused, match="claimed in panel p1, not p9"):
        authorize(store, B, panel_id="p9")
    authorize(store, B)
    authorize(store, B)  # the same issuance again (a re-run after a power cut)
    assert len(refused(store, "st1")) == 4


def test_quota_and_rate_count_each_unit_once(store: Store) -> None:
    for chip in (A, B, C):
        claim(store, chip)
    quota = IssuancePolicy(lot_quota=2, per_station_per_hour=100)
    authorize(store, A, policy=quota)
    authorize(store, A, policy=quota)  # counted once
    authorize(store, B, policy=quota)
    with pytest.raises(IssuanceRefused, match="quota of 2 certificates"):
        authorize(store, C, policy=quota)
    rate = IssuancePolicy(lot_quota=100, per_station_per_hour=2)
    with pytest.raises(IssuanceRefused, match="its limit is 2 an hour"):
        authorize(store, C, policy=rate)
    assert len(refused(store, "st1")) == 2
