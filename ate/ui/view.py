"""StationView: what the operator's page shows, per fixture and slot, built only from
the executive's events and the station's status. The page renders its snapshot.

Owns the tile state (waiting, testing, provisioning, locking, PASS, ...), the current
step and progress, the failing measurement, and the shift counters. Imports ate.model.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from ate.model.events import (
    Event,
    PanelEnded,
    PanelStarted,
    ProvisionAct,
    SlotEnded,
    SlotPhase,
    SlotStarted,
    StepEnded,
    StepStarted,
    UnitIdentified,
)
from ate.model.results import Measurement, StepResult
from ate.model.verdict import Verdict
from ate.ui.labels import LabelPrinter
from ate.ui.prompts import PromptBroker
from ate.ui.scans import ScanBook

# Verdicts the page shows as a tile's final state; anything else is still running.
_FINAL = {v.value for v in (Verdict.PASS, Verdict.FAIL, Verdict.ERROR, Verdict.ABORTED)}
# Slot phases the scheduler reports, as the tile's state words.
_PHASE_STATE = {"provision": "provisioning"}


class FixtureStatusLike(Protocol):
    """The part of ate.station.status.FixtureStatus the page reads (read-only)."""

    @property
    def fixture(self) -> str: ...
    @property
    def online(self) -> bool: ...
    @property
    def state(self) -> str: ...
    @property
    def refusal(self) -> str | None: ...


class StationStatusLike(Protocol):
    """The part of ate.station.status.StationStatus the page reads (the station owns it)."""

    station: str

    @property
    def fixtures(self) -> Mapping[str, FixtureStatusLike]: ...

    def subscribe(self, listener: Callable[[Any], None]) -> None: ...


@dataclass
class Tile:
    slot: int
    state: str = "waiting"
    step: str = ""
    step_index: int = 0
    steps_total: int = 0
    started: float | None = None  # monotonic
    ended: float | None = None
    mac: str = ""
    serial: str = ""
    failing: dict[str, Any] | None = None  # step, measurement, value, limits, unit
    reason: str = ""

    def snapshot(
        self,
        now: float,
        prompt: dict[str, Any] | None = None,
        label: dict[str, Any] | None = None,
        scanned: str | None = None,
    ) -> dict[str, Any]:
        elapsed = 0.0
        if self.started is not None:
            elapsed = (self.ended if self.ended is not None else now) - self.started
        return {
            "slot": self.slot,
            "state": self.state,
            "step": self.step,
            "progress": [self.step_index, self.steps_total],
            "elapsed_s": round(elapsed, 1),
            "mac": self.mac,
            "serial": self.serial,
            "failing": self.failing,
            "reason": self.reason,
            "prompt": prompt,
            "label": label,
            "scanned": scanned,
        }


@dataclass
class FixtureView:
    fixture: str
    online: bool = True
    state: str = "waiting"
    refusal: str | None = None
    sequence: str = ""
    operator: str = ""
    panel_id: str = ""
    tiles: dict[int, Tile] = field(default_factory=dict)


def _number(value: object) -> str:
    """A measured value as text; a value that is not a finite number is said so."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return f"{value:g}"


def _failing(step: StepResult) -> dict[str, Any]:
    bad: Measurement | None = next(
        (m for m in step.measurements if m.verdict is not Verdict.PASS), None
    )
    if bad is None:
        return {
            "step": step.name,
            "measurement": "",
            "value": "",
            "limits": "",
            "unit": "",
            "reason": step.reason,
        }
    limits = bad.limits.describe() if bad.limits is not None else ""
    return {
        "reason": step.reason,
        "step": step.name,
        "measurement": bad.name,
        "value": _number(bad.value),
        "limits": limits,
        "unit": bad.unit,
    }


