"""`ate report` build time on a big line database, and the seeded line simulation the report
tests use.

`python -m bench.report [n_units]` fills a fresh SQLite store with `n_units` simulated units
(about 1.1 tests each: retests, empty slots and aborted panels included), untimed, then times
`report_input` + render + write of the whole range. The goal is under 10 s for 100,000 units.

The simulated line: 3 stations x 2 fixtures x 4 slots; panels only between 06:00 and 22:00
UTC; a worn pogo pin on one slot (BAD_SLOT) fails its `gpio_pairs` step about 15 % more
often; `adc_vref/vref` drifts up over the days; 1.5 % of units carry a real defect that fails
every test; failed units are mostly retested on whichever slot is free.
"""

from __future__ import annotations

import heapq
import json
import math
import random
import sqlite3
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from ate.store.api import MeasurementSeries, ReportInput, RunRow

STATIONS = ("st1", "st2", "st3")
FIXTURES = tuple((st, f"{st}-fx{k}") for st in STATIONS for k in (1, 2))
SLOTS = (1, 2, 3, 4)
BAD_SLOT = ("st2-fx1", 3)
BAD_SLOT_EXTRA_FAIL = 0.15
DRIFTING = ("adc_vref", "vref")
START = datetime(2026, 11, 16, 6, 0, tzinfo=UTC)
SHIFT_START_H, SHIFT_HOURS = 6, 16
SEQUENCE = {
    "name": "s3-devkit-functional",
    "version": "1.2.0",
    "file": "sequences/s3-devkit-functional.yaml",
    "sha256": "5" * 64,
    "test_firmware": {"file": "firmware/ate-testfw.bin", "sha256": "7" * 64, "version": "1.0.0"},
}


@dataclass(frozen=True)
class MeasSpec:
    name: str
    unit: str
    low: float | None
    high: float | None
    mean: float
    sigma: float
    expect: float | None = None
    integer: bool = False


@dataclass(frozen=True)
class StepSpec:
    name: str
    type: str
    fail_p: float  # random failure of the step itself (contact, packet loss, ...)
    measurements: tuple[MeasSpec, ...] = ()


STEPS: tuple[StepSpec, ...] = (
    StepSpec("boot_pin", "gpio_read", 0.001, (MeasSpec("level", "", None, None, 1, 0, 1, True),)),
    StepSpec("supply", "dmm", 0.0, (MeasSpec("vdd33", "V", 3.135, 3.465, 3.30, 0.03),)),
    StepSpec("gpio_pairs", "gpio_pairs", 0.004),
    StepSpec("idle_current", "dmm", 0.0, (MeasSpec("idle", "mA", None, 60.0, 42.0, 3.5),)),
    StepSpec("adc_vref", "adc", 0.0, (MeasSpec("vref", "mV", 1070.0, 1140.0, 1098.0, 5.0),)),
    StepSpec(
        "wifi_tx",
        "rf",
        0.002,
        (
            MeasSpec("power_11b", "dBm", 18.5, 22.5, 20.5, 0.42),
            MeasSpec("freq_error", "ppm", -20.0, 20.0, 1.5, 4.8),
        ),
    ),
    StepSpec("rf_rssi", "golden", 0.003, (MeasSpec("fb_rssi", "dBm", -60.0, None, -50.0, 3.4),)),
    StepSpec("flash_rw", "flash", 0.003),
    StepSpec("fw_version", "version", 0.001),
)
VREF_DRIFT = 30.0  # mV over the whole span


@dataclass(slots=True)
class SimStep:
    name: str
    type: str
    verdict: str
    started_s: float
    duration_s: float
    measurements: list[tuple[MeasSpec, float, str]] = field(default_factory=list)


@dataclass(slots=True)
class SimRun:
    run_id: str
    panel_id: str
    started_at: str
    station: str
    fixture: str
    slot: int
    operator: str
    chip_id: str | None
    verdict: str
    attempt: int
    failing_step: str | None
    duration_s: float
    steps: list[SimStep]


@dataclass
class _Unit:
    mac: str
    defect: str | None
    runs: int = 0
    tests: int = 0


def _wall(t: float) -> datetime:
    """Production seconds (16 h a day) to wall time, with the nights left out."""
    shift = SHIFT_HOURS * 3600
    day, within = divmod(t, shift)
    return START + timedelta(days=day, seconds=within)


