"""Runs drawn panels through the station's own code on simulated fixtures.

Owns `NightlyBench` (one station: its state folder, journal, spool and line database,
used by every panel of a run, as a line's station runs panel after panel) and the per-slot
`SlotOutcome` it observes. For each panel it writes a fixture file whose simulation draws
the units and their faults, starts the simulated fixture, arms the power cuts, runs the
panel with provisioning, applies the panel fault (the clamp opened at the nth step; the
station killed at the nth provisioning checkpoint, then a fresh station; the line
database unreachable until the panel ends), reruns what must recover, and reads the
chip's truth (eFuses) and the outputs (records on disk, in the line database).
May import ate.config, ate.model, ate.scheduler, ate.sim, ate.station, ate.store,
ate.provision and ate.nightly.faults/draw.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ate.config.loader import LoadedFixture, LoadedSequence, load_fixture
from ate.model.events import Event, SlotEnded, StepStarted
from ate.model.verdict import Verdict
from ate.nightly.draw import PanelDraw
from ate.nightly.faults import Outcome, SlotFault
from ate.scheduler.bus import EventBus
from ate.scheduler.panel import PanelResult
from ate.scheduler.slot import SlotOptions
from ate.sim.fixture_check import check_simulation
from ate.sim.fixture_doc import sim_fixture_doc
from ate.sim.fixture_twin import SimFixtureThread
from ate.station.provisioning import StationProvisioning, local_store_url, open_provisioning
from ate.station.runner import Endpoints, Outputs, run_one_panel
from ate.station.store_sink import StoreSink
from ate.store.api import Store, StoreUnavailable, open_store
from ate.store.spool import default_spool_path

STATION = "nightly"
OPERATOR = "nightly"
# Simulated units answer in microseconds: short timeouts keep a mute unit's cost low
# without making an honest one late (the same figures as the power-loss matrix).
OPTIONS = SlotOptions(boot_timeout=3.0, request_timeout=0.3, request_attempts=3, crypto_s=0.7)
DRAIN_S = 30.0


class StationKilled(BaseException):
    """The station process died at a provisioning checkpoint (an injected panel fault)."""


@dataclass
class SlotOutcome:
    """What became of one slot's unit: the verdicts, the class, and the chip's truth."""

    panel: int
    slot: int
    fault: SlotFault
    allowed: tuple[Outcome, ...]
    first: Verdict
    final: Verdict
    outcome: Outcome
    reason: str
    mac: str | None
    rerun: bool
    cut_fired: bool | None
    efuses_changed: bool  # any eFuse bit differs from the unit's arrival
    locked: bool  # the chip is in Secure Download Mode (or download disabled)
    certified: bool  # the station's line store holds a certificate for this unit
    provisioning: str | None  # the state the station reported


@dataclass
class PanelRun:
    draw: PanelDraw
    outcomes: list[SlotOutcome] = field(default_factory=list)
    panel_fault_fired: bool = False
    units_ended: int = 0  # SlotEnded events of slots holding a unit, over every run
    record_paths: list[Path] = field(default_factory=list)  # the unit records written
    records_missing_in_db: list[str] = field(default_factory=list)
    seconds: float = 0.0
    error: str | None = None  # the panel could not run at all (a bench fault, not a verdict)


def default_fixture(board: Path, slots: int = 4) -> dict[str, Any]:
    """The embedded quad fixture: simulated controller, a DMM and a golden board."""
    return sim_fixture_doc("nightly", board, slots)


class _LineDatabase:
    """Opens the line database for the sink, or refuses while `away` (a panel fault)."""

    def __init__(self) -> None:
        self.away = False

    def __call__(self, url: str) -> Store:
        if self.away:
            raise StoreUnavailable("the line database is away (nightly panel fault)")
        return open_store(url)


class NightlyBench:
    """One simulated station, run panel after panel in `work`."""

    def __init__(
        self,
        work: Path,
        sequence: LoadedSequence,
        profile: Path | None,
        fixture_doc: dict[str, Any],
        fixture_dir: Path,
        *,
        lot: str,
        options: SlotOptions = OPTIONS,
    ) -> None:
        self.work = work
        self.sequence = sequence
        self.profile = profile
        self.fixture_doc = fixture_doc
        self.fixture_dir = fixture_dir  # where the fixture's relative paths start
        self.lot = lot
        self.options = options
        self.state_dir = work / "state"
        self.out_dir = work / "out"
        self.db_url = f"sqlite:///{work / 'line.db'}"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._db = _LineDatabase()

    # -- one panel -------------------------------------------------------------------

    def write_fixture(self, draw: PanelDraw) -> LoadedFixture:
        doc = copy.deepcopy(self.fixture_doc)
        sim = doc.setdefault("simulation", {})
        # The file is written elsewhere: what it names relative to itself is made absolute.
        for key in ("board", "preflash"):
            if sim.get(key):
                named = Path(sim[key])
                sim[key] = str(
                    named if named.is_absolute() else (self.fixture_dir / named).resolve()
                )
        sim["seed"] = draw.sim_seed
        sim["state_dir"] = "units"
        sim["slots"] = {s.slot: {"faults": dict(s.fault.faults)} for s in draw.slots}
        where = self.work / "panels" / f"p{draw.index:05d}"
        where.mkdir(parents=True, exist_ok=True)
        path = where / "fixture.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        fixture = load_fixture(path)
        check_simulation(fixture)
        return fixture

    def run(self, draw: PanelDraw) -> PanelRun:
        """Run one drawn panel (and its rerun); without a profile, test only."""
        started = time.monotonic()
        run = PanelRun(draw)
        fixture = self.write_fixture(draw)
        with SimFixtureThread(fixture.model, fixture.base_dir) as twin:
            arrival = {s.slot: _efuse_bits(twin, s.slot) for s in draw.slots}
            cuts = {
                s.slot: twin.arm_power_cut(
                    s.slot, c.at, nth=s.nth or 1, applied=c.applied, command=c.command
                )
                for s in draw.slots
                if (c := s.fault.cut) is not None
            }
            first = self._panel(twin, fixture, draw, run, with_fault=True)
            cut_fired = {slot: ev.is_set() for slot, ev in cuts.items()}
            rerun_slots = self._to_rerun(draw, first, cut_fired, run.panel_fault_fired)
            second = None
            if rerun_slots:
                twin.set_clamp(True)  # the operator closes the clamp again
                second = self._panel(twin, fixture, draw, run, with_fault=False)
            # The station's line store: its local store file (no line database is given to
            # the provisioning here, so a line database away stops records, not identities).
            line_store = open_store(local_store_url(self.state_dir))
            try:
                for s in draw.slots:
                    run.outcomes.append(
                        self._outcome(
                            draw,
                            s.slot,
                            s.fault,
                            first,
                            second if s.slot in rerun_slots else None,
                            cut_fired.get(s.slot),
                            run.panel_fault_fired,
                            twin,
                            arrival[s.slot],
                            line_store,
                        )
                    )
            finally:
                line_store.close()
        run.seconds = time.monotonic() - started
        return run

    def _panel(
        self,
        twin: SimFixtureThread,
        fixture: LoadedFixture,
        draw: PanelDraw,
        run: PanelRun,
        *,
        with_fault: bool,
    ) -> PanelResult:
        kind = draw.panel_fault.name if with_fault and draw.panel_fault else None
        trigger = draw.trigger or 1
        records_before = _records(self.out_dir)
        ended: list[SlotEnded] = []
        steps = 0
        checkpoints = 0

        async def main() -> PanelResult:
            nonlocal steps, checkpoints
            loop = asyncio.get_running_loop()
            end: asyncio.Future[tuple[Verdict, str]] = loop.create_future()

            def watch(event: Event) -> None:
                nonlocal steps
                if isinstance(event, SlotEnded) and event.result.verdict is not Verdict.EMPTY:
                    ended.append(event)
                if kind == "clamp_opened" and isinstance(event, StepStarted):
                    steps += 1
                    if steps == trigger:
                        run.panel_fault_fired = True
                        twin.set_clamp(False)

            async def checkpoint(chip_id: str, point: str) -> None:
                nonlocal checkpoints
                if kind != "station_killed" or end.done():
                    return
                checkpoints += 1
                if checkpoints == trigger:
                    run.panel_fault_fired = True
                    end.set_result((Verdict.ABORTED, "the station was killed"))
                    raise StationKilled(point)

            self._db.away = kind == "line_db_away"
            run.panel_fault_fired |= self._db.away
            sink = StoreSink.start(
                self.db_url,
                default_spool_path(self.state_dir),
                station=STATION,
                operator=OPERATOR,
                opener=self._db,
                backoff_initial=0.05,
                backoff_max=0.2,
            )
            outputs = Outputs(self.out_dir)
            bus = EventBus()
            sink.attach(bus)
            outputs.attach(bus)
            bus.subscribe(watch)
            station = self._station(checkpoint) if self.profile is not None else None
            try:
                return await run_one_panel(
                    fixture,
                    self.sequence,
                    bus,
                    sim=Endpoints(twin.controller_endpoint, dict(twin.endpoints)),
                    station=STATION,
                    operator=OPERATOR,
                    options=self.options,
                    provisioner=station.provisioner if station is not None else None,
                    end=end,
                )
            finally:
                outputs.close()
                if station is not None:
                    station.after_panel()
                    station.close()
                self._db.away = False  # back: what waited in the spool goes now
                await sink.drain(DRAIN_S)
                await sink.aclose()
                sink.close()

        result = asyncio.run(main())
        run.units_ended += len(ended)
        written = _records(self.out_dir) - records_before
        run.record_paths += sorted(written)
        run.records_missing_in_db += _missing_in_db(self.db_url, self.out_dir, written)
        return result

    def _station(self, checkpoint: Callable[[str, str], Any]) -> StationProvisioning:
        assert self.profile is not None
        return open_provisioning(
            self.profile,
            self.sequence,
            state_dir=self.state_dir,
            out_dir=self.out_dir,
            station=STATION,
            operator=OPERATOR,
            lot=self.lot,
            checkpoint=checkpoint,
        )

    @staticmethod
    def _to_rerun(
        draw: PanelDraw, first: PanelResult, cut_fired: dict[int, bool], panel_fault: bool
    ) -> set[int]:
        """Slots whose good unit was interrupted (a power cut that happened, the panel
        fault) and did not pass: the operator reclamps and the station finishes them."""
        rerun = set()
        for s in draw.slots:
            verdict = first.slots[s.slot].verdict
            if verdict is Verdict.PASS or s.fault.is_defect:
                continue
            if cut_fired.get(s.slot) or (
                panel_fault and verdict in (Verdict.ABORTED, Verdict.ERROR)
            ):
                rerun.add(s.slot)
        return rerun

    def _outcome(
        self,
        draw: PanelDraw,
        slot: int,
        fault: SlotFault,
        first: PanelResult,
        second: PanelResult | None,
        cut_fired: bool | None,
        panel_fault: bool,
        twin: SimFixtureThread,
        arrival: bytes,
        line_store: Store,
    ) -> SlotOutcome:
        r1 = first.slots[slot]
        final = r1 if second is None else second.slots[slot]
        if second is not None:
            outcome = Outcome.RECOVERED if final.verdict is Verdict.PASS else Outcome(final.verdict)
        else:
            outcome = Outcome(r1.verdict)
        allowed = fault.expect
        if fault.cut is not None and not cut_fired:
            allowed = (Outcome.PASS,)  # the cut never came: a good unit
        if panel_fault and draw.panel_fault is not None:
            if fault.is_defect:
                allowed = (*allowed, Outcome.ABORTED)  # stopped before it was judged
            elif draw.panel_fault.name != "line_db_away":
                allowed = (*allowed, Outcome.PASS, Outcome.RECOVERED)
        unit = r1.unit or final.unit  # a cut before identification: the rerun names it
        mac = unit.mac if unit else None
        bank = _bank(twin, slot)
        cert = line_store.certificate(mac) if mac else None
        return SlotOutcome(
            panel=draw.index,
            slot=slot,
            fault=fault,
            allowed=tuple(dict.fromkeys(allowed)),
            first=r1.verdict,
            final=final.verdict,
            outcome=outcome,
            reason=final.reason,
            mac=mac,
            rerun=second is not None,
            cut_fired=cut_fired,
            efuses_changed=bytes(bank.controller.mem.bytes) != arrival,
            locked=bool(bank.secure_download_mode or bank.download_mode_disabled),
            certified=cert is not None,
            provisioning=(final.extra.get("provisioning") or {}).get("state"),
        )


def _bank(twin: SimFixtureThread, slot: int) -> Any:
    server = twin.sim.server(slot)
    if server is None or server.rom is None:
        raise RuntimeError(f"slot {slot} of the simulated fixture holds no unit")
    return server.rom.loader.efuses


def _efuse_bits(twin: SimFixtureThread, slot: int) -> bytes:
    return bytes(_bank(twin, slot).controller.mem.bytes)


def _records(out_dir: Path) -> set[Path]:
    where = out_dir / "records"
    return set(where.glob("*.json")) if where.is_dir() else set()


def _missing_in_db(db_url: str, out_dir: Path, written: set[Path]) -> list[str]:
    """Record ids written on disk that the line database does not hold."""
    if not written:
        return []
    store = open_store(db_url)
    try:
        missing = []
        for path in sorted(written):
            record_id = str(json.loads(path.read_text())["record_id"])
            if not store.has_record(record_id):
                missing.append(record_id)
        return missing
    finally:
        with contextlib.suppress(Exception):
            store.close()
