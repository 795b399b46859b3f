"""StepContext: what a step executor (built-in or plugin) may touch, and how it measures."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from ate.drivers.dut import TestFirmwareClient
from ate.drivers.fixture import FixtureController
from ate.drivers.golden import RfBoards
from ate.instruments.registry import Instruments, bound
from ate.model.events import Event, Measured
from ate.model.limits import Limits
from ate.model.quantities import reading_problem
from ate.model.results import Measurement
from ate.model.verdict import Verdict
from ate.sequence.prompts import OperatorPrompts

T = TypeVar("T")


class StepFailed(Exception):
    """The unit is bad in a way no single measurement shows (e.g. an I2C NACK)."""


class UnitIntegrityError(Exception):
    """The unit under test is no longer the one, or in the state, the run began with
    (it rebooted mid-test, its identity changed or clashes with another slot's): ERROR
    for the slot, no retry, and nothing later in its run may pass on top of it."""


class StepContext:
    """One per slot, reused across steps: allocation on the hot path costs overhead."""

    __slots__ = (
        "_dut",
        "_emit",
        "_fixture",
        "_instruments",
        "attempt",
        "attempts",
        "failure",
        "measurements",
        "panel_id",
        "prompts",
        "rf_boards",
        "slot",
        "step_name",
    )

    def __init__(
        self,
        panel_id: str,
        slot: int,
        dut: TestFirmwareClient | None,
        fixture: FixtureController | None,
        emit: Callable[[Event], None],
        prompts: OperatorPrompts | None = None,
        instruments: Instruments | None = None,
        rf: RfBoards | None = None,
    ) -> None:
        self.panel_id = panel_id
        # Without a fixture file's instruments, the fixture MCU's: one per slot, so that
        # a slot's rail selection is its own.
        self._instruments = instruments if instruments is not None else Instruments({})
        self.rf_boards = rf  # the panel's golden boards, when its plan has RF steps
        self.prompts = prompts  # the operator's page, when the station has one
        self.slot = slot
        self._dut = dut
        self._fixture = fixture
        self._emit = emit
        self.step_name = ""
        self.measurements: list[Measurement] = []  # this attempt's: they judge the step
        self.attempts: list[Measurement] = []  # every attempt's, for the record
        self.attempt = 0
        self.failure = ""  # why the first failing measurement failed: the step's reason

    @property
    def dut(self) -> TestFirmwareClient:
        if self._dut is None:
            raise RuntimeError(f"slot {self.slot} has no DUT connection")
        return self._dut

    @property
    def fixture(self) -> FixtureController:
        if self._fixture is None:
            raise RuntimeError(f"slot {self.slot} has no fixture controller")
        return self._fixture

    def instrument(self, role: str, protocol: Callable[..., T]) -> T:
        """The instrument in `role`, bound to this slot's channel, as `protocol`
        (ate.instruments.base); InstrumentError (the step ERROR) when there is none."""
        return bound(self._instruments.for_slot(role, self.slot, self._fixture), role, protocol)

    def has_instrument(self, role: str) -> bool:
        return self._instruments.has(role)

    @property
    def rf(self) -> RfBoards:
        if self.rf_boards is None:
            raise RuntimeError(f"slot {self.slot} has no golden board opened for this panel")
        return self.rf_boards

    def begin(self, step_name: str, attempt: int = 0) -> None:
        self.step_name = step_name
        self.measurements = []
        if attempt == 0:
            self.attempts = []
        self.attempt = attempt
        self.failure = ""

    def measure(
        self,
        name: str,
        value: float | int | str,
        unit: str = "",
        limits: Limits | None = None,
        *,
        shown: str | None = None,
        verdict: Verdict | None = None,
    ) -> Measurement:
        """Record a measurement, judged by `limits` unless a `verdict` is given.

        `shown` is how the value reads in a failure reason (e.g. hex for a JEDEC id).
        A number that cannot be a reading (not finite, a bool, a fraction of a count,
        outside its quantity's physical range) is ERROR whatever the limits or the given
        verdict say; so is text measured against numeric limits.
        """
        problem = None
        if not isinstance(value, str):
            problem = reading_problem(value, unit)
        elif limits is not None:
            problem = f"{value!r} is text, the limits {limits.describe()} want a number"
        if problem is not None:
            verdict = Verdict.ERROR
        elif verdict is None:
            verdict = Verdict.PASS if limits is None else limits.judge(value)
        m = Measurement(name, value, unit, limits, verdict, self.attempt)
        self.measurements.append(m)
        self.attempts.append(m)
        if verdict is not Verdict.PASS and not self.failure:
            if problem is not None:
                self.failure = f"measurement chain broken: {name}: {problem}"
            else:
                if shown is None:
                    shown = f"{value:.6g}" if isinstance(value, float) else str(value)
                unit_text = f" {unit}" if unit else ""
                want = f", wanted {limits.describe()}" if limits is not None else ""
                self.failure = f"{name} = {shown}{unit_text}{want}"
        self._emit(Measured(self.panel_id, self.slot, self.step_name, m))
        return m
