"""Several OS processes (spawned, each with its own connection) on one store at once:
the invariants hold because the database enforces them, not because of luck."""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from typing import Any

from ate.store import Store, verify_chain
from ate.store.queries import known_version
from tests.store import workers
from tests.store.conftest import Raw
from tests.store.records import mac_of, make_record

N_PROC = 4


def run_processes(
    target: Callable[..., None], args_for: Callable[[int], tuple[Any, ...]]
) -> list[Any]:
    """Start N_PROC processes that meet at a barrier, then collect one result from each."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(N_PROC)
    out = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args_for(i), barrier, out)) for i in range(N_PROC)]
    for p in procs:
        p.start()
    try:
        results = [out.get(timeout=120) for _ in procs]  # a guard against a hang, not a timing
    finally:
        for p in procs:
            p.join(timeout=60)
    assert [r for r in results if r[0] == "error"] == []
    assert [p.exitcode for p in procs] == [0] * N_PROC
    return results


def test_processes_opening_a_fresh_database_migrate_it_once(store_url: str, raw: Raw) -> None:
    results = run_processes(workers.open_only, lambda i: (store_url,))
    assert results == [("open", known_version())] * N_PROC
    assert raw("SELECT COUNT(*) FROM schema_migrations")[0][0] == known_version()


def test_overlapping_serial_claims_give_each_serial_once(
    store_url: str, store: Store, raw: Raw
) -> None:
    serials = [f"AS3-{i:05d}" for i in range(20)]

    def pairs(proc: int) -> tuple[Any, ...]:
        # Every process claims every serial, each for a unit of its own, in its own order.
        order = serials[proc:] + serials[:proc]
        return (store_url, [(mac_of(1000 * (proc + 1) + i), s) for i, s in enumerate(order)])

    results = run_processes(workers.claim_serials, pairs)
    won = [pair for _, got, _ in results for pair in got]
    refused = sum(r for _, _, r in results)
    assert sorted(s for _, s in won) == serials  # each serial won exactly once
    assert refused == N_PROC * len(serials) - len(serials)
    rows = raw("SELECT serial, chip_id FROM units WHERE serial IS NOT NULL")
    assert sorted(rows) == sorted((s, c) for c, s in won)


def test_processes_ingesting_the_same_records_store_each_once(
    store_url: str, store: Store, raw: Raw
) -> None:
    records = [make_record(n, mac=mac_of(n % 20)) for n in range(50)]  # some units retested
    results = run_processes(workers.ingest_all, lambda i: (store_url, records))
    assert sum(new for _, new in results) == 50
    assert raw("SELECT COUNT(*) FROM test_runs")[0][0] == 50
    steps = sum(len(r["steps"]) for r in records)
    assert raw("SELECT COUNT(*) FROM steps")[0][0] == steps
    # Attempts are a clean 1..k per unit: no two processes numbered the same run.
    for chip in {mac_of(n % 20) for n in range(50)}:
        h = store.unit_history(chip)
        assert h is not None
        assert [r.attempt for r in h.runs] == list(range(1, len(h.runs) + 1))
    assert raw("SELECT SUM(runs) FROM units")[0][0] == 50


def test_processes_appending_to_one_station_make_one_intact_chain(
    store_url: str, store: Store
) -> None:
    per = 15
    results = run_processes(workers.append_audit, lambda i: (store_url, "st1", i, per))
    seqs = sorted(s for _, _, got in results for s in got)
    assert seqs == list(range(1, N_PROC * per + 1))
    entries = store.audit_entries("st1")
    assert len(entries) == N_PROC * per
    assert verify_chain(entries, expected_head=(entries[-1].seq, entries[-1].hash)) == []
    writers = {e.payload["writer"] for e in entries}
    assert writers == set(range(N_PROC))
