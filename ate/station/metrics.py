"""The station's Prometheus metrics: counters fed by the event bus, gauges read from the
store sink at scrape time, in a CollectorRegistry of this station's own (never the
process-wide one, so two stations in one test process do not mix). Served as /metrics on
the operator's page, or by a small server of its own when the page is off.

May import ate.model, ate.scheduler (the bus's events) and ate.ui.app (the server).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

import uvicorn
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    generate_latest,
)
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ate.model.events import Event, PanelEnded, PanelStarted, SlotEnded
from ate.ui.app import PageServer

UPH_WINDOW_S = 3600.0  # units per hour over the last hour (or since start, when sooner)


@dataclass(frozen=True)
class LineState:
    """What the scrape reads from the store sink: is the line database reachable, and
    how many entries wait in the spool for it."""

    reachable: bool | None  # None: not tried yet
    backlog: int


class StationMetrics:
    def __init__(
        self,
        station: str,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.station = station
        self.registry = CollectorRegistry(auto_describe=True)
        self._clock = clock
        self._started = clock()
        self._done: deque[float] = deque()  # monotonic times of units tested, last hour
        self._fixture_of: dict[str, str] = {}  # panel id -> fixture
        self._fixtures: set[str] = set()
        self.line_state: Callable[[], LineState] | None = None
        r = self.registry
        self.panels = Counter(
            "ate_panels", "Panels run to their end (aborted ones included)", ["fixture"], registry=r
        )
        self.units = Counter(
            "ate_units", "Units tested, by verdict", ["fixture", "verdict"], registry=r
        )
        self.slot_failures = Counter(
            "ate_slot_failures",
            "Units that failed (FAIL) or could not be measured (ERROR), by slot: a slot that "
            "fails more than its neighbours points at the fixture, not the units",
            ["fixture", "slot", "verdict"],
            registry=r,
        )
        self.uph = Gauge(
            "ate_units_per_hour", "Units tested per hour, over the last hour", registry=r
        )
        self.uph.set_function(self._units_per_hour)
        self.spool_backlog = Gauge(
            "ate_spool_backlog",
            "Records and audit entries waiting for the line database",
            registry=r,
        )
        self.line_up = Gauge(
            "ate_line_database_up",
            "1 when the last delivery reached the line database, 0 when it did not, NaN before",
            registry=r,
        )
        self.line_up.set(math.nan)
        self.calibration = Gauge(
            "ate_last_calibration_timestamp_seconds",
            "Unix time of the fixture's last calibration; NaN until one is recorded",
            ["fixture"],
            registry=r,
        )
        self.events_dropped = Counter(
            "ate_line_events_dropped",
            "Events a line publisher (MQTT, CFX) dropped while its broker was away",
            ["sink"],
            registry=r,
        )

    def add_fixture(self, fixture: str) -> None:
        """A fixture's series appear at zero (and its calibration at NaN) before its first
        panel, so a dashboard sees the fixture at once."""
        if fixture not in self._fixtures:
            self._fixtures.add(fixture)
            self.panels.labels(fixture)
            self.calibration.labels(fixture).set(math.nan)

    def set_calibration(self, fixture: str, unix_time: float) -> None:
        """The fixture's last calibration (for the calibration work to call)."""
        self.calibration.labels(fixture).set(unix_time)

    def on_event(self, event: Event) -> None:
        if isinstance(event, PanelStarted):
            self._fixture_of[event.panel_id] = event.fixture
        elif isinstance(event, SlotEnded):
            fixture = self._fixture_of.get(event.panel_id, "")
            verdict = event.result.verdict
            if verdict.value in ("EMPTY", "SKIPPED"):
                return
            self.units.labels(fixture, verdict.value).inc()
            now = self._clock()
            self._done.append(now)
            while self._done and now - self._done[0] > UPH_WINDOW_S:
                self._done.popleft()  # an hour's units at most, scraped or not
            if verdict.is_failure:
                self.slot_failures.labels(fixture, str(event.result.slot), verdict.value).inc()
        elif isinstance(event, PanelEnded):
            fixture = self._fixture_of.pop(event.panel_id, "")
            self.panels.labels(fixture).inc()

    def _units_per_hour(self) -> float:
        now = self._clock()
        while self._done and now - self._done[0] > UPH_WINDOW_S:
            self._done.popleft()
        span = min(UPH_WINDOW_S, now - self._started)
        return len(self._done) * 3600.0 / span if span > 0 else 0.0

    def render(self) -> bytes:
        """The text exposition, with the line database's state read now."""
        if self.line_state is not None:
            st = self.line_state()
            self.spool_backlog.set(st.backlog)
            self.line_up.set(math.nan if st.reachable is None else float(st.reachable))
        return generate_latest(self.registry)

    async def endpoint(self, request: Request) -> Response:
        return Response(self.render(), media_type=CONTENT_TYPE_LATEST)

    def route(self) -> Route:
        return Route("/metrics", self.endpoint)

    def app(self) -> Starlette:
        """A server of its own: /metrics only, nothing an operator could read or act on
        beyond counts, so plain HTTP on any address Prometheus scrapes from."""
        return Starlette(routes=[self.route()])


async def serve_metrics(app: Starlette, host: str, port: int) -> PageServer:
    """`app` on uvicorn in the caller's loop (the station's), until `close()`."""
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="off", timeout_graceful_shutdown=1
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    # uvicorn offers no "started" event; a failed bind ends the task instead.
    while not server.started:
        if task.done():
            await task
            raise OSError(f"metrics: could not listen on {host}:{port}")
        await asyncio.sleep(0.01)
    return PageServer(server, task, tls=False)