def simulate_line(
    n_units: int, seed: int = 1, days: float = 5.0, bad_slot_extra: float = BAD_SLOT_EXTRA_FAIL
) -> list[SimRun]:
    """Every run (one unit in one slot of one panel) of a line that tests `n_units` new
    units over `days` days, in time order. `bad_slot_extra`: how much more often BAD_SLOT
    fails `gpio_pairs` (0: a healthy line)."""
    rng = random.Random(seed)
    panels_per_fixture = math.ceil(n_units * 1.12 / len(SLOTS) / len(FIXTURES)) + 2
    cycle = days * SHIFT_HOURS * 3600 / panels_per_fixture
    made = 0
    queue: list[tuple[int, int, _Unit]] = []  # heap (due panel, seq, unit) of retests
    runs: list[SimRun] = []
    p = 0
    while made < n_units or queue:
        # operators put retests into whichever slot is free: any fixture, any slot
        for f_idx, (station, fixture) in rng.sample(list(enumerate(FIXTURES)), len(FIXTURES)):
            t0 = p * cycle + f_idx * cycle / len(FIXTURES) + rng.uniform(0, cycle * 0.1)
            when = _wall(t0)
            frac = min(1.0, t0 / (days * SHIFT_HOURS * 3600))
            panel_id = f"prov-{when:%Y%m%dT%H%M%S}-{fixture}-{p:06d}"
            operator = f"op{1 + (int(t0 // (8 * 3600)) % 2) + 2 * (f_idx % 2)}"
            for slot in rng.sample(SLOTS, len(SLOTS)):
                unit: _Unit | None = None
                if rng.random() >= 0.015:  # else the operator left the slot empty
                    if queue and queue[0][0] <= p:
                        unit = heapq.heappop(queue)[2]
                    elif made < n_units:
                        made += 1
                        defect = rng.choice(STEPS[1:]).name if rng.random() < 0.015 else None
                        unit = _Unit(
                            f"24:0a:c4:{made >> 16 & 0xFF:02x}:{made >> 8 & 0xFF:02x}:"
                            f"{made & 0xFF:02x}",
                            defect,
                        )
                    else:
                        continue  # nothing to test yet: the slot stays idle, no record
                started = when + timedelta(seconds=0.05 * slot)
                extra = bad_slot_extra if (fixture, slot) == BAD_SLOT else 0.0
                run = _run(
                    rng, panel_id, started, station, fixture, slot, operator, unit, frac, extra
                )
                runs.append(run)
                if unit is not None and run.verdict != "PASS":
                    retest = run.verdict == "ABORTED" or (unit.tests < 3 and rng.random() < 0.85)
                    if retest:
                        heapq.heappush(queue, (p + rng.randint(1, 6), len(runs), unit))
        p += 1
    runs.sort(key=lambda r: (r.started_at, r.run_id))
    return runs


def _run(
    rng: random.Random,
    panel_id: str,
    started: datetime,
    station: str,
    fixture: str,
    slot: int,
    operator: str,
    unit: _Unit | None,
    frac: float,
    extra_fail: float,
) -> SimRun:
    run_id = f"{panel_id}-slot{slot}"
    at = started.isoformat(timespec="milliseconds")
    if unit is None:
        return SimRun(
            run_id, panel_id, at, station, fixture, slot, operator, None, "EMPTY", 0, None, 0.4, []
        )
    unit.runs += 1
    aborted_at = rng.randrange(len(STEPS)) if rng.random() < 0.003 else None
    steps: list[SimStep] = []
    verdict, failing, clock = "PASS", None, 0.2
    for i, spec in enumerate(STEPS):
        dur = 0.05 + rng.random() * 0.2
        step = SimStep(spec.name, spec.type, "PASS", clock, dur)
        clock += dur
        steps.append(step)
        if aborted_at == i:
            step.verdict, verdict = "ABORTED", "ABORTED"
            break
        ok = True
        for m in spec.measurements:
            if m.integer:
                value = float(m.expect if m.expect is not None else m.mean)
            else:
                mean = m.mean + (VREF_DRIFT * frac if (spec.name, m.name) == DRIFTING else 0.0)
                value = rng.gauss(mean, m.sigma)
            inside = (m.low is None or value >= m.low) and (m.high is None or value <= m.high)
            step.measurements.append((m, round(value, 4), "PASS" if inside else "FAIL"))
            ok = ok and inside
        fail_p = spec.fail_p
        if spec.name == "gpio_pairs":
            fail_p += extra_fail
        if unit.defect == spec.name:
            fail_p = 1.0
        if ok and rng.random() < fail_p:
            ok = False
            if step.measurements and step.measurements[0][0].integer:
                m = step.measurements[0][0]
                step.measurements[0] = (m, 0.0, "FAIL")
        if not ok:
            error = rng.random() < 0.1 and not step.measurements
            step.verdict = "ERROR" if error else "FAIL"
            verdict, failing = step.verdict, spec.name
            break
    if verdict != "ABORTED":
        unit.tests += 1
    return SimRun(
        run_id,
        panel_id,
        at,
        station,
        fixture,
        slot,
        operator,
        unit.mac,
        verdict,
        unit.runs,
        failing,
        round(clock, 3),
        steps,
    )


