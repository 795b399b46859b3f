"""Station events on an MQTT broker, for dashboards and line software that only listen.

Topics (`prefix` from the station file, `ate` by default):

    <prefix>/<station>/status                     retained; "offline" is the last will
    <prefix>/<station>/<fixture>/panel/started    a panel started (its slots, sequence)
    <prefix>/<station>/<fixture>/panel/ended      its verdicts, duration, aborted
    <prefix>/<station>/<fixture>/<slot>/unit      the unit in the slot was identified
    <prefix>/<station>/<fixture>/<slot>/step      a step of the slot ended
    <prefix>/<station>/<fixture>/<slot>/ended     the slot's verdict and reason

Payloads are JSON and carry ids, verdicts and reasons only: no DUT log lines, no
provisioning details, no broker password. A broker that is away never holds a panel:
events wait in a bounded queue (the oldest dropped and counted) while the publisher
reconnects with capped back-off.

May import ate.model, ate.config and ate.station.status.
"""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
from collections import deque
from collections.abc import Callable
from typing import Any
from urllib.parse import unquote, urlsplit

import aiomqtt

from ate.config.station import StationMqtt
from ate.model.events import Event, PanelEnded, PanelStarted, SlotEnded, StepEnded, UnitIdentified
from ate.station.status import StationStatus

_log = logging.getLogger("ate.station.mqtt")
BACKOFF_MIN_S = 0.2
BACKOFF_MAX_S = 30.0
OFFLINE = b"offline"


