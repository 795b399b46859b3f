"""What a step, a unit and a panel produced: immutable once made."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from ate.model.limits import Limits
from ate.model.verdict import Verdict


@dataclass(frozen=True, slots=True)
class Measurement:
    name: str
    value: float | int | str
    unit: str = ""
    limits: Limits | None = None
    verdict: Verdict = Verdict.PASS
    attempt: int = 0  # 0 for the first attempt of its step, 1 for the first retry...

    def as_dict(self) -> dict[str, Any]:
        value: object = self.value
        out: dict[str, Any] = {"name": self.name}
        if isinstance(value, float) and not math.isfinite(value):
            # Strict JSON has no NaN or infinity: the record, the spool and the line
            # database keep null and the raw text, so the ERROR is delivered, not lost.
            out["value"], out["raw"] = None, repr(value)
        else:
            out["value"] = value
        out.update(
            unit=self.unit,
            limits=self.limits.as_dict() if self.limits else None,
            verdict=self.verdict.value,
            attempt=self.attempt,
        )
        return out


@dataclass(frozen=True, slots=True)
class StepResult:
    index: int
    name: str
    type: str
    verdict: Verdict
    measurements: tuple[Measurement, ...] = ()
    reason: str = ""
    retries: int = 0  # attempts beyond the first
    started_s: float = 0.0  # seconds since the slot started
    duration_s: float = 0.0
    uses: tuple[str, ...] = ()
    resource_wait_s: float = 0.0

    @property
    def passed_on_retry(self) -> bool:
        """PASS, but not at the first attempt: a marginal unit a test engineer wants to see."""
        return self.verdict is Verdict.PASS and self.retries > 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "type": self.type,
            "verdict": self.verdict.value,
            "reason": self.reason,
            "retries": self.retries,
            "passed_on_retry": self.passed_on_retry,
            "started_s": round(self.started_s, 6),
            "duration_s": round(self.duration_s, 6),
            "uses": list(self.uses),
            "resource_wait_s": round(self.resource_wait_s, 6),
            "measurements": [m.as_dict() for m in self.measurements],
        }


@dataclass(frozen=True, slots=True)
class UnitIdentity:
    mac: str
    chip: str = ""
    firmware: str = ""  # test firmware version string the DUT reports
    protocol: int = 0


@dataclass(frozen=True, slots=True)
class SlotResult:
    slot: int
    verdict: Verdict
    reason: str = ""
    unit: UnitIdentity | None = None
    steps: tuple[StepResult, ...] = ()
    duration_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
