"""One fixture's life in the station daemon, as one asyncio task: open its controller
(with capped exponential back-off while it is away), wait for the trigger (the clamp,
debounced; the start button; or the operator), check free disk space and every slot's
contact, run the panel (the scheduler's, through ate.station.runner), show the verdicts
(LEDs, buzzer), wait for the clamp to open, and again. Nothing a panel or a controller
does ends the loop; only the station stopping does.

May import ate.station.runner and what it imports; owns no status (writes StationStatus).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ate.config.loader import LoadedFixture, LoadedSequence
from ate.drivers.fixture import FixtureController
from ate.drivers.line_client import DeviceError, DeviceGone, DeviceTimeout, LineClient
from ate.drivers.ports import resolve_port
from ate.instruments.base import InstrumentError
from ate.instruments.registry import Instruments
from ate.model.verdict import Verdict
from ate.protocol.lines import Notice
from ate.provision.critical import CriticalSections
from ate.scheduler.bus import EventBus
from ate.scheduler.panel import PanelRefused
from ate.scheduler.slot import Admit, SlotOptions
from ate.station.runner import (
    Endpoints,
    open_controller,
    open_fixture_instruments,
    run_one_panel,
)
from ate.station.status import StationStatus

if TYPE_CHECKING:
    from ate.provision.flow import Provisioner

_log = logging.getLogger("ate.station")
T = TypeVar("T")

POLL_S = 1.0  # re-read the clamp this often even without a CLAMP notice (one may be lost)


class ControllerLost(Exception):
    """The fixture controller's port closed or stopped answering."""


class _Stopping(Exception):
    """The station is stopping (or reloading): leave the loop at this idle point."""


@dataclass
class LoopContext:
    """What the station shares with every fixture loop (one per configuration)."""

    station: str
    operator: str
    sequence: LoadedSequence
    bus: EventBus
    status: StationStatus
    critical: CriticalSections
    watched_dirs: tuple[Path, ...]  # state and outputs: free space checked before a panel
    min_free: int
    debounce: float
    retry_max: float
    stop: asyncio.Event  # no new panel; a running one ends after its irreversible acts
    idle_exit: asyncio.Event  # leave at the next idle point (a reload)
    provisioner: Provisioner | None = None
    admit: Admit | None = None
    after_panel: Callable[[], Awaitable[None]] | None = None
    options: SlotOptions = field(default_factory=SlotOptions)
    labels: LabelSource | None = None  # the labels scanned before a panel (the page's)


class LabelSource(Protocol):
    """Labels scanned per slot (ate.ui.scans.ScanBook): taken when a panel starts, and
    no scans for that fixture until it is done."""

    def take(self, fixture: str) -> dict[int, str]: ...
    def done(self, fixture: str) -> None: ...


def disk_refusal(dirs: tuple[Path, ...], min_free: int) -> str | None:
    """Why a panel must not start for lack of disk space, or None."""
    for d in dirs:
        probe = d
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent  # a folder not made yet lives on its parent's disk
        try:
            free = shutil.disk_usage(probe).free
        except OSError as exc:
            return f"cannot check free space in {d}: {exc.strerror or exc}"
        if free < min_free:
            return (
                f"disk nearly full: {d} has {free / 1e6:.0f} MB free, the station needs "
                f"{min_free / 1e6:.0f} MB (min_free); free space, then close the clamp again"
            )
    return None


