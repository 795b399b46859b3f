"""One JSON record per unit, whatever happened, written atomically off the event loop."""

from __future__ import annotations

import json
import os
import tempfile
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import ate
from ate.model.events import Event, PanelEnded, PanelStarted, SlotEnded
from ate.model.results import SlotResult
from ate.records.redact import redact

RECORD_SCHEMA = "ate.unit-record/1"


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write, fsync, rename: a reader sees the old file or the whole new one, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def write_json_atomic(path: Path, data: Any) -> None:
    write_bytes_atomic(path, (json.dumps(data, indent=2, sort_keys=False) + "\n").encode())


def build_record(panel: PanelStarted, result: SlotResult) -> dict[str, Any]:
    unit = result.unit
    record: dict[str, Any] = redact(
        {
            "schema": RECORD_SCHEMA,
            "record_id": f"{panel.panel_id}-slot{result.slot}",
            "panel_id": panel.panel_id,
            "panel_started_at": panel.started_at,
            "ate_version": ate.__version__,
            "station": panel.station,
            "operator": panel.operator,
            "fixture": panel.fixture,
            "slot": result.slot,
            "unit": {
                "mac": unit.mac if unit else None,
                "chip": unit.chip if unit else None,
                "test_firmware": unit.firmware if unit else None,
                "protocol": unit.protocol if unit else None,
            },
            "sequence": panel.sequence,
            "verdict": result.verdict.value,
            "reason": result.reason,
            "duration_s": round(result.duration_s, 6),
            "steps": [s.as_dict() for s in result.steps],
            **result.extra,  # e.g. "rom": chip identity and the images written or found
        }
    )
    return record


class RecordWriter:
    """Subscribes to the bus; writes `records/<panel>-slot<N>.json` as each slot ends.

    Files are written on one worker thread so an fsync never stalls other slots; call
    `close()` to wait until every record is on disk.
    """

    def __init__(self, out_dir: Path) -> None:
        self.dir = out_dir / "records"
        self._panels: dict[str, PanelStarted] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="records")
        self._writes: list[Future[None]] = []

    def __call__(self, event: Event) -> None:
        if isinstance(event, PanelStarted):
            self._panels[event.panel_id] = event
        elif isinstance(event, SlotEnded):
            record = build_record(self._panels[event.panel_id], event.result)
            path = self.dir / f"{record['record_id']}.json"
            self._writes.append(self._pool.submit(write_json_atomic, path, record))
        elif isinstance(event, PanelEnded):
            # A station runs panel after panel: keep nothing of one that is over.
            self._panels.pop(event.panel_id, None)
            self._writes = [fut for fut in self._writes if not fut.done() or fut.exception()]

    def close(self) -> None:
        for fut in self._writes:
            fut.result()  # re-raise a failed write: a lost record must not pass silently
        self._writes.clear()
        self._pool.shutdown(wait=True)
