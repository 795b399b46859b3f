"""Built-in step executors, one per step type, and the registry the plan looks them up in.

An executor is `async def run(ctx, step) -> None`: it measures through ctx.measure(),
raises StepFailed for a bad unit without a number, and lets driver errors propagate
(the slot runner turns them into verdicts).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable
from typing import Any

from ate.config import sequence as s
from ate.drivers.line_client import DeviceError
from ate.instruments.base import (
    DMM,
    MUX,
    SUPPLY,
    Dmm,
    InstrumentError,
    PowerSupply,
    Reading,
    RelayMux,
)
from ate.model.limits import Limits
from ate.model.units import Quantity, convert
from ate.model.verdict import Verdict
from ate.sequence import rf_steps
from ate.sequence.context import StepContext, StepFailed
from ate.sequence.prompts import Question

Executor = Callable[[StepContext, Any], Awaitable[None]]
EXECUTORS: dict[str, Executor] = {}

_LEVEL = (Limits(expect=0), Limits(expect=1))


def executor(type_name: str) -> Callable[[Executor], Executor]:
    def register(fn: Executor) -> Executor:
        EXECUTORS[type_name] = fn
        return fn

    return register


@executor("gpio_loopback")
async def gpio_loopback(ctx: StepContext, step: s.GpioLoopbackStep) -> None:
    # Drive every pair at once in an alternating pattern and then its inverse: each pin is
    # seen at both levels (stuck-at faults) and neighbouring pairs at opposite levels
    # (shorts between pairs), as in Espressif's conductivity test.
    pairs = list(step.pairs)
    if step.both_directions:
        pairs += [(b, a) for a, b in step.pairs]
    dut = ctx.dut
    for start in range(0, len(pairs), len(step.pairs)):
        group = pairs[start : start + len(step.pairs)]
        for out_pin, in_pin in group:
            await dut.gpio_mode(in_pin, "in")
            await dut.gpio_mode(out_pin, "out")
        for phase in (0, 1):
            levels = [(i + phase) % 2 for i in range(len(group))]
            for (out_pin, _), level in zip(group, levels, strict=True):
                await dut.gpio_set(out_pin, level)
            if step.settle:
                await asyncio.sleep(step.settle)
            for (out_pin, in_pin), level in zip(group, levels, strict=True):
                got = await dut.gpio_get(in_pin)
                ctx.measure(step.pair_name(out_pin, in_pin, level), got, "", _LEVEL[level])
        for out_pin, _ in group:  # leave nothing driven for the next step
            await dut.gpio_mode(out_pin, "in")


@executor("gpio_read")
async def gpio_read(ctx: StepContext, step: s.GpioReadStep) -> None:
    mode = {"none": "in", "up": "in_pullup", "down": "in_pulldown"}[step.pull]
    await ctx.dut.gpio_mode(step.pin, mode)
    ctx.measure(step.measured, await ctx.dut.gpio_get(step.pin), "", _LEVEL[step.expect])


@executor("i2c_probe")
async def i2c_probe(ctx: StepContext, step: s.I2cProbeStep) -> None:
    ack = await ctx.dut.i2c_probe(step.bus, step.address)
    ctx.measure(
        step.measured,
        int(ack),
        "",
        _LEVEL[1],
        shown="NACK (no device)" if not ack else None,
    )


@executor("i2c_read")
async def i2c_read(ctx: StepContext, step: s.I2cReadStep) -> None:
    try:
        data = await ctx.dut.i2c_read(step.bus, step.address, step.reg, step.length)
    except DeviceError as exc:
        if exc.code == "EHW":
            raise StepFailed(f"i2c{step.bus}@0x{step.address:02x}: {exc.message}") from None
        raise
    value = int.from_bytes(data, "big")
    limits = Limits(expect=step.expect) if step.expect is not None else None
    if step.limits is not None:
        limits = step.limits.to_limits()
    ctx.measure(
        step.measured,
        value,
        "",
        limits,
        shown=f"0x{value:0{2 * step.length}x}",
    )


@executor("spi_jedec")
async def spi_jedec(ctx: StepContext, step: s.SpiJedecStep) -> None:
    jedec = await ctx.dut.spi_jedec(step.bus)
    ctx.measure(
        step.measured,
        jedec,
        "",
        Limits(expect=step.expect),
        shown=f"0x{jedec:06x} (expected 0x{step.expect:06x})",
    )


@executor("spi_transfer")
async def spi_transfer(ctx: StepContext, step: s.SpiTransferStep) -> None:
    rx = await ctx.dut.spi_xfer(step.bus, bytes.fromhex(step.tx))
    want = bytes.fromhex(step.expect)
    mask = bytes.fromhex(step.mask) if step.mask else b"\xff" * len(want)
    ok = len(rx) == len(want) and all(
        (r & m) == (w & m) for r, w, m in zip(rx, want, mask, strict=True)
    )
    ctx.measure(
        step.measured,
        rx.hex(),
        "",
        None,
        verdict=Verdict.PASS if ok else Verdict.FAIL,
        shown=f"{rx.hex()} (expected {step.expect} under mask {mask.hex()})",
    )


@executor("adc")
async def adc(ctx: StepContext, step: s.AdcStep) -> None:
    limits = step.limits.for_quantity(Quantity.VOLTAGE)
    mv = await ctx.dut.adc_read_mv(step.channel, step.samples)
    ctx.measure(step.measured, convert(mv, "mV", limits.unit), limits.unit, limits)


@executor("rail_voltage")
async def rail_voltage(ctx: StepContext, step: s.RailVoltageStep) -> None:
    limits = step.limits.for_quantity(Quantity.VOLTAGE)
    dmm = ctx.instrument(DMM, Dmm)
    # Without a mux the DMM is wired to the one rail (a fixture file naming only a dmm).
    mux = ctx.instrument(MUX, RelayMux) if ctx.has_instrument(MUX) else None
    if mux is not None:
        await mux.select(step.rail)
    try:
        reading = await dmm.measure_volts_dc()
    finally:
        if mux is not None:
            await mux.open_all()
    ctx.measure(
        step.measured, convert(reading.value, reading.unit, limits.unit), limits.unit, limits
    )


_SAMPLE_S = 0.002  # upper bound of one current-sense sample, for the sleep hold time
_WAKE_NOTICE = {"light_sleep": "AWAKE", "deep_sleep": "READY"}


@executor("supply_current")
async def supply_current(ctx: StepContext, step: s.SupplyCurrentStep) -> None:
    limits = step.limits.for_quantity(Quantity.CURRENT)
    supply = ctx.instrument(SUPPLY, PowerSupply)
    dut = ctx.dut
    wake = _WAKE_NOTICE.get(step.mode)
    if wake is None:
        await dut.power_mode(step.mode)
        await asyncio.sleep(step.settle)
        reading = await supply.measure_current(step.samples)
    else:
        reading = await _current_while_asleep(ctx, step, supply, wake)
    value = convert(reading.value, reading.unit, limits.unit)
    ctx.measure(step.measured, value, limits.unit, limits)


_SLEEP_TRIES = 3


async def _current_while_asleep(
    ctx: StepContext, step: s.SupplyCurrentStep, supply: PowerSupply, wake: str
) -> Reading:
    """The DUT cannot hear us while asleep: it sleeps for a fixed hold, long enough for
    settling and sampling, then wakes (light sleep) or boots again (deep sleep). A reading
    is the sleeping unit's only if it ended before the hold could have: the hold began
    after we sent the request, so anything ending later than request + hold may have
    sampled the wake-up (a busy host, a slow instrument). Such a reading is not judged:
    the unit is put to sleep again, and after _SLEEP_TRIES misses the step is ERROR."""
    dut = ctx.dut
    hold_s = step.settle + step.samples * _SAMPLE_S + 0.1
    for _ in range(_SLEEP_TRIES):
        woke = dut.line.expect_notice(wake)
        try:
            asked = time.monotonic()
            await dut.power_mode(step.mode, hold_ms=round(hold_s * 1000))
            await asyncio.sleep(step.settle)
            reading = await supply.measure_current(step.samples)
            inside = time.monotonic() <= asked + hold_s
            async with asyncio.timeout(hold_s + 5.0):
                await woke
        finally:
            woke.cancel()
        if inside:
            return reading
    raise InstrumentError(
        f"no {step.mode} current reading fitted inside the unit's {hold_s * 1000:.0f} ms "
        f"sleep in {_SLEEP_TRIES} tries: the host or the supply answered too late"
    )


@executor("rf_golden")
async def rf_golden(ctx: StepContext, step: s.RfGoldenStep) -> None:
    result = await ctx.dut.rf_golden(step.channel, step.packets)
    for key, spec, unit in (
        ("rssi", step.rssi, "dBm"),
        ("freq_offset", step.freq_offset, "ppm"),
        ("per", step.per, "%"),
    ):
        limits = spec.to_limits() if spec is not None else None
        ctx.measure(step.rf_name(key), result[key], unit, limits)


PluginFn = Callable[[StepContext, dict[str, Any]], Awaitable[float | int | str | None]]


def plugin_executor(fn: PluginFn) -> Executor:
    """Wrap a plugin function: its return value, if any, is measured against `limits`."""

    async def run(ctx: StepContext, step: s.PluginStep) -> None:
        value = await fn(ctx, dict(step.params))
        if value is not None:
            limits = step.limits.to_limits() if step.limits is not None else None
            ctx.measure(step.name, value, limits.unit if limits else "", limits)
        elif step.limits is not None and not ctx.measurements:
            raise StepFailed(f"plugin {step.plugin} returned no value to check against limits")

    return run


__all__ = ["EXECUTORS", "Executor", "StepFailed", "plugin_executor"]

EXECUTORS.update(rf_steps.EXECUTORS)  # wifi_tx, wifi_rx, ble: their own module


@executor("prompt")
async def prompt(ctx: StepContext, step: s.PromptStep) -> None:
    if ctx.prompts is None:
        raise RuntimeError("no operator page to ask: this station runs without one")
    limits = step.limits.to_limits() if step.limits is not None else None
    question = Question(
        ctx.panel_id,
        ctx.slot,
        step.name,
        step.text,
        step.kind,
        step.choices,
        step.image,
        limits.unit if limits is not None else "",
    )
    answer = await ctx.prompts.ask(question)
    # Recorded like any measurement: the answer is the value, judged against what passes.
    if step.kind == "number":
        assert limits is not None  # the model requires limits for a number prompt
        try:
            value = float(answer)
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            # Not a reading: recorded as typed and never judged (ERROR, not FAIL).
            shown = f"{answer!r}, not a finite number"
            ctx.measure(
                step.measured, answer, limits.unit, None, shown=shown, verdict=Verdict.ERROR
            )
            return
        ctx.measure(step.measured, value, limits.unit, limits)
        return
    allowed = ("yes", "no") if step.kind == "confirm" else step.choices
    if answer not in allowed:
        shown = f"{answer!r}, not one of {', '.join(allowed)}"
        ctx.measure(step.measured, answer, "", None, shown=shown, verdict=Verdict.ERROR)
        return
    expect = step.expect or ("yes" if step.kind == "confirm" else None)
    verdict = Verdict.PASS if expect is None or answer == expect else Verdict.FAIL
    shown = answer if expect is None else f"{answer}, wanted {expect}"
    ctx.measure(step.measured, answer, "", None, shown=shown, verdict=verdict)
