"""A unit record ("ate.unit-record/1") turned into the rows the store writes: pure, no
database, shared by both backends. Refuses (BadRecord) what cannot be stored as is.

May import stdlib, ate.model and ate.store.api only.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ate.model.verdict import Verdict
from ate.store.api import (
    PROV_STATES,
    BadRecord,
    CertificateRow,
    StoreError,
    normalise_mac,
    normalise_time,
)

RECORD_SCHEMA = "ate.unit-record/1"
UNIT_VERDICTS = frozenset(
    v.value for v in (Verdict.PASS, Verdict.FAIL, Verdict.ERROR, Verdict.ABORTED, Verdict.EMPTY)
)
STEP_VERDICTS = frozenset(v.value for v in Verdict)
_FAILED = frozenset((Verdict.FAIL.value, Verdict.ERROR.value))

StepRow = tuple[str, int, str, str, str, str, int, float, float]
MeasurementRow = tuple[
    str,
    int,
    int,
    int,
    str,
    float | None,
    str | None,
    str,
    float | None,
    float | None,
    float | None,
    str,
]
EventRow = tuple[str, int, str, str, str, str, str, str]


@dataclass(frozen=True)
class RecordRows:
    """Everything one record writes. `attempt` is computed by the store, in SQL."""

    run_id: str
    chip_id: str | None
    chip: str | None
    product: str | None
    lot: str | None
    panel_id: str
    station: str
    fixture: str
    slot: int
    operator: str
    sequence: str
    sequence_version: str
    sequence_sha256: str
    test_firmware_sha256: str | None
    started_at: str
    duration_s: float
    verdict: str
    reason: str
    failing_step: str | None
    record_json: str
    steps: list[StepRow]
    measurements: list[MeasurementRow]
    events: list[EventRow]
    serial: str | None
    prov_state: str | None  # a state of PROV_STATES, or None (e.g. "untouched")
    certificate: CertificateRow | None


def rows_from_record(record: Mapping[str, Any]) -> RecordRows:
    """The rows of `record`; BadRecord naming the field when something is missing or wrong."""
    if not isinstance(record, Mapping):
        raise BadRecord(f"a unit record is a JSON object, not {type(record).__name__}")
    rid = record.get("record_id")
    if not isinstance(rid, str) or not rid:
        raise BadRecord("the unit record has no record_id; every record needs its id")
    ctx = f"record {rid}"
    if record.get("schema") != RECORD_SCHEMA:
        raise BadRecord(
            f"{ctx} has schema {record.get('schema')!r}; this ate stores {RECORD_SCHEMA!r} records"
        )
    record_json = json.dumps(record, sort_keys=True, separators=(",", ":"), default=str)
    if "PRIVATE KEY" in record_json:
        raise BadRecord(f"{ctx} contains a private key; ate never stores keys (fix the producer)")

    try:
        started_at = normalise_time(_str(record, "panel_started_at", ctx), "panel_started_at")
    except BadRecord:
        raise
    except StoreError as exc:
        raise BadRecord(f"{ctx}: {exc}") from None
    verdict = _str(record, "verdict", ctx)
    if verdict not in UNIT_VERDICTS:
        raise BadRecord(
            f"{ctx} has verdict {verdict!r}; a unit verdict is one of "
            f"{', '.join(sorted(UNIT_VERDICTS))}"
        )
    unit = record.get("unit") or {}
    if not isinstance(unit, Mapping):
        raise BadRecord(f"{ctx}: 'unit' is not an object")
    chip_id: str | None = None
    if unit.get("mac") is not None:
        chip_id = normalise_mac(str(unit["mac"]))
        if chip_id is None:
            raise BadRecord(f"{ctx}: unit mac {unit['mac']!r} is not a MAC address")
    seq = record.get("sequence")
    if not isinstance(seq, Mapping):
        raise BadRecord(f"{ctx} has no 'sequence' object (name, version, sha256)")
    fw = seq.get("test_firmware")
    fw_sha = fw.get("sha256") if isinstance(fw, Mapping) else None

    steps, measurements, failing_step = _steps(rid, record.get("steps"), ctx)
    prov = record.get("provisioning")
    events: list[EventRow] = []
    serial: str | None = None
    prov_state: str | None = None
    certificate: CertificateRow | None = None
    product = _opt_str(record.get("product"))
    lot = _opt_str(record.get("lot"))
    if prov is not None and not isinstance(prov, Mapping):
        raise BadRecord(f"{ctx}: 'provisioning' is not an object")
    if prov is not None and chip_id is None:
        # A unit whose MAC could not be read (Secure Download Mode) and that nothing
        # identified: its record says so and is kept; anything done to a unit needs one.
        if any(prov.get(k) for k in ("serial", "acts", "certificate")):
            raise BadRecord(f"{ctx} has a provisioning section but no unit MAC")
        prov = None
    if prov is not None and chip_id is not None:
        product = product or _opt_str(prov.get("product"))
        lot = lot or _opt_str(prov.get("lot"))
        serial = _opt_str(prov.get("serial"))
        state = prov.get("state")
        prov_state = state if state in PROV_STATES else None
        events = _events(rid, chip_id, prov.get("acts"), started_at, ctx)
        certificate = _certificate(prov, chip_id, serial, record, events, started_at, ctx)

    return RecordRows(
        run_id=rid,
        chip_id=chip_id,
        chip=_opt_str(unit.get("chip")),
        product=product,
        lot=lot,
        panel_id=_str(record, "panel_id", ctx),
        station=_str(record, "station", ctx),
        fixture=_str(record, "fixture", ctx),
        slot=_int(record.get("slot"), f"{ctx}: slot"),
        operator=_str(record, "operator", ctx),
        sequence=_str(seq, "name", f"{ctx} sequence"),
        sequence_version=_str(seq, "version", f"{ctx} sequence"),
        sequence_sha256=_str(seq, "sha256", f"{ctx} sequence"),
        test_firmware_sha256=_opt_str(fw_sha),
        started_at=started_at,
        duration_s=_float(record.get("duration_s", 0.0), f"{ctx}: duration_s"),
        verdict=verdict,
        reason=str(record.get("reason") or ""),
        failing_step=failing_step,
        record_json=record_json,
        steps=steps,
        measurements=measurements,
        events=events,
        serial=serial,
        prov_state=prov_state,
        certificate=certificate,
    )


def _steps(rid: str, raw: Any, ctx: str) -> tuple[list[StepRow], list[MeasurementRow], str | None]:
    if raw is None:
        raw = []
    if not isinstance(raw, list):
        raise BadRecord(f"{ctx}: 'steps' is not a list")
    steps: list[StepRow] = []
    measurements: list[MeasurementRow] = []
    failing: str | None = None
    seen_idx: set[int] = set()
    for pos, step in enumerate(raw):
        where = f"{ctx} step {pos}"
        if not isinstance(step, Mapping):
            raise BadRecord(f"{where} is not an object")
        idx = _int(step.get("index", pos), f"{where}: index")
        if idx in seen_idx:
            raise BadRecord(f"{ctx} has two steps with index {idx}; step indexes are unique")
        seen_idx.add(idx)
        name = _str(step, "name", where)
        verdict = _str(step, "verdict", where)
        if verdict not in STEP_VERDICTS:
            raise BadRecord(
                f"{where} has verdict {verdict!r}; allowed: {', '.join(sorted(STEP_VERDICTS))}"
            )
        if failing is None and verdict in _FAILED:
            failing = name
        steps.append(
            (
                rid,
                idx,
                name,
                str(step.get("type") or ""),
                verdict,
                str(step.get("reason") or ""),
                _int(step.get("retries", 0), f"{where}: retries"),
                _float(step.get("started_s", 0.0), f"{where}: started_s"),
                _float(step.get("duration_s", 0.0), f"{where}: duration_s"),
            )
        )
        names: dict[tuple[int, str], int] = {}
        for ord_, m in enumerate(step.get("measurements") or []):
            if not isinstance(m, Mapping):
                raise BadRecord(f"{where}: a measurement is not an object")
            mname = _str(m, "name", f"{where} measurement")
            attempt = _int(m.get("attempt", 0), f"{where} measurement {mname}: attempt")
            # A step that reports one name twice in an attempt keeps both: "name#2".
            n = names[(attempt, mname)] = names.get((attempt, mname), 0) + 1
            if n > 1:
                mname = f"{mname}#{n}"
            value, text = _reading(m.get("value"))
            if value is None and text is None and m.get("raw") is not None:
                text = str(m["raw"])[:200]  # a non-finite reading: null, with its raw text
            limits = m.get("limits") or {}
            if not isinstance(limits, Mapping):
                raise BadRecord(f"{where} measurement {mname}: 'limits' is not an object")
            measurements.append(
                (
                    rid,
                    idx,
                    attempt,
                    ord_,
                    mname,
                    value,
                    text,
                    str(m.get("unit") or ""),
                    _num(limits.get("low")),
                    _num(limits.get("high")),
                    _num(limits.get("expect")),
                    str(m.get("verdict") or ""),
                )
            )
    return steps, measurements, failing


def _events(rid: str, chip_id: str, raw: Any, started_at: str, ctx: str) -> list[EventRow]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise BadRecord(f"{ctx}: provisioning 'acts' is not a list")
    out: list[EventRow] = []
    for seq, act in enumerate(raw):
        where = f"{ctx} provisioning act {seq}"
        if not isinstance(act, Mapping):
            raise BadRecord(f"{where} is not an object")
        detail = {k: v for k, v in act.items() if k not in ("act", "kind", "status", "at")}
        at = act.get("at")
        try:
            at_text = normalise_time(at, f"{where} time") if isinstance(at, str) else started_at
        except StoreError as exc:
            raise BadRecord(str(exc)) from None
        out.append(
            (
                rid,
                seq,
                chip_id,
                _str(act, "act", where),
                _str(act, "kind", where),
                _str(act, "status", where),
                json.dumps(detail, sort_keys=True, separators=(",", ":"), default=str),
                at_text,
            )
        )
    return out


def _certificate(
    prov: Mapping[str, Any],
    chip_id: str,
    serial: str | None,
    record: Mapping[str, Any],
    events: list[EventRow],
    started_at: str,
    ctx: str,
) -> CertificateRow | None:
    cert = prov.get("certificate")
    if cert is None:
        return None
    if not isinstance(cert, Mapping):
        raise BadRecord(f"{ctx}: provisioning 'certificate' is not an object")
    if serial is None:
        raise BadRecord(f"{ctx} has a certificate but no serial; a certificate names its serial")
    issued_at = next(
        (e[7] for e in events if e[3] == "cert.issue" and e[4] == "outcome"), started_at
    )
    where = f"{ctx} certificate"
    return CertificateRow(
        fingerprint=_str(cert, "fingerprint", where),
        chip_id=chip_id,
        serial=serial,
        cert_serial=str(cert.get("cert_serial") or ""),
        issuer=str(cert.get("issuer") or ""),
        not_after=str(cert.get("not_after") or ""),
        station=str(record.get("station") or ""),
        operator=str(record.get("operator") or ""),
        issued_at=issued_at,
    )


# -- small typed getters -------------------------------------------------------------------------


def _str(obj: Mapping[str, Any], key: str, where: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str):
        raise BadRecord(f"{where} has no text field {key!r}")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None or value == "" else str(value)


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRecord(f"{where} is {value!r}, not an integer")
    return value


def _float(value: Any, where: str) -> float:
    number = _num(value)
    if number is None:
        raise BadRecord(f"{where} is {value!r}, not a finite number")
    return number


def _num(value: Any) -> float | None:
    """A finite number as float (bool counts as 0/1); None for anything else."""
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        try:
            number = float(value)
        except OverflowError:  # an int beyond a double
            return None
        return number if math.isfinite(number) else None
    return None


def _reading(value: Any) -> tuple[float | None, str | None]:
    """(value, text): a finite number goes to value, anything else (a string, NaN) to text."""
    number = _num(value)
    if number is not None:
        return number, None
    if value is None:
        return None, None
    return None, str(value)
