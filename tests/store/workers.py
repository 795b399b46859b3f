"""Functions that run in spawned OS processes for the concurrency tests. Each opens its
own store, waits at a barrier so all start together, and reports through a queue."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from ate.store import InvariantViolation, open_store


def reports(fn: Callable[..., None]) -> Callable[..., None]:
    """Whatever happens, the parent gets one message: a result or ("error", what)."""

    @functools.wraps(fn)
    def run(*args: Any) -> None:
        out = args[-1]
        try:
            fn(*args)
        except BaseException as exc:
            out.put(("error", f"{type(exc).__name__}: {exc}"))
            raise

    return run


@reports
def claim_serials(url: str, pairs: list[tuple[str, str]], barrier: Any, out: Any) -> None:
    """Claim each (chip, serial); the serials overlap with the other processes' lists."""
    store = open_store(url)
    won: list[tuple[str, str]] = []
    refused = 0
    barrier.wait(timeout=60)
    for chip, serial in pairs:
        try:
            store.claim_serial(chip, serial)
            won.append((chip, serial))
        except InvariantViolation:
            refused += 1
    store.close()
    out.put(("claim", won, refused))


@reports
def ingest_all(url: str, records: list[dict[str, Any]], barrier: Any, out: Any) -> None:
    store = open_store(url)
    barrier.wait(timeout=60)
    new = sum(store.ingest(r) for r in records)
    store.close()
    out.put(("ingest", new))


@reports
def append_audit(url: str, station: str, who: int, n: int, barrier: Any, out: Any) -> None:
    store = open_store(url)
    barrier.wait(timeout=60)
    seqs = [store.audit_append(station, "burn", {"writer": who, "i": i}).seq for i in range(n)]
    store.close()
    out.put(("audit", who, seqs))


@reports
def open_only(url: str, barrier: Any, out: Any) -> None:
    barrier.wait(timeout=60)
    store = open_store(url)  # migrates: all at once on a fresh database
    version = store.schema_version()
    store.close()
    out.put(("open", version))
