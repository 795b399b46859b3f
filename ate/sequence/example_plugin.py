"""An example plugin step (entry point `ate.example.uptime`): copy it for your own.

A plugin is `async def fn(ctx: StepContext, params: dict) -> value | None`; the value
is checked against the step's `limits`. It may also call ctx.measure() itself.
"""

from __future__ import annotations

from typing import Any

from ate.sequence.context import StepContext


async def uptime_step(ctx: StepContext, params: dict[str, Any]) -> float:
    """Seconds since the DUT booted: catches a unit that rebooted during the test."""
    ms = await ctx.dut.uptime_ms()
    return ms / 1000.0
