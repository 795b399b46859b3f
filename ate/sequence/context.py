"""StepContext: what a step executor (built-in or plugin) may touch, and how it measures."""

from __future__ import annotations

from collections.abc import Callable

from ate.drivers.dut import TestFirmwareClient
from ate.drivers.fixture import FixtureController
from ate.model.events import Event, Measured
from ate.model.limits import Limits
from ate.model.results import Measurement
from ate.model.verdict import Verdict
from ate.sequence.prompts import OperatorPrompts


class StepFailed(Exception):
    """The unit is bad in a way no single measurement shows (e.g. an I2C NACK)."""


class StepContext:
    """One per slot, reused across steps: allocation on the hot path costs overhead."""

    __slots__ = (
        "_dut",
        "_emit",
        "_fixture",
        "failure",
        "measurements",
        "panel_id",
        "prompts",
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
    ) -> None:
        self.panel_id = panel_id
        self.prompts = prompts  # the operator's page, when the station has one
        self.slot = slot
        self._dut = dut
        self._fixture = fixture
        self._emit = emit
        self.step_name = ""
        self.measurements: list[Measurement] = []
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

    def begin(self, step_name: str) -> None:
        self.step_name = step_name
        self.measurements = []
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
        """
        if verdict is None:
            verdict = Verdict.PASS
            if limits is not None and not isinstance(value, str):
                verdict = limits.judge(value)
        m = Measurement(name, value, unit, limits, verdict)
        self.measurements.append(m)
        if verdict is not Verdict.PASS and not self.failure:
            if shown is None:
                shown = f"{value:.6g}" if isinstance(value, float) else str(value)
            unit_text = f" {unit}" if unit else ""
            want = f", wanted {limits.describe()}" if limits is not None else ""
            self.failure = f"{name} = {shown}{unit_text}{want}"
        self._emit(Measured(self.panel_id, self.slot, self.step_name, m))
        return m
