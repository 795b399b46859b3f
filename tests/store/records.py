"""A small factory of realistic unit records ("ate.unit-record/1"), made by the real
`build_record()` from model objects, the way the station makes them."""

from __future__ import annotations

import random
from typing import Any

from ate.model.events import PanelStarted
from ate.model.limits import Limits
from ate.model.results import Measurement, SlotResult, StepResult, UnitIdentity
from ate.model.verdict import Verdict
from ate.records.unit_record import build_record

SEQUENCE = {
    "name": "s3-devkit-functional",
    "version": "1.2.0",
    "file": "s3-devkit.yaml",
    "sha256": "5" * 64,
    "test_firmware": {"file": "ate-testfw.bin", "sha256": "f" * 64, "version": "1.0.0"},
}


def mac_of(n: int) -> str:
    return f"24:0a:c4:{n >> 16 & 0xFF:02x}:{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}"


def panel_id_of(n: int, fixture: str = "sim-quad") -> str:
    return f"{fixture}-20261121T{n // 3600 % 24:02d}{n // 60 % 60:02d}{n % 60:02d}-{n:04x}"


def time_of(n: int, day: int = 21) -> str:
    """A panel start n seconds into 2026-11-<day>, as the scheduler writes it."""
    return f"2026-11-{day:02d}T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}.123+00:00"


def _m(name: str, value: float | str, unit: str, limits: Limits | None) -> Measurement:
    verdict = Verdict.PASS
    if limits is not None and not isinstance(value, str):
        verdict = limits.judge(value)
    return Measurement(name, value, unit, limits, verdict)


def steps_for(
    rng: random.Random, *, fail: str | None = None, n_steps: int = 5
) -> tuple[StepResult, ...]:
    """A functional test's steps; `fail` names a step to fail (out of limits)."""
    plan: list[tuple[str, str, list[Measurement]]] = [
        ("boot_pin", "gpio_read", [_m("level", 1, "", Limits(expect=1))]),
        (
            "supply",
            "measure",
            [
                _m("v3v3", round(rng.gauss(3.3, 0.02), 4), "V", Limits(3.2, 3.4, "V")),
                _m("i_idle", round(rng.gauss(42.0, 2.0), 3), "mA", Limits(30, 60, "mA")),
            ],
        ),
        ("flash_id", "command", [_m("jedec", "c84016", "", None)]),
        (
            "rf",
            "signal_board",
            [
                _m("rssi", round(rng.gauss(-50, 2), 2), "dBm", Limits(-60, -40, "dBm")),
                _m("freq_offset", round(rng.gauss(0, 4), 2), "ppm", Limits(-20, 20, "ppm")),
            ],
        ),
        ("fw_version", "command", [_m("version", "ate-testfw/1.0.0", "", None)]),
        ("gpio_loop", "gpio_pairs", [_m("pairs_ok", 12, "", Limits(expect=12))]),
        (
            "tx_power",
            "measure",
            [_m("p_11b", round(rng.gauss(20.5, 0.5), 2), "dBm", Limits(18.5, 22.5, "dBm"))],
        ),
        (
            "sleep_current",
            "measure",
            [_m("i_sleep", round(rng.gauss(8, 1), 3), "uA", Limits(0, 20, "uA"))],
        ),
        (
            "adc",
            "measure",
            [_m("vref", round(rng.gauss(1.1, 0.01), 4), "V", Limits(1.0, 1.2, "V"))],
        ),
        (
            "uptime",
            "command",
            [_m("uptime_ms", rng.randint(900, 1100), "", Limits(500, 5000))],
        ),
    ]
    out: list[StepResult] = []
    t = 0.05
    for index, (name, typ, ms) in enumerate(plan[:n_steps]):
        if name == fail:
            first = ms[0]
            bad = (
                (first.limits.high or 0) + 1.0
                if first.limits and first.limits.high is not None
                else 0
            )
            ms = [Measurement(first.name, bad, first.unit, first.limits, Verdict.FAIL), *ms[1:]]
        verdict = Verdict.FAIL if any(m.verdict is Verdict.FAIL for m in ms) else Verdict.PASS
        duration = round(rng.uniform(0.01, 0.3), 4)
        out.append(
            StepResult(
                index,
                name,
                typ,
                verdict,
                tuple(ms),
                reason="out of limits" if verdict is Verdict.FAIL else "",
                started_s=round(t, 4),
                duration_s=duration,
            )
        )
        t += duration
        if verdict is Verdict.FAIL:
            break  # the sequence stops at the first failure
    return tuple(out)


