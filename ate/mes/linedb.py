"""The `linedb` MES driver: the line database's rules before a unit is tested. A unit the
line has locked is recognised (PASS, never re-tested into a new identity); one past the
station's retest limit is not tested (FAIL). The database away admits: testing goes on
and the records wait in the station spool (a line that wants a hard interlock uses an MES).

May import ate.mes.gate, ate.model and ate.store.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from ate.mes.gate import Admission, UnitFacts
from ate.model.events import Event
from ate.model.verdict import Verdict
from ate.store.api import Store, StoreError

T = TypeVar("T")
# Runs a function of the store on the line database's own thread (ate.station.line.LineDb).
StoreCall = Callable[[Callable[[Store], T]], Awaitable[T]]
_log = logging.getLogger("ate.mes")


def admission(store: Store, chip_id: str, max_retests: int | None) -> Admission:
    """The rules, on one store (blocking: call it on the database's thread)."""
    history = store.unit_history(chip_id)
    runs = len(history.runs) if history is not None else 0
    if history is not None and history.prov_state == "locked":
        return Admission(
            False,
            f"already provisioned and locked (line database: serial {history.serial}); "
            "not re-tested",
            runs,
            Verdict.PASS,
        )
    if max_retests is None:
        return Admission.admit(retest_count=runs)
    allowed, reason = store.retest_allowed(chip_id, max_retests)
    if allowed:
        return Admission.admit(retest_count=runs)
    return Admission(False, f"not tested: {reason}", runs, Verdict.FAIL)


class LineDbGate:
    name = "linedb"

    def __init__(self, call: StoreCall[Admission], max_retests: int | None) -> None:
        self._call = call
        self.max_retests = max_retests
        self._warned = False
        self.unreachable = 0  # check-ins admitted because the database was away

    async def check_in(self, unit: UnitFacts) -> Admission:
        try:
            return await self._call(lambda s: admission(s, unit.chip_id, self.max_retests))
        except StoreError as exc:
            self.unreachable += 1
            if not self._warned:
                _log.warning("retest policy not checked: %s", exc)
                self._warned = True
            return Admission.admit(f"line database not consulted: {exc}")

    def observe(self, event: Event) -> None:
        """Nothing to send: the store sink records every unit in the line database."""

    async def aclose(self) -> None:
        """The line database is the station's (LineDb), closed with its configuration."""
