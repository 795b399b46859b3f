"""One slot's life in a panel: bring-up, identify, run the plan, power down, verdict.

Everything that can go wrong inside becomes this slot's verdict; nothing escapes to
the panel except cancellation (the panel's abort).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from ate.config.sequence import Group
from ate.config.when import ConditionFailed, Facts
from ate.drivers.dut import TestFirmwareClient
from ate.drivers.fixture import FixtureController
from ate.drivers.golden import RfBoards
from ate.drivers.line_client import (
    DeviceError,
    DeviceGone,
    DeviceRebooted,
    DeviceTimeout,
    LineClient,
    WireLine,
)
from ate.instruments.base import InstrumentError
from ate.instruments.registry import Instruments
from ate.model.events import (
    DutLog,
    DutWire,
    Event,
    FlashProgress,
    SlotPhase,
    SlotStarted,
    StepEnded,
    StepStarted,
    UnitIdentified,
)
from ate.model.results import SlotResult, StepResult, UnitIdentity
from ate.model.verdict import Verdict, worst
from ate.scheduler.claims import UnitClaims, claims_for_loop
from ate.scheduler.resources import ResourcePool
from ate.sequence.context import StepContext, StepFailed, UnitIntegrityError
from ate.sequence.plan import Plan, PlanStep
from ate.sequence.prompts import OperatorPrompts

_log = logging.getLogger(__name__)

LogSink = Callable[[str], None]
OpenDut = Callable[[LogSink], Awaitable[LineClient]]
ProgressSink = Callable[[str, int, int], None]  # stage, bytes done, bytes total


class BringUpFailed(Exception):
    """The ROM-loader phase could not prepare the unit (wrong chip, flash verify failed,
    download mode disabled): the slot's ERROR, with this reason."""


@dataclass(frozen=True, slots=True)
class Prepared:
    """What the ROM-loader phase learned (the unit's identity from its eFuses) and did
    (which images it wrote or found in place), for the record.

    `finished` ends the slot there with that verdict and reason, without testing: a unit
    whose provisioning had passed the point where it can be re-tested (its production
    firmware written, eFuses being burned) is finished from the ROM loader, and a locked
    unit is recognised as such. `sections` are further record sections (provisioning)."""

    unit: UnitIdentity | None
    record: dict[str, Any]
    finished: tuple[Verdict, str] | None = None
    sections: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RomAccess:
    """What the prepare hook gets: the slot's unit is powered and strapped into its ROM
    loader."""

    panel_id: str
    slot: int
    log: LogSink  # host tool output about this unit (esptool)
    progress: ProgressSink
    emit: Callable[[Event], None]


# Runs on the event loop and must not block: esptool work belongs in a worker thread.
Prepare = Callable[[RomAccess], Awaitable[Prepared]]
# May this unit (by MAC) be tested now? None: yes; else the verdict and reason it ends with.
Admit = Callable[[str], Awaitable[tuple[Verdict, str] | None]]


