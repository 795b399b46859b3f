"""A panel: every slot of one fixture tested at once, one asyncio task per slot.

A slot's fault stays in that slot. Opening the clamp aborts the panel: every slot task
is cancelled, every slot is powered off, and each unfinished slot is ABORTED.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ate.drivers.fixture import FixtureController
from ate.drivers.golden import RfBoards
from ate.model.events import PanelEnded, PanelStarted, SlotEnded
from ate.model.results import SlotResult
from ate.model.verdict import Verdict
from ate.scheduler.bus import EventBus
from ate.scheduler.resources import ResourcePool
from ate.scheduler.slot import PanelSteps, SlotBinding, SlotOptions, SlotRun
from ate.sequence.plan import Plan

_log = logging.getLogger(__name__)

_LED = {
    Verdict.PASS: "pass",
    Verdict.FAIL: "fail",
    Verdict.ERROR: "error",
    Verdict.ABORTED: "error",
    Verdict.EMPTY: "off",
}


class PanelRefused(Exception):
    """The panel cannot start (clamp open, unknown resource): nothing was powered."""


@dataclass(frozen=True)
class PanelSpec:
    panel_id: str
    fixture: str
    station: str
    operator: str
    plan: Plan
    sequence_info: dict[str, Any]  # name, version, sha256, firmware sha256, for records
    bindings: Sequence[SlotBinding]
    controller: FixtureController
    resources: Mapping[str, int]
    options: SlotOptions = field(default_factory=SlotOptions)
    # The station ends the panel: resolves with the verdict and reason every unfinished
    # slot gets (its controller gone: ERROR; the station stopping: ABORTED).
    end: asyncio.Future[tuple[Verdict, str]] | None = None
    # The golden boards (opened and calibration-checked) the plan's RF steps drive.
    rf: RfBoards | None = None


@dataclass(frozen=True)
class PanelResult:
    panel_id: str
    slots: dict[int, SlotResult]
    duration_s: float
    aborted: bool
    resource_busy_s: dict[str, float]

    @property
    def all_passed(self) -> bool:
        return all(r.verdict in (Verdict.PASS, Verdict.EMPTY) for r in self.slots.values())


async def run_panel(spec: PanelSpec, bus: EventBus) -> PanelResult:
    pool = ResourcePool(spec.resources)
    if unknown := pool.unknown(spec.plan.resources):
        raise PanelRefused(
            f"the sequence uses {', '.join(unknown)}, which fixture {spec.fixture} does not "
            f"have (it has: {', '.join(sorted(spec.resources)) or 'none'})"
        )
    controller = spec.controller
    if not await controller.clamp_closed():
        raise PanelRefused("the clamp is open: close it to start the panel")
    clamp_opened = controller.clamp_event()

    t0 = time.monotonic()
    bus.emit(
        PanelStarted(
            spec.panel_id,
            spec.fixture,
            spec.station,
            spec.operator,
            dict(spec.sequence_info),
            tuple(b.slot for b in spec.bindings),
            dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds"),
        )
    )
    shared = PanelSteps()  # the sequence's scope: panel steps, run once for all slots
    runs = {
        b.slot: SlotRun(
            spec.panel_id, b, spec.plan, controller, pool, bus.emit, spec.options, shared, spec.rf
        )
        for b in spec.bindings
    }
    tasks = {
        slot: asyncio.create_task(run.run(), name=f"slot-{slot}") for slot, run in runs.items()
    }
    watcher = asyncio.create_task(clamp_opened.wait(), name="clamp-watch")
    slot_of: dict[asyncio.Task[Any], int] = {task: slot for slot, task in tasks.items()}
    results: dict[int, SlotResult] = {}
    aborted = False
    ended: tuple[Verdict, str] | None = None
    end_watch = asyncio.ensure_future(asyncio.shield(spec.end)) if spec.end is not None else None

    def finish(slot: int, task: asyncio.Task[Any]) -> None:
        if ended is not None and (task.cancelled() or task.exception() is not None):
            results[slot] = runs[slot].result(*ended)
        elif task.cancelled() or task.exception() is not None:
            reason = "clamp opened during the test" if aborted else "panel cancelled"
            results[slot] = runs[slot].result(Verdict.ABORTED, reason)
        else:
            results[slot] = task.result()
        bus.emit(SlotEnded(spec.panel_id, results[slot]))  # as each slot ends, for the UI

    try:
        watch: set[asyncio.Future[Any]] = {watcher}
        if end_watch is not None:
            watch.add(end_watch)
        pending: set[asyncio.Future[Any]] = set(tasks.values())
        while pending:
            done, pending = await asyncio.wait(pending | watch, return_when=asyncio.FIRST_COMPLETED)
            pending -= watch
            for task in done:
                if task not in watch:
                    finish(slot_of[task], task)  # type: ignore[index,arg-type]
            if end_watch is not None and end_watch in done:
                ended = end_watch.result()
                aborted = ended[0] is Verdict.ABORTED
                _log.warning("panel %s ended by the station: %s", spec.panel_id, ended[1])
                break
            if watcher in done:
                aborted = True
                _log.warning("panel %s: clamp opened, aborting", spec.panel_id)
                break
    finally:
        watcher.cancel()
        if end_watch is not None:
            end_watch.cancel()
        unfinished = [t for t in tasks.values() if not t.done()]
        for task in unfinished:  # clamp opened, or we are cancelled ourselves (Ctrl-C)
            task.cancel()
        await asyncio.gather(*unfinished, return_exceptions=True)
        for task in unfinished:
            finish(slot_of[task], task)
        await _make_safe(controller, results)
        duration = time.monotonic() - t0
        bus.emit(
            PanelEnded(spec.panel_id, {s: r.verdict for s, r in results.items()}, duration, aborted)
        )
    return PanelResult(spec.panel_id, results, duration, aborted, dict(pool.busy_s))


async def _make_safe(controller: FixtureController, results: Mapping[int, SlotResult]) -> None:
    """Every slot powered off (again: a cancelled slot may not have finished its own
    power-down) and its LED showing the verdict."""
    for slot, result in results.items():
        try:
            async with asyncio.timeout(2.0):
                await controller.power(slot, False)
                await controller.led(slot, _LED.get(result.verdict, "error"))  # type: ignore[arg-type]
        except Exception as exc:
            _log.error("slot %d: could not make safe: %s", slot, exc)
