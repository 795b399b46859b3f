"""StepContext.measure, the one place a reading becomes a judged measurement: what can
not be a reading is ERROR whatever the limits say, and plugin values of the wrong type
are ERROR, not unjudged."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from ate.model.events import Event
from ate.model.limits import Limits
from ate.model.quantities import PHYSICAL_RANGES, reading_problem
from ate.model.units import UNITS
from ate.model.verdict import Verdict
from ate.scheduler.claims import UnitClaims, claims_for_loop
from ate.sequence.context import StepContext
from ate.sequence.steps import plugin_executor


def _ctx() -> tuple[StepContext, list[Event]]:
    events: list[Event] = []
    ctx = StepContext("p1", 1, None, None, events.append)
    ctx.begin("step")
    return ctx, events


# One impossible reading per quantity, each against a one-sided limit it would pass.
IMPOSSIBLE = [
    ("current", -5.0, "mA", Limits(high=10.0, unit="mA")),
    ("voltage", -1.2, "V", Limits(high=3.6, unit="V")),
    ("rf power", 99.0, "dBm", Limits(low=-70.0, unit="dBm")),
    ("frequency error", 1e6, "ppm", Limits(low=-20.0, unit="ppm")),
    ("packet error rate", 130.0, "%", Limits(low=0.0, unit="%")),
    ("packet error rate", -3.0, "%", Limits(high=10.0, unit="%")),
]


@pytest.mark.parametrize(("what", "value", "unit", "limits"), IMPOSSIBLE)
def test_an_impossible_reading_is_error_not_judged(
    what: str, value: float, unit: str, limits: Limits
) -> None:
    ctx, events = _ctx()
    m = ctx.measure("x", value, unit, limits)
    assert m.verdict is Verdict.ERROR
    assert ctx.failure.startswith("measurement chain broken: x: ")
    assert "outside the physical range" in ctx.failure
    assert len(events) == 1  # still recorded


def test_noise_around_zero_is_a_reading() -> None:
    ctx, _ = _ctx()
    assert ctx.measure("i", -0.02, "mA", Limits(high=1.0, unit="mA")).verdict is Verdict.PASS


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_is_error_even_without_limits(value: float) -> None:
    ctx, _ = _ctx()
    m = ctx.measure("x", value, "V")
    assert m.verdict is Verdict.ERROR
    assert "is not a finite number" in ctx.failure
    record = m.as_dict()
    assert record["value"] is None and record["raw"] == repr(value)


def test_every_quantity_has_a_range() -> None:
    assert {q for q, _ in UNITS.values()} <= set(PHYSICAL_RANGES)
    assert reading_problem(True, "") == "True is not a number (bool)"


class _Dut:
    pass


@pytest.mark.parametrize(
    ("returned", "limits", "why"),
    [
        (
            "3.3",
            Limits(low=3.0, high=3.6, unit="V"),
            "is text, the limits 3 .. 3.6 V want a number",
        ),
        (True, Limits(expect=1), "True is not a number (bool)"),
        (math.nan, Limits(low=0.0), "nan is not a finite number"),
        (b"\x01", Limits(low=0.0), "is not a number (bytes)"),
    ],
)
def test_a_plugin_value_of_the_wrong_type_is_error(returned: Any, limits: Limits, why: str) -> None:
    async def plugin(ctx: StepContext, params: dict[str, Any]) -> Any:
        return returned

    class Spec:
        name = "plug"
        plugin = "test.plugin"
        params: dict[str, Any] = {}

    Spec.limits = type("L", (), {"to_limits": staticmethod(lambda: limits)})()  # type: ignore[attr-defined]
    ctx, _ = _ctx()
    asyncio.run(plugin_executor(plugin)(ctx, Spec))
    (m,) = ctx.measurements
    assert m.verdict is Verdict.ERROR
    assert why in ctx.failure


def test_retries_keep_every_attempt_marked() -> None:
    ctx, _ = _ctx()
    ctx.measure("v", 5.0, "V", Limits(high=3.6, unit="V"))
    ctx.begin("step", attempt=1)
    ctx.measure("v", 3.3, "V", Limits(high=3.6, unit="V"))
    assert [(m.attempt, m.verdict) for m in ctx.attempts] == [
        (0, Verdict.FAIL),
        (1, Verdict.PASS),
    ]
    assert [m.attempt for m in ctx.measurements] == [1]  # the last attempt judges the step


def test_claims_mark_every_holder_and_release() -> None:
    claims = UnitClaims()
    assert claims.claim("aa:bb:cc:dd:ee:ff", ("p1", 1)) is None
    reason = claims.claim("aa:bb:cc:dd:ee:ff", ("p2", 3))
    assert reason == "identity clash: MAC aa:bb:cc:dd:ee:ff is also reported by slot 1 of panel p1"
    assert claims.clash(("p1", 1)) == (
        "identity clash: MAC aa:bb:cc:dd:ee:ff is also reported by slot 3 of panel p2"
    )
    claims.release(("p1", 1))
    claims.release(("p2", 3))
    assert claims.held == 0 and claims.claim("aa:bb:cc:dd:ee:ff", ("p3", 1)) is None


def test_one_registry_per_event_loop() -> None:
    async def get() -> UnitClaims:
        return claims_for_loop()

    async def twice() -> tuple[UnitClaims, UnitClaims]:
        return await get(), await get()

    a, b = asyncio.run(twice())
    assert a is b
    assert asyncio.run(get()) is not a