@dataclass(frozen=True, slots=True)
class SlotAccess:
    """What a provisioning hook may use of a slot whose unit has just passed its tests."""

    panel_id: str
    slot: int
    unit: UnitIdentity
    # The verdict of this unit's tests in this panel, as the slot judged them: the
    # provisioning flow records it in the line store, which lets the CA sign only a PASS.
    tested: Verdict
    dut: TestFirmwareClient
    controller: FixtureController
    rom: dict[str, Any]  # what the ROM-loader phase recorded
    tool_log: LogSink
    progress: ProgressSink
    emit: Callable[[Event], None]
    phase: Callable[[str], None]
    # Closes the test firmware's line client so that esptool can open the same port.
    release_port: Callable[[], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Provisioned:
    """A provisioning hook's verdict on the unit (PASS only when fully provisioned), and
    its record section."""

    verdict: Verdict
    reason: str
    record: dict[str, Any]


Provision = Callable[[SlotAccess], Awaitable[Provisioned]]


@dataclass(frozen=True, slots=True)
class SlotBinding:
    """What the station gives the scheduler for one slot: how to reach its DUT, how to
    prepare the unit in its ROM loader (identify, flash the test firmware) if at all, and
    how to provision a unit that passed (only ever called for a PASS of this run).
    `admit`, for a slot with no ROM phase, asks the line (the MES) whether the unit the
    test firmware identified may be tested; with a ROM phase `prepare` asks it."""

    slot: int
    open_dut: OpenDut
    prepare: Prepare | None = None
    provision: Provision | None = None
    admit: Admit | None = None


@dataclass(frozen=True, slots=True)
class SlotOptions:
    boot_timeout: float = 5.0  # power-on to READY from the test firmware
    request_timeout: float = 0.5  # per attempt of one request to the DUT
    request_attempts: int = 3
    crypto_s: float = 2.0  # extra per attempt for the device's key generation and signing
    prompts: OperatorPrompts | None = None  # where `prompt` steps ask the operator
    instruments: Instruments | None = None  # the fixture's, by role; None: the MCU's


def _integrity_reason(exc: BaseException) -> str:
    if isinstance(exc, DeviceRebooted):
        return f"rebooted ({exc.evidence})"
    return str(exc)


def _classify(exc: BaseException) -> tuple[Verdict, str]:
    """A step's exception as a verdict and a reason a test engineer can act on."""
    if isinstance(exc, StepFailed):
        return Verdict.FAIL, str(exc)
    if isinstance(exc, BringUpFailed | UnitIntegrityError):
        return Verdict.ERROR, str(exc)
    if isinstance(exc, DeviceRebooted):
        return Verdict.ERROR, _integrity_reason(exc)
    if isinstance(exc, DeviceError):
        # EHW: the unit's hardware did not respond (missing part): a bad unit.
        return (Verdict.FAIL if exc.code == "EHW" else Verdict.ERROR), str(exc)
    if isinstance(exc, DeviceTimeout | DeviceGone):
        return Verdict.ERROR, str(exc)
    if isinstance(exc, InstrumentError):  # the measurement chain, not the unit
        return Verdict.ERROR, str(exc)
    return Verdict.ERROR, f"internal error: {type(exc).__name__}: {exc}"


class PanelSteps:
    """The results of a panel's `scope: panel` steps: the first slot to reach one runs it,
    the others wait for it and record the same result (with who ran it)."""

    def __init__(self) -> None:
        self._results: dict[str, asyncio.Future[tuple[int, StepResult]]] = {}

    async def run_once(
        self, slot: int, step: PlanStep, run: Callable[[], Awaitable[StepResult]]
    ) -> StepResult:
        fut = self._results.get(step.name)
        if fut is None:
            fut = asyncio.get_running_loop().create_future()
            self._results[step.name] = fut
            try:
                result = await run()
            except BaseException as exc:
                fut.set_exception(RuntimeError(f"it did not finish in slot {slot}: {exc!r}"))
                fut.exception()  # retrieved: a panel with no waiter logs nothing
                raise
            fut.set_result((slot, result))
            return result
        try:
            owner, result = await asyncio.shield(fut)
        except RuntimeError as exc:
            return StepResult(
                index=step.index,
                name=step.name,
                type=step.type,
                verdict=Verdict.ERROR,
                reason=f"panel step: {exc}",
                uses=step.uses,
            )
        return dataclasses.replace(
            result, reason=(result.reason + "; " if result.reason else "") + f"ran in slot {owner}"
        )


class SlotRun:
    """The state of one slot in one panel; the panel reads it even after a cancel."""

    def __init__(
        self,
        panel_id: str,
        binding: SlotBinding,
        plan: Plan,
        controller: FixtureController,
        resources: ResourcePool,
        emit: Callable[[Event], None],
        options: SlotOptions,
        panel_steps: PanelSteps | None = None,
        rf: RfBoards | None = None,
    ) -> None:
        self.panel_id = panel_id
        self.rf = rf
        self.panel_steps = panel_steps or PanelSteps()
        self.slot = binding.slot
        self.binding = binding
        self.plan = plan
        self.controller = controller
        self.resources = resources
        self.emit = emit
        self.options = options
        self.steps: list[StepResult] = []
        self._by_name: dict[str, StepResult] = {}  # the same by name, for needs and when
        self.unit: UnitIdentity | None = None
        self.extra: dict[str, Any] = {}
        self.phase = "waiting"
        self.t0 = time.monotonic()
        self.integrity_lost: str | None = None  # why the unit can no longer be trusted
        self.claims: UnitClaims | None = None  # this loop's MACs in use, once identified

    def _phase(self, phase: str) -> None:
        self.phase = phase
        self.emit(SlotPhase(self.panel_id, self.slot, phase))

    def _dut_log(self, line: str) -> None:
        self.emit(DutLog(self.panel_id, self.slot, line))

    def _dut_wire(self, wire: WireLine) -> None:
        self.emit(
            DutWire(
                self.panel_id,
                self.slot,
                wire.direction,
                wire.text,
                wire.command,
                wire.resend,
                wire.corrupt,
            )
        )

    def _tool_log(self, line: str) -> None:
        self.emit(DutLog(self.panel_id, self.slot, line, "esptool"))

    def result(self, verdict: Verdict, reason: str) -> SlotResult:
        clash = self.claims.clash((self.panel_id, self.slot)) if self.claims else None
        if clash and verdict in (Verdict.PASS, Verdict.FAIL):
            verdict, reason = Verdict.ERROR, clash  # a later slot reported our MAC
        # Steps never reached are recorded too: a record lists the whole sequence.
        done = {s.index for s in self.steps}
        ran = sorted(self.steps, key=lambda s: s.index)  # records list steps in file order
        skipped = tuple(
            StepResult(
                index=p.index, name=p.name, type=p.type, verdict=Verdict.SKIPPED, uses=p.uses
            )
            for p in self.plan.steps
            if p.index not in done
        )
        return SlotResult(
            slot=self.slot,
            verdict=verdict,
            reason=reason,
            unit=self.unit,
            steps=tuple(sorted((*ran, *skipped), key=lambda s: s.index)),
            duration_s=time.monotonic() - self.t0,
            extra=dict(self.extra),
        )

    async def run(self) -> SlotResult:
        self.t0 = time.monotonic()
        self.emit(SlotStarted(self.panel_id, self.slot))
        client: LineClient | None = None
        try:
            self._phase("presence")
            if not await self.controller.present(self.slot):
                return self.result(Verdict.EMPTY, "no board in the slot")
            await self.controller.led(self.slot, "busy")
            if self.binding.prepare is not None:
                finished = await self._rom_phase(self.binding.prepare)
                if finished is not None:
                    return self.result(*finished)
            self._phase("connect")
            client = await self.binding.open_dut(self._dut_log)
            client.tap_wire(self._dut_wire)
            dut = TestFirmwareClient(
                client,
                timeout=self.options.request_timeout,
                attempts=self.options.request_attempts,
                crypto_s=self.options.crypto_s,
            )
            verdict, reason = await self._bring_up(dut, powered=self.binding.prepare is not None)
            if verdict is Verdict.PASS:
                self._phase("test")
                client.guard_reboots()
                verdict, reason = await self._run_steps(dut)
                client.guard_reboots(False)
                if verdict is Verdict.PASS and client.rebooted is not None:
                    verdict, reason = Verdict.ERROR, _integrity_reason(client.rebooted)
            if verdict is Verdict.PASS:
                verdict, reason = self._identity_still_ours()
            if verdict is Verdict.PASS and self.binding.provision is not None:
                verdict, reason = await self._provision(
                    self.binding.provision, dut, client, verdict
                )
            return self.result(verdict, reason)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the slot's own fault never reaches the panel
            verdict, reason = _classify(exc)
            if reason.startswith("internal error"):
                _log.exception("slot %d failed", self.slot)
            return self.result(verdict, f"{self.phase}: {reason}")
        finally:
            if self.claims is not None:
                self.claims.release((self.panel_id, self.slot))
            await self._power_down(client)

    def _claim(self, mac: str) -> str | None:
        """Hold a MAC this slot's unit reported (ROM and firmware may each report one)
        while the slot runs; the clash reason if another slot holds it too."""
        if self.claims is None:
            self.claims = claims_for_loop()
        return self.claims.claim(mac, (self.panel_id, self.slot))

    def _identity_still_ours(self) -> tuple[Verdict, str]:
        """Before anything irreversible: no other slot has since reported this MAC."""
        clash = self.claims.clash((self.panel_id, self.slot)) if self.claims else None
        return (Verdict.ERROR, clash) if clash else (Verdict.PASS, "")

    async def _provision(
        self, provision: Provision, dut: TestFirmwareClient, client: LineClient, tested: Verdict
    ) -> tuple[Verdict, str]:
        """The unit passed every step of this run: provision it. Only here, only now."""
        assert self.unit is not None  # bring-up identified it
        self._phase("provision")

        def progress(stage: str, done: int, total: int) -> None:
            self.emit(FlashProgress(self.panel_id, self.slot, stage, done, total))

        access = SlotAccess(
            panel_id=self.panel_id,
            slot=self.slot,
            unit=self.unit,
            tested=tested,
            dut=dut,
            controller=self.controller,
            rom=dict(self.extra.get("rom", {})),
            tool_log=self._tool_log,
            progress=progress,
            emit=self.emit,
            phase=self._phase,
            release_port=client.close,
        )
        outcome = await provision(access)
        self.extra["provisioning"] = outcome.record
        return outcome.verdict, outcome.reason

    async def _rom_phase(self, prepare: Prepare) -> tuple[Verdict, str] | None:
        """Power the unit into its ROM loader and let the station identify and flash it."""
        self._phase("rom")
        await self.controller.power(self.slot, True)
        await self.controller.strap(self.slot, "boot")
        self._phase("flash")

        def progress(stage: str, done: int, total: int) -> None:
            self.emit(FlashProgress(self.panel_id, self.slot, stage, done, total))

        prepared = await prepare(
            RomAccess(self.panel_id, self.slot, self._tool_log, progress, self.emit)
        )
        self.unit = prepared.unit
        self.extra["rom"] = prepared.record
        self.extra.update(prepared.sections)
        if self.unit is not None:
            self.emit(UnitIdentified(self.panel_id, self.slot, self.unit))
            if clash := self._claim(self.unit.mac):
                return Verdict.ERROR, clash
        return prepared.finished

    async def _bring_up(self, dut: TestFirmwareClient, *, powered: bool) -> tuple[Verdict, str]:
        self._phase("power")
        ready = dut.line.expect_notice("READY")
        try:
            if not powered:  # the ROM phase has already switched the slot on
                await self.controller.power(self.slot, True)
            await self.controller.strap(self.slot, "run")
            self._phase("boot")
            try:
                async with asyncio.timeout(self.options.boot_timeout):
                    await ready
            except TimeoutError:
                # A READY lost to noise is not a dead unit: ask directly before judging.
                try:
                    await dut.ping()
                except (DeviceTimeout, DeviceError):
                    return Verdict.ERROR, (
                        f"boot: no READY from the test firmware within "
                        f"{self.options.boot_timeout:g} s and no answer to ping"
                    )
        finally:
            ready.cancel()
        self._phase("identify")
        info = await dut.info()
        clash = self._claim(info.mac)  # even a MAC that differs from the ROM's is claimed
        if self.unit is not None and self.unit.mac != info.mac:
            return Verdict.ERROR, (
                f"identify: the test firmware reports MAC {info.mac}, the ROM loader read "
                f"{self.unit.mac} (a different unit, or a firmware reading the wrong MAC)"
            )
        self.unit = UnitIdentity(
            mac=info.mac, chip=info.chip, firmware=info.firmware, protocol=info.proto
        )
        self.emit(UnitIdentified(self.panel_id, self.slot, self.unit))
        if clash:
            return Verdict.ERROR, clash
        if self.binding.prepare is None and self.binding.admit is not None:
            refused = await self.binding.admit(info.mac)
            if refused is not None:
                return refused
        if info.chip != self.plan.chip:
            return (
                Verdict.ERROR,
                f"identify: chip is {info.chip}, the sequence is for {self.plan.chip}",
            )
        want = self.plan.firmware_version
        if want and not info.firmware.endswith(f"/{want}"):
            return Verdict.ERROR, (
                f"identify: test firmware is {info.firmware}, the sequence wants version {want}"
            )
        return Verdict.PASS, ""

    async def _run_steps(self, dut: TestFirmwareClient | None) -> tuple[Verdict, str]:
        """Setup, then the main steps (skipped if setup failed), then cleanup, which always
        runs: after a FAIL, an ERROR, a stop on failure, and (its `on_abort` steps, within
        the plan's abort deadline) when the panel is aborted. A cleanup failure is recorded
        and never hides the main verdict; after a main PASS it makes the unit ERROR."""
        ctx = StepContext(
            self.panel_id,
            self.slot,
            dut,
            self.controller,
            self.emit,
            self.options.prompts,
            self.options.instruments,
            self.rf,
        )
        verdict, reason = Verdict.PASS, ""
        try:
            groups: tuple[Group, ...] = ("setup", "steps")
            for group in groups:
                pending = self.plan.group(group)
                if group == "steps" and verdict.is_failure:
                    for step in pending:
                        self._skip(step, "setup failed")
                    break
                while pending:
                    step = self._next_step(pending)
                    pending.remove(step)
                    result = await self._run_or_skip(step, ctx)
                    if self.integrity_lost is not None:
                        # Whatever ran before was judged on a unit that is gone; nothing
                        # after may run on top of it, cleanup included.
                        return Verdict.ERROR, self.integrity_lost
                    if result.verdict.is_failure:
                        if verdict is Verdict.PASS:
                            reason = f"{step.name}: {result.reason}"
                        verdict = worst(verdict, result.verdict)
                        if self.plan.stop_on_failure or group == "setup":
                            break
        except asyncio.CancelledError:
            # The panel is aborted (clamp opened): what is safe, within the deadline.
            await asyncio.shield(self._cleanup(ctx, aborting=True))
            raise
        cleaned, why = await self._cleanup(ctx, aborting=False)
        if self.integrity_lost is not None:
            return Verdict.ERROR, self.integrity_lost
        if verdict is Verdict.PASS and cleaned.is_failure:
            return Verdict.ERROR, f"cleanup {why}"
        return verdict, reason

    async def _cleanup(self, ctx: StepContext, *, aborting: bool) -> tuple[Verdict, str]:
        steps = [s for s in self.plan.group("cleanup") if s.on_abort or not aborting]
        verdict, reason = Verdict.PASS, ""
        if not steps:
            return verdict, reason
        try:
            async with asyncio.timeout(self.plan.abort_deadline if aborting else None):
                for step in steps:
                    result = await self._run_or_skip(step, ctx)
                    if self.integrity_lost is not None:
                        break
                    if result.verdict.is_failure and verdict is Verdict.PASS:
                        verdict, reason = result.verdict, f"{step.name}: {result.reason}"
        except TimeoutError:
            _log.warning("slot %d: cleanup cut at the abort deadline", self.slot)
        return verdict, reason

    async def _run_or_skip(self, step: PlanStep, ctx: StepContext) -> StepResult:
        try:
            why = self._skip_reason(step)
        except ConditionFailed as exc:  # never a silent skip: the step is ERROR
            return self._not_run(step, Verdict.ERROR, str(exc))
        if why is not None:
            return self._skip(step, why)
        if step.panel:
            result = await self.panel_steps.run_once(
                self.slot, step, lambda: self.run_step(step, ctx)
            )
        else:
            result = await self.run_step(step, ctx)
        self.steps.append(result)
        self._by_name[result.name] = result
        self.emit(StepEnded(self.panel_id, self.slot, result))
        return result

    def _skip(self, step: PlanStep, why: str) -> StepResult:
        return self._not_run(step, Verdict.SKIPPED, why)

    def _not_run(self, step: PlanStep, verdict: Verdict, why: str) -> StepResult:
        result = StepResult(
            index=step.index,
            name=step.name,
            type=step.type,
            verdict=verdict,
            reason=why,
            uses=step.uses,
        )
        self.steps.append(result)
        self._by_name[result.name] = result
        self.emit(StepEnded(self.panel_id, self.slot, result))
        return result

    def _skip_reason(self, step: PlanStep) -> str | None:
        """Why `step` does not run for this unit (its `needs`, its `when`), or None.
        ConditionFailed when its condition cannot be evaluated for this unit."""
        if not step.needs and step.when is None:
            return None
        done = self._by_name
        for name in step.needs:
            got = done.get(name)
            if got is None or got.verdict is not Verdict.PASS:
                word = got.verdict.value if got is not None else "did not run"
                return f"needs {name}, which {'is ' if got else ''}{word}"
        if step.when is not None and not step.when(self._facts(done)):
            return f"when {step.when.text!r} is false"
        return None

    def _facts(self, done: dict[str, StepResult]) -> Facts:
        rom = self.extra.get("rom")
        rom = rom if isinstance(rom, dict) else {}
        unit = self.unit
        values: dict[tuple[str, str], object] = {}
        for r in done.values():
            last = max((m.attempt for m in r.measurements), default=0)
            for m in r.measurements:
                if m.attempt == last:
                    values[(r.name, m.name)] = m.value
        return Facts(
            unit={
                "chip": (unit.chip if unit else "") or rom.get("chip"),
                "flash_size": rom.get("flash_size"),
                "firmware": unit.firmware if unit else None,
                "mac": unit.mac if unit else None,
                "variant": self.plan.variant or "base",
            },
            verdicts={name: r.verdict.value for name, r in done.items()},
            values=values,
        )

    def _next_step(self, pending: list[PlanStep]) -> PlanStep:
        """In order, unless the plan is resource-aware: then a step whose shared
        instruments are free right now runs first, and one whose instruments are busy
        waits behind steps that need none. The panel's wall time then approaches its
        lower bound (the longest slot, or the busiest instrument) instead of slots
        queueing for the golden board one after another."""
        first = pending[0]
        if not self.plan.resource_aware:
            return first
        for step in pending:
            if step.uses and self.resources.free(step.uses):
                return step
        for step in pending:
            if not step.uses:
                return step
        return first

    async def run_step(self, step: PlanStep, ctx: StepContext) -> StepResult:
        started = time.monotonic()
        verdict, reason, attempt, waited = Verdict.PASS, "", 0, 0.0
        try:
            if step.uses:
                async with self.resources.hold(step.uses) as waited:
                    verdict, reason, attempt = await self._attempts(step, ctx)
            else:
                verdict, reason, attempt = await self._attempts(step, ctx)
        except UnitIntegrityError as exc:
            verdict, reason, attempt = Verdict.ERROR, str(exc), ctx.attempt
            self.integrity_lost = reason
        return StepResult(
            index=step.index,
            name=step.name,
            type=step.type,
            verdict=verdict,
            measurements=tuple(ctx.attempts),  # every attempt's, each marked by attempt
            reason=reason,
            retries=attempt,
            started_s=started - self.t0,
            duration_s=time.monotonic() - started,
            uses=step.uses,
            resource_wait_s=waited,
        )

    async def _attempts(self, step: PlanStep, ctx: StepContext) -> tuple[Verdict, str, int]:
        verdict, reason = Verdict.PASS, ""
        for attempt in range(step.retries + 1):
            self.emit(StepStarted(self.panel_id, self.slot, step.index, step.name, attempt))
            ctx.begin(step.name, attempt)
            try:
                async with asyncio.timeout(step.timeout):
                    await step.run(ctx, step.spec)
            except TimeoutError:
                verdict, reason = Verdict.ERROR, f"timed out after {step.timeout:g} s"
            except DeviceGone as exc:
                return Verdict.ERROR, str(exc), attempt  # no retry can bring a port back
            except (UnitIntegrityError, DeviceRebooted) as exc:
                # The unit's state or identity is gone: a retry would judge another
                # state (or another unit) and could PASS on top of it.
                raise UnitIntegrityError(
                    f"{_integrity_reason(exc)} during step {step.name}"
                ) from exc
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                verdict, reason = _classify(exc)
                if verdict is Verdict.ERROR and reason.startswith("internal error"):
                    _log.exception("step %s in slot %d", step.name, self.slot)
            else:
                verdict = worst(*(m.verdict for m in ctx.measurements))
                reason = ctx.failure
                if verdict is Verdict.ERROR and reason.startswith("measurement chain broken"):
                    return verdict, reason, attempt  # an impossible reading is not retried
            if verdict is Verdict.PASS:
                return verdict, "", attempt
        return verdict, reason, step.retries

    async def _power_down(self, client: LineClient | None) -> None:
        # Shielded: an abort must still leave the slot unpowered.
        async def down() -> None:
            try:
                await self.controller.power(self.slot, False)
            except Exception as exc:
                _log.warning("slot %d: power off failed: %s", self.slot, exc)
            if client is not None:
                await client.close()

        await asyncio.shield(down())