class MqttEvents:
    """Subscribe `on_event` to the bus and `on_status` to the status, then run `run()` as
    a task for as long as the station lives; `close()` says "offline" and disconnects."""

    def __init__(self, cfg: StationMqtt, station: str) -> None:
        parts = urlsplit(cfg.url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 1883
        self._user = unquote(parts.username) if parts.username else None
        self._password = unquote(parts.password) if parts.password else None
        self.base = f"{cfg.prefix}/{station}"
        self.status_topic = f"{self.base}/status"
        self.station = station
        self._queue: deque[tuple[str, bytes]] = deque(maxlen=cfg.queue)
        self._status: bytes | None = None  # the latest status, not yet published
        self._fixture_of: dict[str, str] = {}
        self._wake = asyncio.Event()
        self.drained = asyncio.Event()  # set while the broker has every event queued so far
        self._closing = False
        self.dropped = 0  # events dropped (queue full while the broker was away)
        self.published = 0
        self.connected = False
        self.on_drop: Callable[[], None] | None = None

    @property
    def waiting(self) -> int:
        """Events queued, not yet taken by the broker."""
        return len(self._queue)

    # ---- fed by the bus and the status (on the loop; quick, never blocking) ------------

    def on_event(self, event: Event) -> None:
        item = self._message(event)
        if item is None:
            return
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
            if self.on_drop is not None:
                self.on_drop()
            if self.dropped == 1 or self.dropped % 100 == 0:
                _log.warning(
                    "mqtt %s:%d away: %d events dropped", self.host, self.port, self.dropped
                )
        self._queue.append(item)
        self.drained.clear()
        self._wake.set()

    def on_status(self, st: StationStatus) -> None:
        doc = {
            "state": "stopping" if st.stopping else "online",
            "station": st.station,
            "fixtures": {
                name: {"online": f.online, "state": f.state, "panels": f.panels}
                for name, f in st.fixtures.items()
            },
            "at": _now(),
        }
        self._status = json.dumps(doc, sort_keys=True).encode()
        self._wake.set()

    def _message(self, event: Event) -> tuple[str, bytes] | None:
        doc: dict[str, Any] = {"panel_id": event.panel_id, "at": _now()}
        if isinstance(event, PanelStarted):
            self._fixture_of[event.panel_id] = event.fixture
            where = f"{event.fixture}/panel/started"
            doc |= {
                "operator": event.operator,
                "slots": list(event.slots),
                "sequence": {k: event.sequence.get(k) for k in ("name", "version")},
                "started_at": event.started_at,
            }
        elif isinstance(event, PanelEnded):
            where = f"{self._fixture_of.pop(event.panel_id, '-')}/panel/ended"
            doc |= {
                "verdicts": {str(s): v.value for s, v in sorted(event.verdicts.items())},
                "duration_s": round(event.duration_s, 3),
                "aborted": event.aborted,
            }
        elif isinstance(event, UnitIdentified):
            where = f"{self._fixture(event)}/{event.slot}/unit"
            doc |= {"slot": event.slot, "mac": event.unit.mac, "chip": event.unit.chip}
        elif isinstance(event, StepEnded):
            where = f"{self._fixture(event)}/{event.slot}/step"
            step = event.result
            doc |= {"slot": event.slot, "step": step.name, "verdict": step.verdict.value}
        elif isinstance(event, SlotEnded):
            r = event.result
            where = f"{self._fixture(event)}/{r.slot}/ended"
            doc |= {
                "slot": r.slot,
                "verdict": r.verdict.value,
                "reason": r.reason,
                "mac": r.unit.mac if r.unit else None,
                "duration_s": round(r.duration_s, 3),
            }
        else:
            return None
        return f"{self.base}/{where}", json.dumps(doc, sort_keys=True).encode()

    def _fixture(self, event: Event) -> str:
        return self._fixture_of.get(event.panel_id, "-")

    # ---- the publisher task ------------------------------------------------------------

    async def run(self) -> None:
        backoff = BACKOFF_MIN_S
        while not self._closing:
            try:
                async with self._client() as client:
                    self.connected = True
                    backoff = BACKOFF_MIN_S
                    _log.info(
                        "mqtt: publishing to %s:%d under %s/", self.host, self.port, self.base
                    )
                    await self._publish_from_queue(client)
                    await client.publish(self.status_topic, OFFLINE, qos=1, retain=True)
                return
            except aiomqtt.MqttError as exc:
                if self.connected:
                    _log.warning("mqtt %s:%d lost: %s", self.host, self.port, exc)
                self.connected = False
            try:
                async with asyncio.timeout(backoff):
                    while not self._closing:
                        self._wake.clear()
                        await self._wake.wait()
            except TimeoutError:
                pass
            backoff = min(backoff * 2, BACKOFF_MAX_S)

    def _client(self) -> aiomqtt.Client:
        return aiomqtt.Client(
            self.host,
            self.port,
            username=self._user,
            password=self._password,
            # unique per process: a broker drops the older of two clients with one id
            identifier=f"ate-{self.station}-{secrets.token_hex(4)}",
            will=aiomqtt.Will(self.status_topic, OFFLINE, qos=1, retain=True),
            timeout=10.0,
        )

    async def _publish_from_queue(self, client: aiomqtt.Client) -> None:
        """Until closing: the status first (retained), then the events in order. An item
        leaves the queue only once the broker has it, so a lost connection keeps it."""
        while True:
            self._wake.clear()
            if self._status is not None:
                status = self._status
                await client.publish(self.status_topic, status, qos=1, retain=True)
                if self._status is status:
                    self._status = None
            while self._queue:
                topic, payload = self._queue[0]
                await client.publish(topic, payload, qos=1)
                if self._queue and self._queue[0] == (topic, payload):
                    self._queue.popleft()
                self.published += 1
            self.drained.set()
            if self._closing:
                return
            await self._wake.wait()

    async def close(self, task: asyncio.Task[None], grace: float = 3.0) -> None:
        """Publish what is queued (for up to `grace` seconds), say "offline", disconnect."""
        self._closing = True
        self._wake.set()
        try:
            async with asyncio.timeout(grace):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
            _log.warning("mqtt: %d events not published at stop", len(self._queue))
        except Exception as exc:  # the broker's trouble never fails the station's stop
            _log.warning("mqtt: at stop: %s", exc)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
