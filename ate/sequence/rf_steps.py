"""The RF step executors (wifi_tx, wifi_rx, ble): the host drives both ends of each
exchange, the DUT on the slot's port and the golden board on its own (PROTOCOL.md
"RF golden board"), and judges the count the receiving side reports.

A reply that cannot be a reading (NaN, inf, text, more frames than were sent, an RSSI
above +30 or below -120 dBm) is ERROR, never judged. RSSI is judged corrected by the
slot's calibrated path loss; the raw value is recorded next to it. Imports ate.config,
ate.drivers, ate.model and ate.sequence.context.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from ate.config.sequence import BleStep, RfLink, RfStepBase, WifiRxStep, WifiTxStep
from ate.drivers.dut import RxCount, TestFirmwareClient
from ate.drivers.golden import GoldenLink
from ate.drivers.line_client import DeviceError
from ate.model.quantities import reading_problem
from ate.model.radio import RSSI_MAX_DBM, RSSI_MIN_DBM
from ate.model.verdict import Verdict
from ate.sequence.context import StepContext, StepFailed


async def _exchange(
    ctx: StepContext, step: RfStepBase, link: RfLink, golden: GoldenLink
) -> tuple[RxCount, float]:
    """One direction of `step` on its golden board: (what the receiver counted, the
    slot's path loss on that channel)."""
    mode = step.mode
    # Before any frame is sent: a step with no valid calibration never touches the air.
    loss = golden.path_loss_db(ctx.slot, mode, step.channel)
    dut = ctx.dut
    board = golden.board.firmware
    tx: TestFirmwareClient
    rx: TestFirmwareClient
    if link.endswith("_tx"):  # the DUT transmits, the golden board counts
        tx, rx = dut, board
        sender = (await dut.info()).mac
    else:
        tx, rx, sender = board, dut, golden.board.mac
    await rx.rf_rx_start(mode, step.channel, sender)
    sent = await tx.rf_tx(mode, step.channel, step.packets, step.interval_us)
    count = await rx.rf_rx_stop()
    if sent != step.packets:
        raise DeviceError("rf.tx", "EPROTO", f"sent={sent}, but {step.packets} were asked for")
    return count, loss


def _judge(
    ctx: StepContext, step: RfStepBase, link: RfLink, count: RxCount, loss_db: float
) -> None:
    packets = step.packets
    name = step.rf_name
    # An impossible field makes the whole reply unusable: nothing in it is judged.
    if count.frames > packets:
        ctx.measure(
            name(link, "per"),
            count.frames,
            "",
            None,
            verdict=Verdict.ERROR,
            shown=f"frames={count.frames} counted of {packets} sent, impossible",
        )
        return
    if count.rssi is not None and not RSSI_MIN_DBM <= count.rssi <= RSSI_MAX_DBM:
        ctx.measure(
            name(link, "rssi_raw"),
            count.rssi,
            "dBm",
            None,
            verdict=Verdict.ERROR,
            shown=f"{count.rssi:g} (no receiver reports outside "
            f"{RSSI_MIN_DBM:g} .. {RSSI_MAX_DBM:+g})",
        )
        return
    corrected = round(count.rssi + loss_db, 2) if count.rssi is not None else None
    if corrected is not None and reading_problem(corrected, "dBm") is not None:
        # A calibration that makes an impossible power: the chain is broken, not the unit.
        ctx.measure(name(link, "rssi"), corrected, "dBm", None)
        return
    if count.cfo is not None and reading_problem(count.cfo, "ppm") is not None:
        ctx.measure(name(link, "freq_offset"), count.cfo, "ppm", None)
        return
    per = 100.0 * (packets - count.frames) / packets
    ctx.measure(name(link, "per"), per, "%", _limits(step, "per"))
    missing: list[str] = []
    rssi_limits = _limits(step, "rssi")
    if count.rssi is not None and corrected is not None:
        ctx.measure(name(link, "rssi"), corrected, "dBm", rssi_limits)
        ctx.measure(name(link, "rssi_raw"), count.rssi, "dBm", None)
    elif rssi_limits is not None:
        missing.append("rssi (no frame received)")
    if "freq_offset" in step.keys(link):
        cfo_limits = _limits(step, "freq_offset")
        if count.cfo is not None:
            ctx.measure(name(link, "freq_offset"), count.cfo, "ppm", cfo_limits)
        elif cfo_limits is not None:
            missing.append("freq_offset (fewer than 3 frames)")
    if missing and not ctx.failure:  # a failed per already says why; else say what is missing
        raise StepFailed(
            f"{link} ch{step.channel}: {count.frames} of {packets} frames: no {', '.join(missing)}"
        )


def _limits(step: RfStepBase, key: str) -> Any:
    spec = step.limits_for(key)
    return spec.to_limits() if spec is not None else None


async def _run(ctx: StepContext, step: RfStepBase) -> None:
    golden = ctx.rf.link(step.golden)
    for link in step.links():
        count, loss = await _exchange(ctx, step, link, golden)
        _judge(ctx, step, link, count, loss)


async def wifi_tx(ctx: StepContext, step: WifiTxStep) -> None:
    await _run(ctx, step)


async def wifi_rx(ctx: StepContext, step: WifiRxStep) -> None:
    await _run(ctx, step)


async def ble(ctx: StepContext, step: BleStep) -> None:
    await _run(ctx, step)


EXECUTORS: dict[str, Callable[[StepContext, Any], Awaitable[None]]] = {
    "wifi_tx": wifi_tx,
    "wifi_rx": wifi_rx,
    "ble": ble,
}
