"""The line around the station: Prometheus metrics and MQTT events, each optional (the
station file's `metrics:` and `mqtt:`), each failing soft: a broker or a port that is
away is logged and counted, and testing goes on. The MES gate is per configuration and
lives with the loops (daemon `_start`).

May import ate.station (status, metrics, mqtt_events), ate.config and ate.ui.app.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

from ate.config.station import Station as StationFile
from ate.scheduler.bus import EventBus
from ate.station.metrics import LineState, StationMetrics, serve_metrics
from ate.station.mqtt_events import MqttEvents
from ate.station.status import StationStatus

if TYPE_CHECKING:
    from ate.ui.app import PageServer

_log = logging.getLogger("ate.station")


class LineAround:
    """Create with the station's bus and status (no I/O), `await start(file)`, and
    `await close()` at the end."""

    def __init__(self, station: str, bus: EventBus, status: StationStatus) -> None:
        self.metrics = StationMetrics(station)
        self.station = station
        self.bus = bus
        self.status = status
        bus.subscribe(self.metrics.on_event)
        self.metrics_url: str | None = None
        self._server: PageServer | None = None
        self.mqtt: MqttEvents | None = None
        self._mqtt_task: asyncio.Task[None] | None = None

    def read_line_state(self, read: Callable[[], LineState | None]) -> None:
        def state() -> LineState:
            return read() or LineState(None, 0)

        self.metrics.line_state = state

    async def start(self, cfg: StationFile) -> None:
        if cfg.metrics is not None:
            try:
                server = await serve_metrics(self.metrics.app(), cfg.metrics.host, cfg.metrics.port)
            except (OSError, ValueError) as exc:
                _log.error(
                    "metrics: not served on %s:%d: %s", cfg.metrics.host, cfg.metrics.port, exc
                )
            else:
                self._server = server
                self.metrics_url = server.url + "metrics"
                _log.info("station %s: metrics on %s", self.station, self.metrics_url)
        if cfg.mqtt is not None:
            mqtt = MqttEvents(cfg.mqtt, self.station)
            dropped = self.metrics.events_dropped.labels("mqtt")
            mqtt.on_drop = dropped.inc
            self.bus.subscribe(mqtt.on_event)
            self.status.subscribe(mqtt.on_status)
            mqtt.on_status(self.status)
            self.mqtt = mqtt
            self._mqtt_task = asyncio.create_task(mqtt.run(), name="mqtt-events")

    async def close(self) -> None:
        if self.mqtt is not None and self._mqtt_task is not None:
            await self.mqtt.close(self._mqtt_task)
        if self._server is not None:
            with contextlib.suppress(Exception):
                await self._server.close()
