"""Ingest: a record round-trips through unit_history, once, and lands in the exports."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ate.store import BadRecord, Store, StoreError
from ate.store import queries as queries_mod
from ate.store.api import normalise_mac, normalise_time
from ate.store.ingest import rows_from_record
from tests.store.conftest import Raw
from tests.store.records import mac_of, make_record, provisioning, time_of

FP = "sha256:" + "ab" * 32
TABLES = (
    "units",
    "stations",
    "fixtures",
    "operators",
    "lots",
    "test_runs",
    "steps",
    "measurements",
    "provisioning_events",
    "certificates",
)


def dump(raw: Raw) -> dict[str, list[Any]]:
    return {t: sorted(map(repr, raw(f"SELECT * FROM {t}"))) for t in TABLES}


def test_round_trip_through_unit_history(store: Store) -> None:
    rec = make_record(7, prov=provisioning("AS3-7K2M9-QXH4-Z", FP), rom=True, n_steps=6)
    assert store.ingest(rec) is True
    h = store.unit_history(mac_of(7))
    assert h is not None
    assert (h.chip_id, h.serial, h.chip, h.prov_state) == (
        mac_of(7),
        "AS3-7K2M9-QXH4-Z",
        "esp32s3",
        "locked",
    )
    assert h.first_seen == h.last_seen == rec["panel_started_at"]
    [run] = h.runs
    assert run.run_id == rec["record_id"] and run.panel_id == rec["panel_id"]
    assert (run.station, run.fixture, run.slot, run.operator) == ("st1", "sim-quad", 1, "op1")
    assert (run.verdict, run.reason, run.attempt, run.failing_step) == ("PASS", "", 1, None)
    assert run.sequence == "s3-devkit-functional" and run.sequence_version == "1.2.0"
    assert run.sequence_sha256 == "5" * 64 and run.test_firmware_sha256 == "f" * 64
    assert run.duration_s == pytest.approx(rec["duration_s"])
    assert [s.name for s in run.steps] == [s["name"] for s in rec["steps"]]
    for got, want in zip(run.steps, rec["steps"], strict=True):
        assert (got.idx, got.type, got.verdict) == (want["index"], want["type"], want["verdict"])
        assert got.started_s == pytest.approx(want["started_s"])
        by_name = {m.name: m for m in got.measurements}
        assert set(by_name) == {m["name"] for m in want["measurements"]}
        for m in want["measurements"]:
            stored = by_name[m["name"]]
            if isinstance(m["value"], str):
                assert (stored.value, stored.text) == (None, m["value"])
            else:
                assert (stored.value, stored.text) == (pytest.approx(m["value"]), None)
            limits = m["limits"] or {}
            assert (stored.low, stored.high, stored.expect) == (
                limits.get("low"),
                limits.get("high"),
                limits.get("expect"),
            )
            assert (stored.unit, stored.verdict) == (m["unit"], m["verdict"])
    assert h.certificate is not None
    assert h.certificate.fingerprint == FP and h.certificate.serial == "AS3-7K2M9-QXH4-Z"
    assert h.certificate.issued_at == "2026-11-21T07:15:03.250+00:00"  # the cert.issue outcome
    assert [(e.seq, e.act, e.kind, e.status) for e in h.events] == [
        (0, "cert.issue", "intent", "planned"),
        (1, "cert.issue", "outcome", "done"),
        (2, "efuse:sb.en", "intent", "planned"),
        (3, "efuse:sb.en", "outcome", "done"),
    ]
    assert h.events[0].detail == {"serial": "AS3-7K2M9-QXH4-Z"}
    assert h.events[3].detail == {"value": 1}
    assert store.record(rec["record_id"]) == rec
    assert store.record("nope-slot1") is None


@pytest.mark.parametrize(
    "key",
    ["24:0a:c4:00:00:07", "240AC4000007", "24-0A-C4-00-00-07", "24:0A:c4:00:00:07", "as3-x1"],
)
def test_unit_history_by_mac_in_any_form_or_serial(store: Store, key: str) -> None:
    store.ingest(make_record(7, prov=provisioning("AS3-X1", FP)))
    h = store.unit_history(key)
    assert h is not None and h.chip_id == "24:0a:c4:00:00:07"


def test_unit_history_of_an_unknown_unit(store: Store) -> None:
    store.ingest(make_record(1))
    assert store.unit_history("24:0a:c4:99:99:99") is None
    assert store.unit_history("no-such-serial") is None
    assert store.unit_history("") is None


def test_second_ingest_changes_nothing(store: Store, raw: Raw) -> None:
    rec = make_record(3, prov=provisioning("AS3-3", FP), lot="L-7", product="devkit")
    assert store.ingest(rec) is True
    before = dump(raw)
    assert store.ingest(rec) is False
    assert store.ingest(dict(rec)) is False
    assert dump(raw) == before
    assert store.has_record(rec["record_id"]) and not store.has_record("other-slot1")
    assert raw("SELECT runs FROM units")[0][0] == 1


def test_ingest_many_is_one_batch(store: Store) -> None:
    recs = [make_record(n) for n in range(1, 6)]
    assert store.ingest_many([*recs[:3], recs[0]]) == [True, True, True, False]
    assert store.ingest_many(recs) == [False, False, False, True, True]
    assert len(list(store.runs(None, None))) == 5


def test_empty_slot_is_a_run_without_unit(store: Store, raw: Raw) -> None:
    rec = make_record(4, verdict="EMPTY", slot=3)
    assert rec["unit"]["mac"] is None
    assert store.ingest(rec)
    [row] = list(store.runs(None, None))
    assert (row["chip_id"], row["serial"], row["verdict"], row["attempt"]) == (
        None,
        None,
        "EMPTY",
        0,
    )
    assert raw("SELECT COUNT(*) FROM units")[0][0] == 0


def test_a_locked_unit_nobody_could_identify_keeps_its_record(store: Store, raw: Raw) -> None:
    """In Secure Download Mode the MAC is unreadable; a unit nothing recognised is an ERROR
    whose record says so and must reach the line database (found by `ate nightly`: such
    records sat in the spool for ever). Anything done to a unit still needs its MAC."""
    rec = make_record(5, verdict="ERROR")
    rec["unit"]["mac"] = None
    rec["provisioning"] = {"state": "unknown", "recognised_by": "none"}
    assert store.ingest(rec)
    [row] = list(store.runs(None, None))
    assert (row["chip_id"], row["verdict"]) == (None, "ERROR")
    assert raw("SELECT COUNT(*) FROM units")[0][0] == 0
    acted = make_record(6, prov=provisioning("AS3-6", FP))
    acted["unit"]["mac"] = None
    with pytest.raises(BadRecord, match="provisioning section but no unit MAC"):
        store.ingest(acted)


def test_attempts_number_every_run_of_a_unit_in_time_order(store: Store) -> None:
    mac = mac_of(9)
    recs = [
        make_record(100 + i, mac=mac, verdict=v, started_at=time_of(1000 + i * 60))
        for i, v in enumerate(["FAIL", "ABORTED", "ERROR", "PASS"])
    ]
    # Delivered out of order (a spool flushed late): numbering still follows started_at.
    for i in (2, 0, 3, 1):
        assert store.ingest(recs[i])
    h = store.unit_history(mac)
    assert h is not None
    assert [(r.verdict, r.attempt) for r in h.runs] == [
        ("FAIL", 1),
        ("ABORTED", 2),
        ("ERROR", 3),
        ("PASS", 4),
    ]
    assert [r["attempt"] for r in store.runs(None, None)] == [1, 2, 3, 4]


def test_failing_step_is_the_first_failed_or_errored_step(store: Store) -> None:
    store.ingest(make_record(1, verdict="FAIL", fail="rf"))
    store.ingest(make_record(2, verdict="ERROR"))
    rows = {r["chip_id"]: r for r in store.runs(None, None)}
    assert rows[mac_of(1)]["failing_step"] == "rf"
    assert rows[mac_of(1)]["reason"] == "rf: out of limits"
    assert rows[mac_of(2)]["failing_step"] == "fw_version"


def test_entities_are_upserted_with_first_and_last_seen(store: Store, raw: Raw) -> None:
    store.ingest(make_record(1, started_at=time_of(50), lot="L-1", product="devkit"))
    store.ingest(make_record(2, started_at=time_of(10), station="st2", operator="op2"))
    store.ingest(make_record(3, started_at=time_of(90)))
    assert raw("SELECT station, first_seen, last_seen FROM stations ORDER BY station") == [
        ("st1", time_of(50), time_of(90)),
        ("st2", time_of(10), time_of(10)),
    ]
    assert raw("SELECT fixture, station, first_seen, last_seen FROM fixtures") == [
        ("sim-quad", "st1", time_of(10), time_of(90))
    ]
    assert raw("SELECT operator FROM operators ORDER BY operator") == [("op1",), ("op2",)]
    assert raw("SELECT lot, product FROM lots") == [("L-1", "devkit")]
    h = store.unit_history(mac_of(1))
    assert h is not None and (h.lot, h.product) == ("L-1", "devkit")


def test_measurement_values_text_nan_and_repeated_names(store: Store) -> None:
    rec = make_record(1, n_steps=1)
    ms = rec["steps"][0]["measurements"]
    ms.append(
        {"name": "level", "value": float("nan"), "unit": "", "limits": None, "verdict": "FAIL"}
    )
    ms.append({"name": "flag", "value": True, "unit": "", "limits": None, "verdict": "PASS"})
    ms.append({"name": "big", "value": 10**400, "unit": "", "limits": None, "verdict": "PASS"})
    store.ingest(rec)
    h = store.unit_history(mac_of(1))
    assert h is not None
    got = {m.name: m for m in h.runs[0].steps[0].measurements}
    assert got["level"].value == 1.0
    assert got["level#2"].value is None and got["level#2"].text == "nan"
    assert got["flag"].value == 1.0
    assert got["big"].value is None and got["big"].text == str(10**400)


def test_times_are_stored_as_utc(store: Store) -> None:
    rec = make_record(1, started_at="2026-11-21T09:15:00.5+02:00")
    store.ingest(rec)
    [row] = list(store.runs(None, None))
    assert row["started_at"] == "2026-11-21T07:15:00.500+00:00"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda r: r.update(schema="ate.unit-record/2"), r"this ate stores 'ate.unit-record/1'"),
        (lambda r: r.pop("record_id"), r"no record_id"),
        (lambda r: r.pop("station"), r"has no text field 'station'"),
        (lambda r: r.update(verdict="MAYBE"), r"verdict 'MAYBE'"),
        (lambda r: r.update(panel_started_at="yesterday"), r"not an ISO 8601 time"),
        (lambda r: r["unit"].update(mac="not-a-mac"), r"is not a MAC address"),
        (lambda r: r.update(slot="1"), r"slot is '1', not an integer"),
        (
            lambda r: r["steps"].append(dict(r["steps"][0])),
            r"two steps with index 0",
        ),
        (
            lambda r: r.update(
                note="-----BEGIN EC PRIVATE KEY-----\nMHc...\n-----END EC PRIVATE KEY-----"
            ),
            r"contains a private key",
        ),
        (
            lambda r: r.update(provisioning={"serial": None, "certificate": {"fingerprint": FP}}),
            r"a certificate but no serial",
        ),
    ],
)
def test_bad_records_are_refused_with_a_reason(store: Store, change: Any, message: str) -> None:
    rec = make_record(1)
    change(rec)
    with pytest.raises(BadRecord, match=message):
        store.ingest(rec)
    assert list(store.runs(None, None)) == []


def test_runs_export_window_and_paging(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(queries_mod, "PAGE", 3)
    recs = [make_record(n, started_at=time_of(n * 10)) for n in range(1, 12)]
    store.ingest_many(recs)
    rows = list(store.runs(None, None))
    assert [r["run_id"] for r in rows] == [r["record_id"] for r in recs]
    assert set(rows[0]) == set(queries_mod.EXPORT_COLUMNS)
    window = list(store.runs(time_of(30), time_of(70)))
    assert [r["started_at"] for r in window] == [time_of(30), time_of(40), time_of(50), time_of(60)]
    assert len(list(store.runs("2026-11-21", None))) == 11
    assert list(store.runs("2026-11-22", None)) == []
    with pytest.raises(StoreError, match="since 'soon' is not an ISO 8601 time"):
        store.runs("soon", None)


def test_report_input_runs_and_series(store: Store) -> None:
    store.ingest(make_record(1, started_at=time_of(10), prov=provisioning("S-1", FP)))
    store.ingest(make_record(2, started_at=time_of(20), verdict="FAIL", fail="supply"))
    store.ingest(make_record(3, started_at=time_of(30), mac=mac_of(2)))
    store.ingest(make_record(4, started_at=time_of(40), verdict="EMPTY", slot=4))
    late = make_record(5, started_at=time_of(50))
    late["steps"][1]["measurements"][0]["limits"]["high"] = 3.5  # a new sequence version
    store.ingest(late)
    report = store.report_input(None, None)
    assert [(r.chip_id, r.verdict, r.attempt) for r in report.runs] == [
        (mac_of(1), "PASS", 1),
        (mac_of(2), "FAIL", 1),
        (mac_of(2), "PASS", 2),
        (None, "EMPTY", 0),
        (mac_of(5), "PASS", 1),
    ]
    assert report.runs[0].serial == "S-1" and report.runs[1].failing_step == "supply"
    series = {(s.step, s.name): s for s in report.series}
    assert ("flash_id", "jedec") not in series  # text readings are not series
    v3 = series[("supply", "v3v3")]
    assert v3.unit == "V" and (v3.low, v3.high) == (3.2, 3.5)  # the latest run's limits
    assert len(v3.values) == 4
    want = [
        m["value"]
        for n in (1, 2, 3, 5)
        for m in make_record(n, verdict="FAIL" if n == 2 else "PASS")["steps"][1]["measurements"]
        if m["name"] == "v3v3"
    ]
    assert v3.values == pytest.approx(want)
    assert all(isinstance(v, float) for s in report.series for v in s.values)
    assert len(series[("rf", "rssi")].values) == 3  # the failed unit stopped at supply
    narrow = store.report_input(time_of(20), time_of(40))
    assert [r.started_at for r in narrow.runs] == [time_of(20), time_of(30)]
    assert narrow.since == normalise_time(time_of(20)) and narrow.until == time_of(40)
    assert store.report_input("2030-01-01", None).runs == []


# -- the pure parts, with hypothesis ----------------------------------------------------------


@given(st.integers(0, 2**48 - 1), st.sampled_from([":", "-", "", "."]), st.booleans())
def test_normalise_mac_any_form(n: int, sep: str, upper: bool) -> None:
    canon = ":".join(f"{n:012x}"[i : i + 2] for i in range(0, 12, 2))
    text = canon.replace(":", sep)
    assert normalise_mac(text.upper() if upper else text) == canon


@given(
    st.text(max_size=20).filter(
        lambda s: len([c for c in s if c in "0123456789abcdefABCDEF"]) != 12
    )
)
def test_normalise_mac_rejects_non_macs(text: str) -> None:
    assert normalise_mac(text) is None


@settings(max_examples=50)
@given(
    value=st.one_of(
        st.floats(allow_nan=True, allow_infinity=True),
        st.integers(-(2**70), 2**70),
        st.text(max_size=10),
        st.booleans(),
        st.none(),
    )
)
def test_a_reading_goes_to_value_or_text(value: Any) -> None:
    rec = make_record(1, n_steps=1)
    rec["steps"][0]["measurements"][0]["value"] = value
    [m] = rows_from_record(rec).measurements
    number, text = m[5], m[6]
    if isinstance(value, bool | int | float) and math.isfinite(float(value)):
        assert number == float(value) and text is None
    elif value is None:
        assert number is None and text is None
    else:
        assert number is None and text == str(value)