class FixtureLoop:
    def __init__(
        self,
        fixture: LoadedFixture,
        trigger: str,
        ctx: LoopContext,
        sim: Endpoints | None,
        *,
        armed: bool = True,
    ) -> None:
        self.fixture = fixture
        self.name = fixture.model.fixture
        self.trigger = trigger
        self.ctx = ctx
        self.sim = sim
        # False: the clamp must open before the next close starts a panel (after a panel,
        # or when a reload replaced the loop while the last panel's boards are still in).
        self.armed = armed
        self.start_requested = asyncio.Event()  # the manual trigger
        self._button = asyncio.Event()
        self._clamp_changed = asyncio.Event()
        self._lost: asyncio.Future[str] | None = None
        self._buzzer = True  # until the controller says it has none
        self._instruments: Instruments | None = None  # the fixture file's, while online

    @property
    def status(self) -> StationStatus:
        return self.ctx.status

    def _set(self, **values: object) -> None:
        self.status.update(self.name, **values)

    # ---- the loop ---------------------------------------------------------------------

    async def run(self) -> None:
        backoff = 0.25
        while not self._leaving():
            try:
                ctrl = await open_controller(self.fixture, self.sim)
            except (DeviceGone, DeviceTimeout, OSError) as exc:
                self._offline(str(exc))
                if not await self._pause(backoff):
                    break
                backoff = min(backoff * 2, self.ctx.retry_max)
                continue
            try:
                # Opened once per controller session, not per panel (an *IDN? check and
                # the mux's reset each time would add to every panel's wall time).
                if self.fixture.instruments:
                    self._instruments = await open_fixture_instruments(self.fixture, ctrl)
            except Exception as exc:  # an instrument away or not the one named: say which
                await ctrl.close()
                self._offline(str(exc) if isinstance(exc, InstrumentError) else repr(exc))
                if not await self._pause(backoff):
                    break
                backoff = min(backoff * 2, self.ctx.retry_max)
                continue
            backoff = 0.25
            try:
                await self._serve(ctrl)
            except ControllerLost as exc:
                self._offline(str(exc))
            except _Stopping:
                break
            except Exception as exc:  # a bug or a controller answering nonsense: say so,
                # start again from the controller after a pause; never end the loop
                _log.error("fixture %s: %s: %s", self.name, type(exc).__name__, exc)
                self._set(last_error=f"{type(exc).__name__}: {exc}")
                if not await self._pause(backoff):
                    break
                backoff = min(backoff * 2, self.ctx.retry_max)
            finally:
                if self._instruments is not None:
                    await self._instruments.aclose()
                    self._instruments = None
                await ctrl.close()
        self._set(state="stopped")

    def _leaving(self) -> bool:
        return self.ctx.stop.is_set() or self.ctx.idle_exit.is_set()

    def _offline(self, reason: str) -> None:
        fs = self.status.fixtures[self.name]
        if fs.online or fs.offline_since is None:
            _log.error("fixture %s offline: %s; retrying", self.name, reason)
        self._set(
            online=False,
            state="offline",
            last_error=reason,
            offline_since=fs.offline_since or time.monotonic(),
        )

    async def _pause(self, seconds: float) -> bool:
        """Back-off that a stop cuts short; False when the station is leaving."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await _first(self.ctx.stop.wait(), self.ctx.idle_exit.wait())
        return not self._leaving()

    async def _serve(self, ctrl: FixtureController) -> None:
        loop = asyncio.get_running_loop()
        self._lost = loop.create_future()
        lost = self._lost

        def on_lost(exc: Exception) -> None:
            if not lost.done():
                lost.set_result(f"fixture controller lost: {exc}")

        ctrl.listen(self._on_notice, on_lost)
        if not await self._call(ctrl.clamp_closed()):  # answers at all: online
            self.armed = True  # and open now: boards can be changed before it closes
        fs = self.status.fixtures[self.name]
        if not fs.online and fs.offline_since is not None:
            _log.info("fixture %s back online", self.name)
            fs.reconnects += 1
        self._set(online=True, state="waiting", last_error=None, offline_since=None)
        while True:
            if self._leaving():
                raise _Stopping
            await self._wait_trigger(ctrl)
            if self.trigger == "clamp":
                self.armed = False  # this close is used up, whatever happens to the panel
            refusal = disk_refusal(self.ctx.watched_dirs, self.ctx.min_free)
            if refusal is None:
                refusal = await self._contact(ctrl)
            if refusal is not None:
                _log.error("fixture %s: panel refused: %s", self.name, refusal)
                self._set(state="refused", refusal=refusal)
            else:
                self._set(refusal=None)
                await self._panel(ctrl)
            if self.trigger == "clamp":
                self._set(state="done" if refusal is None else "refused")
                await self._wait_clamp(ctrl, closed=False, debounce=0.0)
                self.armed = True
            self._set(state="waiting")

    def _on_notice(self, notice: Notice) -> None:
        if notice.name == "CLAMP":
            self._clamp_changed.set()
            if notice.fields.get("closed") == "0":
                self.armed = True  # opened since the last panel, even if briefly
        elif notice.name == "BUTTON" and notice.fields.get("pressed") == "1":
            self._button.set()

    async def _call(self, aw: Awaitable[T]) -> T:
        """A controller call (or wait) that ends with ControllerLost when the controller
        goes, and with _Stopping when the station leaves this idle point."""
        assert self._lost is not None
        lost = self._lost
        task = asyncio.ensure_future(aw)
        stop = asyncio.ensure_future(self.ctx.stop.wait())
        idle = asyncio.ensure_future(self.ctx.idle_exit.wait())
        try:
            watch: set[asyncio.Future[Any]] = {task, stop, idle, lost}
            await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
            idle.cancel()
        if task.done():
            try:
                return task.result()
            except (DeviceGone, DeviceTimeout) as exc:
                raise ControllerLost(f"fixture controller: {exc}") from None
        task.cancel()
        with contextlib.suppress(BaseException):
            await task
        if lost.done():
            raise ControllerLost(lost.result())
        raise _Stopping

    # ---- triggers ---------------------------------------------------------------------

    async def _wait_trigger(self, ctrl: FixtureController) -> None:
        self._set(state="waiting")
        if self.trigger == "button":
            self._button.clear()
            await self._call(self._button.wait())
        elif self.trigger == "manual":
            self.start_requested.clear()
            await self._call(self.start_requested.wait())
        else:
            if not self.armed:
                await self._wait_clamp(ctrl, closed=False, debounce=0.0)
                self.armed = True
            await self._wait_clamp(ctrl, closed=True, debounce=self.ctx.debounce)

    async def _wait_clamp(self, ctrl: FixtureController, *, closed: bool, debounce: float) -> None:
        """Until the clamp reads `closed` and has stayed so for `debounce` seconds: any
        CLAMP notice inside that window starts it again (a bouncing switch, a hand that
        hesitates). The clamp is read again every POLL_S in case a notice was lost."""
        while True:
            if not closed and self.armed:
                return  # a CLAMP open notice came: opened, even if closed again since
            self._clamp_changed.clear()
            now = await self._call(ctrl.clamp_closed())
            if now != closed:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(POLL_S):
                        await self._call(self._clamp_changed.wait())
                continue
            if debounce <= 0:
                return
            if closed:
                self._set(state="debouncing")
            try:
                async with asyncio.timeout(debounce):
                    await self._call(self._clamp_changed.wait())
            except TimeoutError:
                if await self._call(ctrl.clamp_closed()) == closed:
                    return
            self._set(state="waiting")

    # ---- before the panel ---------------------------------------------------------------

    async def _contact(self, ctrl: FixtureController) -> str | None:
        """Every enabled slot's power channel and UART answer. A slot without a board is
        left to the panel (EMPTY). A slot the controller cannot switch, or whose UART
        port is not there, is a fault of the fixture, not of a unit: the panel is refused
        so that good units are not recorded as ERROR for a broken pogo pin or cable."""
        self._set(state="contact")
        faults = []
        for spec in self.fixture.model.slots:
            if not spec.enabled:
                continue
            try:
                present = await self._call(ctrl.present(spec.slot))
                await self._call(ctrl.power(spec.slot, False))
            except DeviceError as exc:
                faults.append(f"slot {spec.slot}: the controller refuses it ({exc})")
                continue
            if not present:
                continue
            try:
                endpoint = resolve_port(
                    spec.port, self.sim.slots.get(spec.slot) if self.sim else None
                )
                client = await LineClient.open(endpoint, spec.port.baud, name=f"slot{spec.slot}")
                await client.close()
            except DeviceGone as exc:
                faults.append(f"slot {spec.slot}: a board is present but its UART is not: {exc}")
        if faults:
            return "fixture fault (not the units): " + "; ".join(faults)
        return None

    # ---- the panel --------------------------------------------------------------------

    async def _panel(self, ctrl: FixtureController) -> None:
        self._set(state="testing", panel_id=None)
        labels = self.ctx.labels.take(self.name) if self.ctx.labels is not None else {}
        try:
            await self._run_panel(ctrl, labels)
        finally:
            if self.ctx.labels is not None:
                self.ctx.labels.done(self.name)

    async def _run_panel(self, ctrl: FixtureController, labels: dict[int, str]) -> None:
        assert self._lost is not None
        lost = self._lost
        loop = asyncio.get_running_loop()
        end: asyncio.Future[tuple[Verdict, str]] = loop.create_future()
        task = asyncio.ensure_future(
            run_one_panel(
                self.fixture,
                self.ctx.sequence,
                self.ctx.bus,
                sim=self.sim,
                station=self.ctx.station,
                operator=self.ctx.operator,
                options=self.ctx.options,
                controller=ctrl,
                provisioner=self.ctx.provisioner,
                admit=self.ctx.admit,
                end=end,
                labels=labels,
                instruments=self._instruments,
            )
        )
        stop = asyncio.ensure_future(self.ctx.stop.wait())
        try:
            watch: set[asyncio.Future[Any]] = {task, lost, stop}
            await asyncio.wait(watch, return_when=asyncio.FIRST_COMPLETED)
            if not task.done() and lost.done():
                end.set_result((Verdict.ERROR, lost.result()))
            elif not task.done() and stop.done():
                await self._stop_panel(end, task)
            try:
                result = await task
            except PanelRefused as exc:
                _log.error("fixture %s: panel refused: %s", self.name, exc)
                self._set(last_error=str(exc))
                return
            except Exception as exc:  # any failure of the panel: one line, carry on
                _log.error("fixture %s: panel failed: %s: %s", self.name, type(exc).__name__, exc)
                self._set(last_error=f"panel failed: {exc}")
                if lost.done():
                    raise ControllerLost(lost.result()) from None
                return
        finally:
            stop.cancel()
        self.status.panel_ended(
            self.name,
            {s: r.verdict for s, r in result.slots.items()},
            {s: r.reason for s, r in result.slots.items()},
        )
        self._set(panel_id=result.panel_id)
        _log.info(
            "fixture %s: panel %s: %s",
            self.name,
            result.panel_id,
            ", ".join(f"{s}={r.verdict.value}" for s, r in sorted(result.slots.items())),
        )
        if self.ctx.after_panel is not None:
            try:
                await self.ctx.after_panel()
            except Exception as exc:
                _log.error("fixture %s: after the panel: %s", self.name, exc)
        if lost.done():
            raise ControllerLost(lost.result())
        await self._buzz(ctrl, result.all_passed)

    async def _stop_panel(
        self, end: asyncio.Future[tuple[Verdict, str]], task: asyncio.Future[Any]
    ) -> None:
        """SIGTERM during a panel: no new irreversible act starts; those in progress
        complete and are recorded; then the panel ends as if the clamp opened."""
        critical = self.ctx.critical
        critical.close()
        if critical.active:
            _log.warning("fixture %s: stopping after %s", self.name, ", ".join(critical.active))
        idle = asyncio.ensure_future(critical.wait_idle())
        await asyncio.wait({idle, task}, return_when=asyncio.FIRST_COMPLETED)
        idle.cancel()
        if not end.done():
            end.set_result((Verdict.ABORTED, "the station is stopping (SIGTERM)"))

    async def _buzz(self, ctrl: FixtureController, passed: bool) -> None:
        if not self._buzzer:
            return
        try:
            async with asyncio.timeout(2.0):
                await ctrl.buzzer("pass" if passed else "fail")
        except DeviceError as exc:
            if exc.code == "EUNKNOWN":
                self._buzzer = False  # this controller has no buzzer
            else:
                _log.warning("fixture %s: buzzer: %s", self.name, exc)
        except (DeviceGone, DeviceTimeout, TimeoutError) as exc:
            _log.warning("fixture %s: buzzer: %s", self.name, exc)


async def _first(*aws: Awaitable[Any]) -> None:
    tasks: list[asyncio.Future[Any]] = [asyncio.ensure_future(a) for a in aws]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
