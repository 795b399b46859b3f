"""The station's status: one owner, read by systemd's STATUS line, the log, the tests
and (later) the operator page. Per fixture: online or not, what it is doing, its last
verdicts, counters, and why it refuses to start a panel.

Fixture loops write it; everything else only reads or waits on it. Imports ate.model only.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ate.model.verdict import Verdict

State = Literal[
    "starting",  # opening the controller
    "offline",  # the controller is gone; retrying with back-off
    "waiting",  # for the trigger (clamp closed, button, operator)
    "debouncing",  # the clamp reads closed; waiting for it to stay closed
    "contact",  # checking every slot's UART and power before the panel
    "testing",  # the panel is running
    "refused",  # would start a panel but must not (disk full, fixture fault); says why
    "done",  # verdicts shown; waiting for the clamp to open
    "stopped",  # the station is shutting down
]


@dataclass
class FixtureStatus:
    fixture: str
    trigger: str
    online: bool = False
    state: State = "starting"
    panel_id: str | None = None
    last_verdicts: dict[int, Verdict] = field(default_factory=dict)
    last_reasons: dict[int, str] = field(default_factory=dict)
    panels: int = 0  # panels run to their end (aborted ones included)
    counts: dict[str, int] = field(default_factory=dict)  # verdict value -> units
    refusal: str | None = None
    last_error: str | None = None
    offline_since: float | None = None  # monotonic
    reconnects: int = 0

    def summary(self) -> str:
        if not self.online:
            return f"{self.fixture} offline ({self.last_error or 'connecting'})"
        text = f"{self.fixture} {self.state}"
        if self.state == "refused" and self.refusal:
            text += f": {self.refusal}"
        return f"{text} ({self.panels} panels)"


class StationStatus:
    """Every change bumps a version and wakes whoever waits on one."""

    def __init__(self, station: str) -> None:
        self.station = station
        self.fixtures: dict[str, FixtureStatus] = {}
        self.stopping = False
        self.config_error: str | None = None  # the last station file refused on reload
        self.reloads = 0
        self.version = 0
        self.started = time.monotonic()
        self._changed: asyncio.Event | None = None
        self._listeners: list[Callable[[StationStatus], None]] = []

    def add(self, fixture: str, trigger: str) -> FixtureStatus:
        self.fixtures[fixture] = FixtureStatus(fixture, trigger)
        self.changed()
        return self.fixtures[fixture]

    def remove(self, fixture: str) -> None:
        self.fixtures.pop(fixture, None)
        self.changed()

    def subscribe(self, listener: Callable[[StationStatus], None]) -> None:
        self._listeners.append(listener)

    def changed(self) -> None:
        self.version += 1
        if self._changed is not None:
            self._changed.set()
            self._changed = None
        for listener in self._listeners:
            listener(self)

    def update(self, fixture: str, **values: object) -> None:
        fs = self.fixtures[fixture]
        for k, v in values.items():
            if not hasattr(fs, k):
                raise AttributeError(f"FixtureStatus has no {k}")
            setattr(fs, k, v)
        self.changed()

    def panel_ended(
        self, fixture: str, verdicts: dict[int, Verdict], reasons: dict[int, str]
    ) -> None:
        fs = self.fixtures[fixture]
        fs.panels += 1
        fs.last_verdicts = dict(verdicts)
        fs.last_reasons = dict(reasons)
        for v in verdicts.values():
            fs.counts[v.value] = fs.counts.get(v.value, 0) + 1
        self.changed()

    async def wait_for(self, predicate: Callable[[StationStatus], bool]) -> None:
        """Until `predicate(self)` holds (checked at every change)."""
        while not predicate(self):
            if self._changed is None:
                self._changed = asyncio.Event()
            await self._changed.wait()

    def summary(self) -> str:
        """One line for systemd's STATUS= and the log."""
        if self.stopping:
            return f"{self.station}: stopping"
        parts = [f.summary() for f in self.fixtures.values()]
        return f"{self.station}: " + "; ".join(parts)
