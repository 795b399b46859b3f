"""The scheduler's event stream: what logs, records, the CLI and the UI consume.

Events are small frozen records; subscribers must not block (they run on the loop).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ate.model.results import Measurement, SlotResult, StepResult, UnitIdentity
from ate.model.verdict import Verdict


@dataclass(frozen=True, slots=True)
class Event:
    panel_id: str


@dataclass(frozen=True, slots=True)
class PanelStarted(Event):
    fixture: str
    station: str
    operator: str
    sequence: dict[str, Any]  # name, version, sha256, test firmware sha256
    slots: tuple[int, ...]
    started_at: str  # ISO 8601 UTC wall clock, for records; durations use monotonic


@dataclass(frozen=True, slots=True)
class SlotStarted(Event):
    slot: int


@dataclass(frozen=True, slots=True)
class SlotPhase(Event):
    """A slot entered a phase outside the sequence: power, connect, identify, ..."""

    slot: int
    phase: str


@dataclass(frozen=True, slots=True)
class UnitIdentified(Event):
    slot: int
    unit: UnitIdentity


@dataclass(frozen=True, slots=True)
class FlashProgress(Event):
    """esptool writing an image into a slot's flash (bytes of this image so far)."""

    slot: int
    stage: str
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class StepStarted(Event):
    slot: int
    index: int
    name: str
    attempt: int


@dataclass(frozen=True, slots=True)
class Measured(Event):
    slot: int
    step: str
    measurement: Measurement


@dataclass(frozen=True, slots=True)
class StepEnded(Event):
    slot: int
    result: StepResult


@dataclass(frozen=True, slots=True)
class DutLog(Event):
    """A line the DUT printed that is not a protocol reply (ESP-IDF log, boot noise), or
    a line a host tool printed about it (`source` "esptool")."""

    slot: int
    line: str
    source: str = "dut"


@dataclass(frozen=True, slots=True)
class DutWire(Event):
    """A test-protocol line between the host and the DUT, as text without its checksum:
    a request sent (`direction` "tx", `resend` for a repeat under its id) or a reply,
    notice or corrupt line received ("rx"). `command` is the request's, for a reply the
    request's it answers (when known); `corrupt` says why a line was refused. The slot
    log keeps them, so that the unit can be replayed (ate.sim.replay)."""

    slot: int
    direction: str  # "tx" | "rx"
    line: str
    command: str = ""
    resend: bool = False
    corrupt: str = ""


@dataclass(frozen=True, slots=True)
class ProvisionAct(Event):
    """An irreversible act on a unit (serial burn, certificate issue, eFuse burn): its
    intent before, its outcome after. `detail` holds ids, fingerprints and fuse values,
    never a key or a secret."""

    slot: int
    act: str
    kind: str  # "intent" | "outcome"
    status: str  # intent: "planned"; outcome: "done" | "already" | "failed"
    detail: dict[str, Any]


@dataclass(frozen=True, slots=True)
class SlotEnded(Event):
    result: SlotResult


@dataclass(frozen=True, slots=True)
class PanelEnded(Event):
    verdicts: dict[int, Verdict]
    duration_s: float
    aborted: bool