class StationView:
    """Feed it events (`on_event`, an EventBus subscriber) and the station's status
    (`watch`); read `snapshot()`; await `changed(version)` to push updates."""

    def __init__(
        self,
        station: str,
        *,
        steps_total: int = 0,
        lot: str = "",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.station = station
        self.lot = lot
        self.fixtures: dict[str, FixtureView] = {}
        self.steps_total = steps_total
        self.units = 0
        self.first_pass = 0
        self.shift_started = clock()
        self.database = "unknown"
        self.spool = 0
        self.version = 0
        self.changed_at_ms = time.time() * 1000.0
        self._recent: deque[tuple[int, float]] = deque(maxlen=4096)  # (version, ms)
        self._clock = clock
        self._panels: dict[str, str] = {}  # panel id -> fixture
        self._seen_macs: set[str] = set()
        self._waiters: list[asyncio.Future[int]] = []
        # The station passes this to the slots (SlotOptions.prompts); tiles show its questions.
        self.prompts = PromptBroker(self._bump)
        self.labels: LabelPrinter | None = None  # attach_labels(): previews and print state
        self.scans: ScanBook | None = None  # attach_scans(): labels scanned per slot

    # -- inputs ---------------------------------------------------------------------

    def watch(self, status: StationStatusLike) -> None:
        self.station = status.station
        status.subscribe(self._on_status)
        self._on_status(status)

    def _on_status(self, status: StationStatusLike) -> None:
        for name, fs in status.fixtures.items():
            fv = self.fixtures.setdefault(name, FixtureView(name))
            fv.online = fs.online
            fv.state = fs.state
            fv.refusal = fs.refusal
        self._bump()

    def attach_labels(self, printer: LabelPrinter) -> None:
        self.labels = printer
        printer.on_change = self._bump

    def attach_scans(self, book: ScanBook) -> None:
        """Tiles for every slot before the first panel (scans come before it) and each
        tile's scanned label."""
        self.scans = book
        book.on_change = self._bump
        for name, slots in book.slots.items():
            fv = self.fixtures.setdefault(name, FixtureView(name))
            for slot in slots:
                fv.tiles.setdefault(slot, Tile(slot, steps_total=self.steps_total))
        self._bump()

    def line_state(self, database: str, spool: int) -> None:
        """The line database ("online"/"offline") and how many records wait in the spool."""
        self.database, self.spool = database, spool
        self._bump()

    def on_event(self, event: Event) -> None:
        if isinstance(event, PanelStarted):
            fv = self.fixtures.setdefault(event.fixture, FixtureView(event.fixture))
            seq = event.sequence
            fv.sequence = f"{seq.get('name', '')} {seq.get('version', '')}".strip()
            fv.operator = event.operator
            fv.panel_id = event.panel_id
            fv.state = "testing"
            fv.tiles = {s: Tile(s, steps_total=self.steps_total) for s in event.slots}
            self._panels[event.panel_id] = event.fixture
            self._bump()
            return
        fixture = self._panels.get(event.panel_id)
        if fixture is None:
            return
        fv = self.fixtures[fixture]
        if isinstance(event, PanelEnded):
            fv.state = "done"
            self._bump()
            return
        slot = getattr(event, "slot", None)
        if isinstance(event, SlotEnded):
            slot = event.result.slot
        if slot is None or slot not in fv.tiles:
            return
        self._on_slot_event(fv.tiles[slot], event)
        self._bump()

    def _on_slot_event(self, tile: Tile, event: Event) -> None:
        now = self._clock()
        if isinstance(event, SlotStarted):
            tile.started, tile.state = now, "testing"
        elif isinstance(event, SlotPhase):
            tile.state = _PHASE_STATE.get(event.phase, "testing")
            if event.phase not in ("test", "provision"):
                tile.step = event.phase
        elif isinstance(event, UnitIdentified):
            tile.mac = event.unit.mac
        elif isinstance(event, StepStarted):
            tile.step, tile.step_index = event.name, event.index
        elif isinstance(event, StepEnded):
            # Without the sequence's length (steps_total) the page shows no bar: a
            # guessed one would run backwards or sit at 100% with work left.
            tile.step_index = event.result.index + 1
            if event.result.verdict in (Verdict.FAIL, Verdict.ERROR) and tile.failing is None:
                tile.failing = _failing(event.result)
        elif isinstance(event, ProvisionAct):
            if event.act.startswith("efuse:"):
                tile.state = "locking"
            else:
                tile.state = "provisioning"
            serial = event.detail.get("serial")
            if isinstance(serial, str):
                tile.serial = serial
            tile.step = event.act
        elif isinstance(event, SlotEnded):
            self._slot_ended(tile, event, now)

    def _slot_ended(self, tile: Tile, event: SlotEnded, now: float) -> None:
        result = event.result
        verdict = result.verdict.value
        tile.state = verdict if verdict in _FINAL or verdict == "EMPTY" else "ERROR"
        tile.ended = now
        tile.reason = result.reason
        if result.unit is not None:
            tile.mac = result.unit.mac
        prov = result.extra.get("provisioning")
        serial = prov.get("serial") if isinstance(prov, dict) else None
        if isinstance(serial, str):
            tile.serial = serial
        if result.verdict is Verdict.PASS:
            tile.failing = None
            tile.step_index = tile.steps_total
        if result.verdict in (Verdict.PASS, Verdict.FAIL, Verdict.ERROR):
            self.units += 1
            # First pass: the first time this unit is seen, and it passed.
            first = not tile.mac or tile.mac not in self._seen_macs
            if tile.mac:
                self._seen_macs.add(tile.mac)
            if first and result.verdict is Verdict.PASS:
                self.first_pass += 1

    # -- outputs --------------------------------------------------------------------

    def _bump(self) -> None:
        self.version += 1
        # Wall clock, not monotonic: the browser compares it with its own Date.now() to
        # measure event-to-screen latency (bench/page.py) on the same machine.
        self.changed_at_ms = time.time() * 1000.0
        self._recent.append((self.version, self.changed_at_ms))
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(self.version)

    def first_change_ms(self, seen: int) -> float:
        """When the oldest change after version `seen` happened (wall clock, ms): a
        snapshot covering several changes is as late as its oldest one."""
        for version, ms in self._recent:
            if version > seen:
                return ms
        return self.changed_at_ms

    async def changed(self, seen: int) -> int:
        """Wait until the version moves past `seen`; returns the new version."""
        if self.version != seen:
            return self.version
        fut: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        return await fut

    def _prompt(self, panel_id: str, slot: int) -> dict[str, Any] | None:
        pending = self.prompts.for_slot(panel_id, slot)
        return pending.shown() if pending is not None else None

    def _label(self, tile: Tile) -> dict[str, Any] | None:
        if self.labels is None or tile.serial not in self.labels.labels:
            return None
        failed = self.labels.failed.get(tile.serial)
        return {
            "serial": tile.serial,
            "printer": self.labels.target is not None,
            "printed": tile.serial in self.labels.printed,
            "failed": failed,
        }

    def snapshot(self) -> dict[str, Any]:
        now = self._clock()
        hours = max(now - self.shift_started, 1e-9) / 3600.0
        return {
            "version": self.version,
            "changed_at_ms": self.changed_at_ms,
            "station": self.station,
            "lot": self.lot,
            "database": self.database,
            "spool": self.spool,
            "counters": {
                "units": self.units,
                "fpy": round(100.0 * self.first_pass / self.units, 1) if self.units else None,
                "uph": round(self.units / hours) if self.units else 0,
            },
            "fixtures": [
                {
                    "fixture": fv.fixture,
                    "online": fv.online,
                    "state": fv.state,
                    "refusal": fv.refusal,
                    "sequence": fv.sequence,
                    "operator": fv.operator,
                    "scan": self.scans.mode if self.scans is not None else "off",
                    "tiles": [
                        t.snapshot(
                            now,
                            self._prompt(fv.panel_id, t.slot),
                            self._label(t),
                            scans.get(t.slot),
                        )
                        for _, t in sorted(fv.tiles.items())
                    ],
                }
                for _, fv in sorted(self.fixtures.items())
                for scans in [self.scans.pending(fv.fixture) if self.scans is not None else {}]
            ],
        }
