"""The golden check: a known-good reference unit in each slot transmits on each channel,
the golden board measures it, and the path loss of that slot and channel is the
reference's known tx power minus the RSSI the golden board heard. The result is a new
calibration (ate.rf.calibration) compared with the one before it (drift).

It runs as a panel (the same bring-up and test-firmware flashing as a test run) whose
only step per slot measures every channel; the golden board is opened and role-checked
as for RF steps, without a calibration (this is what makes one). Imports ate.station.runner,
ate.scheduler, ate.sequence, ate.drivers, ate.rf and ate.config.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from ate.config.loader import LoadedFixture, LoadedSequence
from ate.drivers.golden import GoldenBoard, GoldenLink, NotGolden, RfBoards
from ate.drivers.line_client import DeviceError, DeviceGone, DeviceTimeout
from ate.drivers.ports import resolve_port
from ate.model.radio import BLE_CHANNELS, TX_INTERVAL_US, RfMode, channel_key, channels
from ate.rf import calibration
from ate.rf.calibration import Calibration
from ate.scheduler.bus import EventBus
from ate.scheduler.panel import PanelResult, PanelSpec, run_panel
from ate.scheduler.slot import SlotOptions
from ate.sequence.context import StepContext, StepFailed
from ate.sequence.plan import Plan, PlanStep
from ate.station.runner import (
    Endpoints,
    RfRefused,
    new_panel_id,
    open_controller,
    sequence_info,
    slot_bindings,
)

PACKETS = 20
# The fastest frames each radio sends (BLE: non-connectable advertising, every 20 ms):
# the golden check needs frames, not a realistic advertiser.
INTERVAL_US = {mode: low for mode, (low, _high) in TX_INTERVAL_US.items()}
MIN_FRAMES = PACKETS // 2  # fewer heard: no reference unit there, or its antenna is off


@dataclass(frozen=True)
class CheckSpec:
    """What one golden check measures."""

    golden: str
    reference_dbm: float
    channels: tuple[tuple[RfMode, int], ...]


@dataclass
class CheckResult:
    panel: PanelResult
    path_loss_db: dict[int, dict[str, float]] = field(default_factory=dict)
    calibration: Calibration | None = None
    drift: list[tuple[int, str, float]] = field(default_factory=list)

    @property
    def failed_slots(self) -> dict[int, str]:
        return {s: r.reason for s, r in self.panel.slots.items() if s not in self.path_loss_db}


def default_channels(chip: str) -> tuple[tuple[RfMode, int], ...]:
    wifi: tuple[tuple[RfMode, int], ...] = tuple(("wifi", c) for c in channels(chip, "wifi"))
    return wifi + tuple(("ble", c) for c in BLE_CHANNELS)


def _measure(check: CheckSpec, found: dict[int, dict[str, float]]) -> Any:
    async def run(ctx: StepContext, _spec: object) -> None:
        link = ctx.rf.link(check.golden)
        golden = link.board.firmware
        mac = (await ctx.dut.info()).mac
        losses: dict[str, float] = {}
        for mode, ch in check.channels:
            await golden.rf_rx_start(mode, ch, mac)
            await ctx.dut.rf_tx(mode, ch, PACKETS, INTERVAL_US[mode])
            heard = await golden.rf_rx_stop()
            key = channel_key(mode, ch)
            if heard.frames < MIN_FRAMES or heard.rssi is None:
                raise StepFailed(
                    f"{key}: the golden board heard {heard.frames} of {PACKETS} frames from "
                    "the reference unit (is a known-good unit in the slot?)"
                )
            loss = round(check.reference_dbm - heard.rssi, 2)
            low, high = calibration.PATH_LOSS_DB
            if not low <= loss <= high:  # a gain, or beyond any shield box: not a path
                raise StepFailed(
                    f"{key}: path loss {loss:+.1f} dB is outside {low:g}..{high:g} dB "
                    f"(reference {check.reference_dbm:g} dBm heard at {heard.rssi:g} dBm): "
                    "check --reference-dbm and the reference unit"
                )
            ctx.measure(f"path_loss.{key}", loss, "", None)
            losses[key] = loss
        found[ctx.slot] = losses

    return run


async def run_check(
    fixture: LoadedFixture,
    sequence: LoadedSequence,
    check: CheckSpec,
    sim: Endpoints | None,
    *,
    previous: Calibration | None,
    options: SlotOptions | None = None,
    now: dt.datetime | None = None,
    valid_days: int = calibration.DEFAULT_VALID_DAYS,
) -> CheckResult:
    """Measure every enabled slot; the new calibration (None if a slot failed)."""
    res = fixture.model.resources[check.golden]
    if res.port is None:
        raise RfRefused(f"golden board {check.golden!r}: the fixture gives it no port")
    try:
        endpoint = resolve_port(res.port, sim.golden.get(check.golden) if sim else None)
        board = await GoldenBoard.open(check.golden, endpoint, res.port.baud)
    except (NotGolden, DeviceGone, DeviceTimeout, DeviceError) as exc:
        raise RfRefused(f"golden board {check.golden!r}: {exc}") from None
    found: dict[int, dict[str, float]] = {}
    step = PlanStep(
        index=0,
        name="golden_check",
        type="golden_check",
        timeout=30.0 + len(check.channels) * PACKETS * 0.05,
        retries=0,
        uses=(check.golden,),
        run=_measure(check, found),
        spec=None,
        golden=check.golden,
    )
    plan = Plan(
        name="golden-check",
        version="1",
        chip=sequence.model.chip,
        stop_on_failure=True,
        steps=(step,),
        firmware_version=sequence.model.test_firmware.version,
    )
    # No calibration to apply: the check measures what a calibration will correct.
    rf = RfBoards({check.golden: GoldenLink(board, None)}, check.golden)
    try:
        ctrl = await open_controller(fixture, sim)
        try:
            panel = await run_panel(
                PanelSpec(
                    panel_id=new_panel_id(fixture.model.fixture) + "-golden-check",
                    fixture=fixture.model.fixture,
                    station="golden-check",
                    operator="golden-check",
                    plan=plan,
                    sequence_info=sequence_info(sequence),
                    bindings=slot_bindings(fixture, sequence, sim),
                    controller=ctrl,
                    resources={n: r.capacity for n, r in fixture.model.resources.items()},
                    options=options or SlotOptions(),
                    rf=rf,
                ),
                EventBus(),
            )
        finally:
            await ctrl.close()
    finally:
        await rf.close()
    result = CheckResult(panel, found)
    if not found or result.failed_slots:
        return result
    if previous is not None and (
        previous.golden_mac != board.mac or previous.fixture != fixture.model.fixture
    ):
        previous = None  # another board or fixture: nothing to compare with
    cal = calibration.new(
        fixture=fixture.model.fixture,
        golden=check.golden,
        golden_mac=board.mac,
        reference_tx_dbm=check.reference_dbm,
        path_loss_db=found,
        previous=previous,
        now=now or dt.datetime.now(dt.UTC),
        valid_days=valid_days,
        tolerance_db=previous.tolerance_db if previous else calibration.DEFAULT_TOLERANCE_DB,
    )
    result.calibration = cal
    result.drift = cal.drifted()
    return result
