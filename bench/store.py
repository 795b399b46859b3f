"""Records store throughput: unit records a second through `ingest()`, one transaction
each as the station writes them, on SQLite and PostgreSQL; and how long `report_input()`
takes to load a large window (100,000 runs, 5 numeric measurements each).

`python -m bench.store [n]`. PostgreSQL is ATE_BENCH_PG (default
postgresql://postgres@127.0.0.1:5432/test), in a schema made for the run and dropped after.
"""

from __future__ import annotations

import contextlib
import copy
import os
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg

from ate.model.events import PanelStarted
from ate.model.limits import Limits
from ate.model.results import Measurement, SlotResult, StepResult, UnitIdentity
from ate.model.verdict import Verdict
from ate.records.unit_record import build_record
from ate.store import open_store

PG_URL = os.environ.get("ATE_BENCH_PG", "postgresql://postgres@127.0.0.1:5432/test")

SEQUENCE = {
    "name": "s3-devkit-functional",
    "version": "1.2.0",
    "file": "s3-devkit.yaml",
    "sha256": "5" * 64,
    "test_firmware": {"file": "ate-testfw.bin", "sha256": "f" * 64, "version": "1.0.0"},
}

# (step, type, [(measurement, unit, low, high, mean, sigma)]): 10 steps, 8 numeric readings.
PLAN: list[tuple[str, str, list[tuple[str, str, float | None, float | None, float, float]]]] = [
    ("boot_pin", "gpio_read", [("level", "", None, None, 1, 0)]),
    ("supply", "measure", [("v3v3", "V", 3.2, 3.4, 3.3, 0.02), ("i_idle", "mA", 30, 60, 42, 2)]),
    ("flash_id", "command", []),
    ("rf", "signal_board", [("rssi", "dBm", -60, -40, -50, 2), ("freq", "ppm", -20, 20, 0, 4)]),
    ("fw_version", "command", []),
    ("gpio_loop", "gpio_pairs", [("pairs_ok", "", None, None, 12, 0)]),
    ("tx_power", "measure", [("p_11b", "dBm", 18.5, 22.5, 20.5, 0.8)]),
    ("sleep", "measure", [("i_sleep", "uA", 0, 20, 8, 1)]),
    ("adc", "measure", [("vref", "V", 1.0, 1.2, 1.1, 0.01)]),
    ("uptime", "command", []),
]


def make_record(n: int, rng: random.Random, *, fail_rate: float = 0.08) -> dict[str, Any]:
    """Unit record number n, as build_record() makes it: mostly PASS, some FAIL."""
    mac = f"24:0a:c4:{n >> 16 & 0xFF:02x}:{n >> 8 & 0xFF:02x}:{n & 0xFF:02x}"
    stamp = 1_800_000_000 + n * 5
    started = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + ".123+00:00"
    panel = PanelStarted(
        f"bench-{n:08d}", "sim-quad", "st1", "op1", dict(SEQUENCE), (1, 2, 3, 4), started
    )
    fail_at = rng.randrange(len(PLAN)) if rng.random() < fail_rate else -1
    steps: list[StepResult] = []
    t = 0.05
    for index, (name, typ, readings) in enumerate(PLAN):
        ms: list[Measurement] = []
        for mname, unit, low, high, mean, sigma in readings:
            limits = Limits(low, high, unit) if low is not None else Limits(unit=unit, expect=mean)
            value = round(rng.gauss(mean, sigma), 4) if sigma else mean
            if index == fail_at and not ms:
                value = (high or mean) + 1
            ms.append(Measurement(mname, value, unit, limits, limits.judge(value)))
        if typ == "command" and not ms:
            ms.append(Measurement("reply", "ok", ""))
        verdict = Verdict.FAIL if index == fail_at else Verdict.PASS
        duration = round(rng.uniform(0.01, 0.3), 4)
        steps.append(StepResult(index, name, typ, verdict, tuple(ms), "", 0, t, duration))
        t += duration
        if verdict is Verdict.FAIL:
            break
    result = SlotResult(
        n % 4 + 1,
        Verdict.FAIL if fail_at >= 0 else Verdict.PASS,
        "out of limits" if fail_at >= 0 else "",
        UnitIdentity(mac, "esp32s3", "ate-testfw/1.0.0", 1),
        tuple(steps),
        round(t, 4),
    )
    return build_record(panel, result)


