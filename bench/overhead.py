"""(a) Executive overhead per step and per measurement with no I/O, next to OpenHTF's.

Both executives run N no-op steps (phases), then N steps of M measurements each; the
per-step cost is the slope between two sizes of N, so fixed start-up costs cancel.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from ate.model.limits import Limits
from ate.scheduler.bus import EventBus
from ate.scheduler.resources import ResourcePool
from ate.scheduler.slot import SlotBinding, SlotOptions, SlotRun
from ate.sequence.context import StepContext
from ate.sequence.plan import Plan, PlanStep

MEASUREMENTS = 10
_LIMITS = Limits(low=0, high=10, unit="mA")


async def _noop(ctx: StepContext, spec: Any) -> None:
    return None


async def _measure(ctx: StepContext, spec: Any) -> None:
    for name in spec:
        ctx.measure(name, 5.0, "mA", _LIMITS)


def _plan(n: int, measured: bool) -> Plan:
    names = tuple(f"m{j}" for j in range(MEASUREMENTS))
    steps = tuple(
        PlanStep(
            i,
            f"s{i}",
            "plugin",
            5.0,
            0,
            (),
            _measure if measured else _noop,
            names if measured else None,
        )
        for i in range(n)
    )
    return Plan("bench", "1", "esp32s3", False, steps)


async def _no_dut(_sink: Any) -> Any:
    raise AssertionError("the overhead benchmark opens no port")


def ate_run(n: int, measured: bool, subscribers: int = 1) -> float:
    """Seconds to run the plan's steps through SlotRun, with a counting subscriber."""
    bus = EventBus()
    seen = [0]

    def count(_event: object) -> None:
        seen[0] += 1

    for _ in range(subscribers):
        bus.subscribe(count)
    run = SlotRun(
        "bench",
        SlotBinding(1, _no_dut),
        _plan(n, measured),
        None,  # type: ignore[arg-type]
        ResourcePool({}),
        bus.emit,
        SlotOptions(),
    )

    async def go() -> float:
        t0 = time.perf_counter()
        await run._run_steps(None)
        return time.perf_counter() - t0

    elapsed = asyncio.run(go())
    assert len(run.steps) == n and seen[0] > 0
    return elapsed


def _slope(fn: Any, small: int, big: int, **kw: Any) -> float:
    fn(small, **kw)  # warm up
    return (fn(big, **kw) - fn(small, **kw)) / (big - small)


@dataclass(frozen=True)
class Overhead:
    per_step_us: float
    per_measurement_us: float


def ate_overhead() -> Overhead:
    step = _slope(ate_run, 2000, 20000, measured=False)
    measured = _slope(ate_run, 2000, 20000, measured=True)
    return Overhead(step * 1e6, (measured - step) / MEASUREMENTS * 1e6)


def openhtf_overhead() -> Overhead | None:
    try:
        from bench import openhtf_phases
    except ImportError:
        return None
    logging.getLogger("openhtf").setLevel(logging.CRITICAL)
    step = _slope(openhtf_phases.run, 100, 600, measured=False)
    measured = _slope(openhtf_phases.run, 100, 600, measured=True)
    return Overhead(step * 1e6, (measured - step) / MEASUREMENTS * 1e6)
