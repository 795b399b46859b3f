"""The station spool: durable, ordered, delivered rows pruned after N days, a corrupt
file moved aside (never deleted) and replaced."""

from __future__ import annotations

import datetime as dt
import logging
import sqlite3
from pathlib import Path
from typing import Any
from unittest.mock import ANY

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ate.store.spool import AuditHead, Spool, SpoolCorrupt, SpoolError, default_spool_path


def rec(n: int, **extra: Any) -> dict[str, Any]:
    return {"record_id": f"panel-a-slot{n}", "verdict": "PASS", "n": n, **extra}


def test_records_come_back_in_order_after_reopening(tmp_path: Path) -> None:
    path = default_spool_path(tmp_path / "state")
    with Spool(path) as spool:
        for n in range(5):
            spool.append(rec(n))
        audit = spool.append_audit("st1", "run", {"panel_id": "panel-a"})
    with Spool(path) as spool:
        assert [k for k, _ in spool.pending()] == [f"panel-a-slot{n}" for n in range(5)]
        assert spool.pending()[2][1] == rec(2)
        items = spool.pending_items()
        assert [i.kind for i in items] == ["record"] * 5 + ["audit"]
        assert items[-1].key == audit
        payload = items[-1].body["payload"]
        assert payload == {"panel_id": "panel-a", "spool_id": audit, "spooled_at": ANY}
        assert dt.datetime.fromisoformat(payload["spooled_at"]).tzinfo is not None
        spool.mark_delivered("panel-a-slot1")
        spool.mark_delivered(audit, head=AuditHead("st1", 7, "ab" * 32, "2026-11-21T07:00:00Z"))
        assert [k for k, _ in spool.pending()] == [f"panel-a-slot{n}" for n in (0, 2, 3, 4)]
        assert spool.is_delivered("panel-a-slot1") and not spool.is_delivered("panel-a-slot0")
        assert spool.counts().pending == 4 and spool.counts().delivered == 2
        assert spool.counts().pending_records == 4
        assert spool.audit_heads()["st1"].seq == 7


def test_same_record_twice_is_harmless_a_different_one_is_refused(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db") as spool:
        spool.append(rec(1))
        spool.append(rec(1))
        assert len(spool.pending()) == 1
        with pytest.raises(SpoolError, match="already spooled with different content"):
            spool.append(rec(1, verdict="FAIL"))
        with pytest.raises(SpoolError, match="record_id"):
            spool.append({"verdict": "PASS"})
        with pytest.raises(SpoolError, match="not plain JSON"):
            spool.append({"record_id": "x", "v": float("nan")})


def test_audit_head_never_moves_back(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db") as spool:
        a = spool.append_audit("st1", "run", {})
        b = spool.append_audit("st1", "run", {})
        spool.mark_delivered(a, head=AuditHead("st1", 5, "5" * 64, "t"))
        spool.mark_delivered(b, head=AuditHead("st1", 4, "4" * 64, "t"))
        assert spool.audit_heads()["st1"].seq == 5


def test_delivered_rows_are_kept_n_days_then_pruned(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db", keep_days=3) as spool:
        spool.append(rec(1))
        spool.append(rec(2))
        spool.mark_delivered("panel-a-slot1")
        now = dt.datetime.now(dt.UTC)
        assert spool.prune(now + dt.timedelta(days=2)) == 0
        assert spool.has("panel-a-slot1")  # proof of delivery, still there
        assert spool.prune(now + dt.timedelta(days=4)) == 1
        assert not spool.has("panel-a-slot1")
        assert spool.has("panel-a-slot2")  # undelivered rows are never pruned
        assert spool.prune(now + dt.timedelta(days=400)) == 0


def test_rejected_rows_are_kept_and_offered_again_at_next_open(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    with Spool(path) as spool:
        spool.append(rec(1))
        spool.append(rec(2))
        spool.mark_rejected("panel-a-slot1", "bad record")
        assert [k for k, _ in spool.pending()] == ["panel-a-slot2"]
        assert spool.rejected() == [("panel-a-slot1", "bad record")]
        assert spool.counts().rejected == 1
        assert spool.prune(dt.datetime.now(dt.UTC) + dt.timedelta(days=999)) == 0
    with Spool(path) as spool:
        assert [k for k, _ in spool.pending()] == ["panel-a-slot1", "panel-a-slot2"]


def test_marking_an_unknown_key_is_an_error(tmp_path: Path) -> None:
    with Spool(tmp_path / "s.db") as spool, pytest.raises(SpoolError, match="nothing named"):
        spool.mark_delivered("nope")


def test_append_is_on_disk_when_it_returns(tmp_path: Path) -> None:
    """Another connection (another process would do the same) sees the row at once."""
    path = tmp_path / "s.db"
    with Spool(path) as spool:
        spool.append(rec(9))
        other = sqlite3.connect(path)
        try:
            assert other.execute("SELECT key FROM outbox").fetchall() == [("panel-a-slot9",)]
            assert other.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        finally:
            other.close()


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_spool_is_moved_aside_and_replaced(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "spool.db"
    with Spool(path) as spool:
        for n in range(300):
            spool.append(rec(n, pad="x" * 1000))
    data = path.read_bytes()
    damaged = b"this is not a database " * 200 if damage == "garbage" else data[: len(data) // 2]
    path.write_bytes(damaged)

    with pytest.raises(SpoolCorrupt, match=r"station spool .*spool\.db is corrupt"):
        Spool(path)
    assert path.read_bytes() == damaged  # a plain open never moves anything

    with caplog.at_level(logging.WARNING, logger="ate.store.spool"):
        spool = Spool.open_or_recover(path)
    with spool:
        asides = list(tmp_path.glob("spool.db.corrupt-*"))
        assert len(asides) == 1
        assert asides[0].read_bytes() == damaged  # kept, byte for byte
        assert spool.notice is not None
        assert str(asides[0]) in spool.notice and "not deleted" in spool.notice
        assert [r.getMessage() for r in caplog.records] == [spool.notice]
        salvaged = len(spool.pending())
        if damage == "garbage":
            assert salvaged == 0
        else:  # the readable start of the table comes back, in order
            assert 0 < salvaged < 300
            assert [k for k, _ in spool.pending()] == [f"panel-a-slot{n}" for n in range(salvaged)]
        spool.append(rec(1000))
        assert spool.pending()[-1][0] == "panel-a-slot1000"
    with Spool(path) as again:  # the new spool is a good one
        assert again.pending()[-1][0] == "panel-a-slot1000"


def test_a_database_that_is_not_a_spool_is_refused_not_moved(tmp_path: Path) -> None:
    path = tmp_path / "ate.db"
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE units (chip_id TEXT)")
    conn.commit()
    conn.close()
    with pytest.raises(SpoolError, match="not a station spool") as exc:
        Spool.open_or_recover(path)
    assert not isinstance(exc.value, SpoolCorrupt)
    assert path.exists() and not list(tmp_path.glob("*.corrupt-*"))


_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@settings(max_examples=60, deadline=None)
@given(bodies=st.lists(st.dictionaries(st.text(), _json, max_size=5), min_size=1, max_size=5))
def test_any_json_record_comes_back_unchanged(tmp_path_factory: Any, bodies: Any) -> None:
    path = tmp_path_factory.mktemp("hyp") / "s.db"
    records = [{**b, "record_id": f"r{i}"} for i, b in enumerate(bodies)]
    with Spool(path) as spool:
        for r in records:
            spool.append(r)
    with Spool(path) as spool:
        assert [r for _, r in spool.pending()] == records