def records_per_second(url: str, n: int) -> float:
    """Ingest n realistic records one transaction each (as the station does); records/s."""
    rng = random.Random(1)
    records = [make_record(i, rng) for i in range(n)]
    store = open_store(url)
    try:
        t0 = time.perf_counter()
        for record in records:
            store.ingest(record)
        elapsed = time.perf_counter() - t0
    finally:
        store.close()
    return n / elapsed


def report_input_seconds(url: str, runs: int = 100_000, per_run: int = 5) -> float:
    """Fill the store with `runs` small records of `per_run` numeric readings (in batches),
    then time one report_input() over all of them."""
    rng = random.Random(2)
    template = make_record(0, rng, fail_rate=0)
    template["steps"] = template["steps"][:2]
    step = template["steps"][1]
    step["measurements"] = [{**step["measurements"][0], "name": f"m{i}"} for i in range(per_run)]
    store = open_store(url)
    try:
        batch: list[dict[str, Any]] = []
        for n in range(runs):
            rec = copy.deepcopy(template)
            rec["record_id"] = f"fill-{n:08d}-slot1"
            rec["panel_id"] = f"fill-{n:08d}"
            rec["unit"]["mac"] = ":".join(
                ["24", "0b", *(f"{n >> s & 0xFF:02x}" for s in (24, 16, 8, 0))]
            )
            stamp = 1_800_000_000 + n
            rec["panel_started_at"] = (
                time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(stamp)) + ".000+00:00"
            )
            for m in rec["steps"][1]["measurements"]:
                m["value"] = round(rng.gauss(3.3, 0.02), 4)
            batch.append(rec)
            if len(batch) == 2000:
                store.ingest_many(batch)
                batch = []
        if batch:
            store.ingest_many(batch)
        t0 = time.perf_counter()
        report = store.report_input(None, None)
        elapsed = time.perf_counter() - t0
        assert len(report.runs) == runs
        assert sum(len(s.values) for s in report.series) >= runs * per_run
    finally:
        store.close()
    return elapsed


@contextlib.contextmanager
def pg_schema() -> Iterator[str]:
    """A URL into a fresh schema of the benchmark database, dropped afterwards."""
    schema = f"bench_{secrets.token_hex(4)}"
    with psycopg.connect(PG_URL, autocommit=True, connect_timeout=5) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        try:
            sep = "&" if "?" in PG_URL else "?"
            yield f"{PG_URL}{sep}options=-csearch_path%3D{schema}"
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 500
    report_runs = int(sys.argv[2]) if len(sys.argv) > 2 else 100_000
    rows: list[tuple[str, str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        rate = records_per_second(f"sqlite:///{Path(tmp) / 'ingest.db'}", n)
        rows.append(("SQLite ingest (WAL, synchronous=FULL)", f"{rate:,.0f} records/s"))
        secs = report_input_seconds(f"sqlite:///{Path(tmp) / 'report.db'}", report_runs)
        rows.append((f"SQLite report_input, {report_runs:,} runs x 5", f"{secs:.2f} s"))
    try:
        with pg_schema() as url:
            rate = records_per_second(url, n)
        rows.append(("PostgreSQL ingest", f"{rate:,.0f} records/s"))
        with pg_schema() as url:
            secs = report_input_seconds(url, report_runs)
        rows.append((f"PostgreSQL report_input, {report_runs:,} runs x 5", f"{secs:.2f} s"))
    except psycopg.OperationalError as exc:
        rows.append(("PostgreSQL", f"not reachable at {PG_URL}: {str(exc).splitlines()[0]}"))
    print(f"records store, n={n} (one transaction per record)")
    print("| measure | result |\n|---|---|")
    for name, value in rows:
        print(f"| {name} | {value} |")


if __name__ == "__main__":
    main()