def provisioning(
    serial: str,
    fingerprint: str,
    *,
    state: str = "locked",
    at: str = "2026-11-21T07:15:03.000+00:00",
) -> dict[str, Any]:
    """A provisioning section as the flow writes it (identifiers only, no key)."""
    return {
        "serial": serial,
        "state": state,
        "certificate": {
            "fingerprint": fingerprint,
            "cert_serial": fingerprint[7:23],
            "issuer": "CN=ATE Test Manufacturing CA",
            "not_after": "2046-11-21T00:00:00+00:00",
        },
        "acts": [
            {
                "act": "cert.issue",
                "kind": "intent",
                "status": "planned",
                "serial": serial,
                "at": at,
            },
            {
                "act": "cert.issue",
                "kind": "outcome",
                "status": "done",
                "fingerprint": fingerprint,
                "at": at.replace("03.000", "03.250"),
            },
            {
                "act": "efuse:sb.en",
                "kind": "intent",
                "status": "planned",
                "at": at.replace("03.000", "04.000"),
            },
            {
                "act": "efuse:sb.en",
                "kind": "outcome",
                "status": "done",
                "value": 1,
                "at": at.replace("03.000", "04.500"),
            },
        ],
    }


def make_record(
    n: int = 1,
    *,
    slot: int = 1,
    mac: str | None = None,
    verdict: str = "PASS",
    fail: str | None = None,
    started_at: str | None = None,
    panel_id: str | None = None,
    station: str = "st1",
    operator: str = "op1",
    fixture: str = "sim-quad",
    seed: int | None = None,
    n_steps: int = 5,
    prov: dict[str, Any] | None = None,
    rom: bool = False,
    **extra: Any,
) -> dict[str, Any]:
    """Unit record number `n` (its panel, time and MAC follow from n unless given).

    verdict: PASS, FAIL (give `fail`, a step name, or the supply step fails), ERROR,
    ABORTED or EMPTY (no board: unit fields null, no steps)."""
    rng = random.Random(n if seed is None else seed)
    panel = PanelStarted(
        panel_id or panel_id_of(n, fixture),
        fixture,
        station,
        operator,
        dict(SEQUENCE),
        (1, 2, 3, 4),
        started_at or time_of(n),
    )
    if verdict == "EMPTY":
        result = SlotResult(slot, Verdict.EMPTY, "no board in the slot")
    else:
        if verdict == "FAIL" and fail is None:
            fail = "supply"
        steps = steps_for(rng, fail=fail, n_steps=n_steps)
        if verdict == "ERROR":
            last = steps[-1]
            steps = (
                *steps[:-1],
                StepResult(last.index, last.name, last.type, Verdict.ERROR, (), "timeout"),
            )
        unit = UnitIdentity(mac or mac_of(n), "esp32s3", "ate-testfw/1.0.0", 1)
        extras: dict[str, Any] = dict(extra)
        if prov is not None:
            extras["provisioning"] = prov
        if rom:
            extras["rom"] = {"chip": "esp32s3", "mac": unit.mac, "secure_boot": False}
        reason = {"FAIL": f"{fail}: out of limits", "ERROR": "timeout", "ABORTED": "clamp opened"}
        result = SlotResult(
            slot,
            Verdict(verdict),
            reason.get(verdict, ""),
            unit,
            steps,
            round(sum(s.duration_s for s in steps) + 0.5, 4),
            extras,
        )
    return build_record(panel, result)