# ---------------------------------------------------------------- what the store would hold


def unit_record(run: SimRun) -> dict[str, Any]:
    """The run as `ate.records.unit_record.build_record` writes it (ate.unit-record/1)."""
    return {
        "schema": "ate.unit-record/1",
        "record_id": run.run_id,
        "panel_id": run.panel_id,
        "panel_started_at": run.started_at,
        "ate_version": "0.1.0",
        "station": run.station,
        "operator": run.operator,
        "fixture": run.fixture,
        "slot": run.slot,
        "unit": {
            "mac": run.chip_id,
            "chip": "esp32s3" if run.chip_id else None,
            "test_firmware": "ate-testfw/1.0.0" if run.chip_id else None,
            "protocol": 1 if run.chip_id else None,
        },
        "sequence": SEQUENCE,
        "verdict": run.verdict,
        "reason": "" if run.verdict == "PASS" else f"{run.failing_step or 'slot'}: {run.verdict}",
        "duration_s": run.duration_s,
        "steps": [
            {
                "index": i,
                "name": s.name,
                "type": s.type,
                "verdict": s.verdict,
                "reason": "",
                "retries": 0,
                "started_s": round(s.started_s, 6),
                "duration_s": round(s.duration_s, 6),
                "uses": [],
                "resource_wait_s": 0.0,
                "measurements": [
                    {
                        "name": m.name,
                        "value": int(v) if m.integer else v,
                        "unit": m.unit,
                        "limits": None
                        if m.low is None and m.high is None and m.expect is None
                        else {"low": m.low, "high": m.high, "unit": m.unit, "expect": m.expect},
                        "verdict": mv,
                    }
                    for m, v, mv in s.measurements
                ],
            }
            for i, s in enumerate(run.steps)
        ],
    }


def report_input_of(
    runs: list[SimRun], since: str | None = None, until: str | None = None
) -> ReportInput:
    """The ReportInput a store holding `runs` returns, built in memory."""
    rows: list[RunRow] = []
    series: dict[tuple[str, str], tuple[MeasSpec, list[float]]] = {}
    for r in runs:
        rows.append(
            RunRow(
                r.run_id,
                r.chip_id,
                None,
                r.station,
                r.fixture,
                r.slot,
                r.operator,
                r.started_at,
                r.verdict,
                r.attempt,
                r.failing_step,
                r.duration_s,
            )
        )
        for s in r.steps:
            for m, v, _ in s.measurements:
                series.setdefault((s.name, m.name), (m, []))[1].append(v)
    return ReportInput(
        since,
        until,
        rows,
        [
            MeasurementSeries(step, name, m.unit, m.low, m.high, values)
            for (step, name), (m, values) in series.items()
        ],
    )


# ---------------------------------------------------------------- the benchmark


def _fill(db: Path, runs: list[SimRun]) -> None:
    """Bulk-insert the runs into a store's tables (schema made by open_store), one
    transaction, the way ingest would have stored them."""
    con = sqlite3.connect(db)
    try:
        with con:
            _fill_tables(con, runs)
    finally:
        con.close()


