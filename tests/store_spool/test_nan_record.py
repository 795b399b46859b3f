"""A record holding a non-finite reading is spooled and delivered like any other: the
reading is null in the line database with its raw text, and the unit is ERROR there."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

from ate.model.events import Event, SlotEnded
from ate.model.limits import Limits
from ate.model.results import Measurement, StepResult
from ate.model.verdict import Verdict
from ate.station.store_sink import StoreSink
from tests.store_spool.conftest import Db
from tests.store_spool.test_sink import DRAIN_S, feed, sinks, spool_path, start

__all__ = ["sinks", "spool_path"]  # fixtures shared with test_sink


def _with_nan(events: list[Event], slot: int) -> list[Event]:
    out: list[Event] = []
    for e in events:
        if isinstance(e, SlotEnded) and e.result.slot == slot:
            nan = Measurement(
                "rf.ch6.rssi", math.nan, "dBm", Limits(-65, -35, "dBm"), Verdict.ERROR
            )
            step = StepResult(0, "rf_golden", "plugin", Verdict.ERROR, (nan,), reason="nan")
            e = SlotEnded(
                e.panel_id, dataclasses.replace(e.result, verdict=Verdict.ERROR, steps=(step,))
            )
        out.append(e)
    return out


async def test_a_nan_reading_is_delivered_as_null_with_its_raw_text(
    sqlite_db: Db, spool_path: Path, sinks: list[StoreSink], panels: Any
) -> None:
    sink, bus = start(sinks, sqlite_db, spool_path)
    events = _with_nan(panels().panel(slots=2), slot=2)
    feed(bus, sink, events)  # asserts every record is in the spool when its slot ends
    assert await sink.drain(DRAIN_S) == 0
    rows = sqlite_db.sql(
        "SELECT r.verdict, m.value, m.text, m.attempt FROM measurements m "
        "JOIN test_runs r ON r.run_id = m.run_id WHERE m.name = 'rf.ch6.rssi'"
    )
    assert rows == [("ERROR", None, "nan", 0)]
    # the whole record as stored is strict JSON: null and the raw text, no NaN token
    (stored,) = sqlite_db.sql("SELECT record FROM test_runs WHERE verdict = 'ERROR'")
    assert "NaN" not in stored[0]
    (m,) = json.loads(stored[0])["steps"][0]["measurements"]
    assert m["value"] is None and m["raw"] == "nan"
