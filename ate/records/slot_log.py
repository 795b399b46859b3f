"""JSON-lines logs per slot (and one per panel) through structlog: events and DUT output.

Each slot has its own file so a unit's story reads top to bottom; secrets are redacted
by a processor before anything is rendered. The test-protocol exchange is kept too
(`dut_tx` / `dut_rx`, each line cut at WIRE_LINE_MAX characters, provisioning payloads
left out), so that a slot log can be replayed as a simulated DUT (ate.sim.replay).
May import ate.model and ate.records only.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TextIO

import structlog

from ate.model.events import (
    DutLog,
    DutWire,
    Event,
    FlashProgress,
    Measured,
    PanelEnded,
    PanelStarted,
    SlotEnded,
    SlotPhase,
    SlotStarted,
    StepEnded,
    StepStarted,
    UnitIdentified,
)
from ate.records.redact import structlog_processor

# A protocol line is at most 4 KiB on the wire (longer ones are dropped as noise); the
# log keeps the first WIRE_LINE_MAX characters and says how long the line was.
WIRE_LINE_MAX = 1024
# Commands whose arguments and reply fields carry key material, CSRs and signatures:
# the log keeps that the exchange happened and how it ended, never its payload.
PAYLOAD_LEFT_OUT = ("prov.",)
LEFT_OUT = "[payload left out]"


def wire_fields(event: DutWire) -> dict[str, Any]:
    """What the slot log keeps of a protocol line: its text (cut, or its payload left
    out), and the marks a reader (or a replay) needs."""
    line = event.line
    fields: dict[str, Any] = {}
    if event.command.startswith(PAYLOAD_LEFT_OUT) and not event.corrupt:
        head = line.split(" ", 2)
        if event.direction == "tx" or head[1:2] == ["OK"]:
            # "!7 prov.csr subject=..." -> "!7 prov.csr"; "@7 OK csr=..." -> "@7 OK"
            kept = " ".join(head[:2])
            if kept != line:
                line = f"{kept} {LEFT_OUT}"
                fields["left_out"] = "payload"
    if len(line) > WIRE_LINE_MAX:
        fields["cut"] = len(line)  # the line's length; the log has its start
        line = line[:WIRE_LINE_MAX]
    out: dict[str, Any] = {"line": line}
    if event.command:
        out["command"] = event.command
    if event.resend:
        out["resend"] = True
    if event.corrupt:
        out["corrupt"] = event.corrupt
    out.update(fields)
    return out


def _logger(stream: TextIO, **context: Any) -> Any:
    return structlog.wrap_logger(
        structlog.WriteLogger(stream),
        processors=[
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog_processor,
            structlog.processors.JSONRenderer(sort_keys=False),
        ],
        context_class=dict,
    ).bind(**context)


class SlotLogWriter:
    """`logs/<panel>-slot<N>.jsonl` per slot, `logs/<panel>.jsonl` for the panel."""

    def __init__(self, out_dir: Path) -> None:
        self.dir = out_dir / "logs"
        self._files: dict[tuple[str, int], TextIO] = {}
        self._loggers: dict[tuple[str, int], Any] = {}
        self._flash_pct: dict[tuple[str, int], int] = {}

    def _open(self, panel_id: str, slot: int) -> Any:
        key = (panel_id, slot)
        log = self._loggers.get(key)
        if log is None:
            self.dir.mkdir(parents=True, exist_ok=True)
            name = f"{panel_id}.jsonl" if slot == 0 else f"{panel_id}-slot{slot}.jsonl"
            path = self.dir / name
            f = path.open("a", encoding="utf-8", buffering=1 << 16)
            self._files[key] = f
            log = _logger(f, panel=panel_id, **({"slot": slot} if slot else {}))
            self._loggers[key] = log
        return log

    def _close(self, panel_id: str, slot: int) -> None:
        self._flash_pct.pop((panel_id, slot), None)
        self._loggers.pop((panel_id, slot), None)
        f = self._files.pop((panel_id, slot), None)
        if f is not None:
            f.close()

    def __call__(self, event: Event) -> None:
        if isinstance(event, DutLog):
            self._open(event.panel_id, event.slot).info(event.source, line=event.line)
        elif isinstance(event, DutWire):
            self._open(event.panel_id, event.slot).info(
                f"dut_{event.direction}", **wire_fields(event)
            )
        elif isinstance(event, Measured):
            m = event.measurement
            self._open(event.panel_id, event.slot).info(
                "measurement",
                step=event.step,
                name=m.name,
                value=m.value,
                unit=m.unit,
                limits=m.limits.describe() if m.limits else None,
                verdict=m.verdict.value,
            )
        elif isinstance(event, FlashProgress):
            # esptool reports every block; a line per tenth is enough to read a slot's story.
            key = (event.panel_id, event.slot)
            pct = 100 * event.done // event.total if event.total else 100
            if pct // 10 != self._flash_pct.get(key, -1) // 10 or pct == 100:
                self._flash_pct[key] = pct
                self._open(event.panel_id, event.slot).info(
                    "flash_progress", stage=event.stage, done=event.done, total=event.total
                )
        elif isinstance(event, StepStarted):
            self._open(event.panel_id, event.slot).info(
                "step_start", step=event.name, index=event.index, attempt=event.attempt
            )
        elif isinstance(event, StepEnded):
            r = event.result
            self._open(event.panel_id, event.slot).info(
                "step_end",
                step=r.name,
                verdict=r.verdict.value,
                reason=r.reason,
                retries=r.retries,
                duration_s=round(r.duration_s, 6),
                resource_wait_s=round(r.resource_wait_s, 6),
            )
        elif isinstance(event, SlotPhase):
            self._open(event.panel_id, event.slot).info("phase", phase=event.phase)
        elif isinstance(event, UnitIdentified):
            u = event.unit
            self._open(event.panel_id, event.slot).info(
                "unit", mac=u.mac, chip=u.chip, firmware=u.firmware, protocol=u.protocol
            )
        elif isinstance(event, SlotStarted):
            self._open(event.panel_id, event.slot).info("slot_start")
        elif isinstance(event, SlotEnded):
            res = event.result
            self._open(event.panel_id, res.slot).info(
                "slot_end",
                verdict=res.verdict.value,
                reason=res.reason,
                duration_s=round(res.duration_s, 6),
            )
            self._close(event.panel_id, res.slot)
        elif isinstance(event, PanelStarted):
            self._open(event.panel_id, 0).info(
                "panel_start",
                fixture=event.fixture,
                station=event.station,
                operator=event.operator,
                sequence=event.sequence,
                slots=list(event.slots),
            )
        elif isinstance(event, PanelEnded):
            self._open(event.panel_id, 0).info(
                "panel_end",
                verdicts={str(k): v.value for k, v in event.verdicts.items()},
                duration_s=round(event.duration_s, 6),
                aborted=event.aborted,
            )
            self._close(event.panel_id, 0)

    def close(self) -> None:
        for f in self._files.values():
            f.close()
        self._files.clear()
        self._loggers.clear()