def _fill_tables(con: sqlite3.Connection, runs: list[SimRun]) -> None:
    units: dict[str, list[str]] = {}
    for r in runs:
        if r.chip_id:
            seen = units.setdefault(r.chip_id, [r.started_at, r.started_at, "0"])
            seen[1] = r.started_at
            seen[2] = str(int(seen[2]) + 1)
    con.executemany(
        "INSERT INTO units (chip_id, chip, prov_state, first_seen, last_seen, runs) "
        "VALUES (?, 'esp32s3', 'tested', ?, ?, ?)",
        ((mac, a, b, int(n)) for mac, (a, b, n) in units.items()),
    )
    con.executemany(
        "INSERT INTO test_runs (run_id, chip_id, panel_id, station, fixture, slot, operator, "
        "lot, sequence, sequence_version, sequence_sha256, test_firmware_sha256, started_at, "
        "duration_s, verdict, reason, attempt, failing_step, record) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            (
                r.run_id,
                r.chip_id,
                r.panel_id,
                r.station,
                r.fixture,
                r.slot,
                r.operator,
                SEQUENCE["name"],
                SEQUENCE["version"],
                SEQUENCE["sha256"],
                "7" * 64,
                r.started_at,
                r.duration_s,
                r.verdict,
                rec["reason"],
                r.attempt,
                r.failing_step,
                json.dumps(rec, separators=(",", ":")),
            )
            for r in runs
            for rec in (unit_record(r),)
        ),
    )
    con.executemany(
        "INSERT INTO steps (run_id, idx, name, type, verdict, reason, retries, started_s, "
        "duration_s) VALUES (?, ?, ?, ?, ?, '', 0, ?, ?)",
        (
            (r.run_id, i, s.name, s.type, s.verdict, s.started_s, s.duration_s)
            for r in runs
            for i, s in enumerate(r.steps)
        ),
    )
    con.executemany(
        "INSERT INTO measurements (run_id, step_idx, attempt, ord, name, value, text, unit, low, "
        "high, expect, verdict) VALUES (?, ?, 0, ?, ?, ?, NULL, ?, ?, ?, ?, ?)",
        (
            (r.run_id, i, k, m.name, v, m.unit, m.low, m.high, m.expect, mv)
            for r in runs
            for i, s in enumerate(r.steps)
            for k, (m, v, mv) in enumerate(s.measurements)
        ),
    )
    first, last = runs[0].started_at, runs[-1].started_at
    con.executemany(
        "INSERT INTO stations (station, first_seen, last_seen) VALUES (?, ?, ?)",
        ((st, first, last) for st in STATIONS),
    )
    con.executemany(
        "INSERT INTO fixtures (fixture, station, first_seen, last_seen) VALUES (?, ?, ?, ?)",
        ((fx, st, first, last) for st, fx in FIXTURES),
    )


def report_build_seconds(n_units: int = 100_000, seed: int = 1) -> dict[str, float]:
    """Fill a fresh SQLite store with `n_units` simulated units (not timed), then time
    report_input, render and write of the whole range; seconds each and in total."""
    from ate.cli.report_cmd import write_report
    from ate.report.html import render_report
    from ate.store.api import open_store

    runs = simulate_line(n_units, seed=seed, days=30.0)
    with tempfile.TemporaryDirectory(prefix="ate-bench-report-") as tmp_name:
        tmp = Path(tmp_name)
        db = tmp / "line.db"
        open_store(f"sqlite://{db}").close()
        t_fill = time.perf_counter()
        _fill(db, runs)
        fill_s = time.perf_counter() - t_fill
        store = open_store(f"sqlite://{db}", migrate=False)
        try:
            t0 = time.perf_counter()
            report = store.report_input(None, None)
            t1 = time.perf_counter()
            page = render_report(report, source=store.url)
            t2 = time.perf_counter()
            out = tmp / "report.html"
            write_report(out, page)
            t3 = time.perf_counter()
        finally:
            store.close()
        return {
            "units": float(n_units),
            "runs": float(len(runs)),
            "measurements": float(sum(len(s.values) for s in report.series)),
            "fill_s": fill_s,
            "report_input_s": t1 - t0,
            "render_s": t2 - t1,
            "write_s": t3 - t2,
            "total_s": t3 - t0,
            "html_bytes": float(out.stat().st_size) if out.exists() else 0.0,
        }


def render_seconds(n_units: int = 100_000, seed: int = 1) -> dict[str, float]:
    """The render alone, from a ReportInput built in memory (no database)."""
    from ate.report.html import render_report

    report = report_input_of(simulate_line(n_units, seed=seed, days=30.0))
    t0 = time.perf_counter()
    page = render_report(report)
    return {"render_s": time.perf_counter() - t0, "html_bytes": float(len(page.encode()))}


def _rows(result: dict[str, float]) -> Iterator[str]:
    for key, value in result.items():
        yield f"| {key} | {value:,.3f} |" if key.endswith("_s") else f"| {key} | {value:,.0f} |"


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    n = int(args[0]) if args else 100_000
    result = report_build_seconds(n)
    print(f"ate report on {n:,} units (goal: total_s under 10 s)\n")
    print("| measure | value |\n|---|---|")
    print("\n".join(_rows(result)))


if __name__ == "__main__":
    main()
