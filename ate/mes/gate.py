"""The MES gate: what a driver answers before a unit is tested (`check_in` -> Admission)
and what it is told as the panel runs (`observe`, the station's events). A gate that
cannot decide (an MES away, no answer in time) refuses with the reason: a unit is never
tested on a silent pass. The line database driver is the exception the line chose: its
database away admits, the records waiting in the spool (ate/mes/linedb.py).

May import ate.model only.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Protocol

from ate.model.events import Event
from ate.model.verdict import Verdict


@dataclass(frozen=True, slots=True)
class UnitFacts:
    """What the station knows of a unit when it asks: its chip id (the MAC) and where."""

    chip_id: str
    station: str


@dataclass(frozen=True, slots=True)
class Admission:
    """`allowed`: test the unit. Otherwise `verdict` is the slot's verdict without
    testing (PASS: a locked unit recognised; FAIL: past the retest limit; ERROR: the MES
    refused or did not answer) and `reason` says why, for the operator and the record."""

    allowed: bool
    reason: str = ""
    retest_count: int | None = None  # earlier runs of this unit, when the driver knows
    verdict: Verdict = Verdict.ERROR

    @classmethod
    def admit(cls, reason: str = "", retest_count: int | None = None) -> Admission:
        return cls(True, reason, retest_count, Verdict.PASS)


class MesGate(Protocol):
    name: str

    async def check_in(self, unit: UnitFacts) -> Admission: ...

    def observe(self, event: Event) -> None:
        """The station's events, on the loop (quick; a driver that sends queues)."""

    async def aclose(self) -> None: ...


# The shape the slots' ROM phase calls (ate.station.flashing.Admit).
AdmitFn = Callable[[str], Awaitable[tuple[Verdict, str] | None]]


def admit_through(gate: MesGate, station: str) -> AdmitFn:
    """The slots' hook: None to test the unit, else its verdict and reason untested."""

    async def admit(chip_id: str) -> tuple[Verdict, str] | None:
        a = await gate.check_in(UnitFacts(chip_id, station))
        return None if a.allowed else (a.verdict, a.reason)

    return admit
