"""Station events on the real Mosquitto (127.0.0.1:1883): a subscriber sees a panel run
through a running daemon under the documented topics, the retained status, and
"offline" when the station stops; a broker that is away never stops a panel."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiomqtt

from tests.station.conftest import running, wait_status, write_station

BROKER = ("127.0.0.1", 1883)
FAULTY = {"slots": 2, "sim_slots": {2: {"faults": {"stuck_gpio": [{"pin": 5, "level": 0}]}}}}


@asynccontextmanager
async def subscribed(topic: str) -> AsyncIterator[aiomqtt.Client]:
    async with aiomqtt.Client(*BROKER, identifier=f"ate-test-{uuid.uuid4().hex[:8]}") as c:
        await c.subscribe(topic, qos=1)
        yield c


async def until(client: aiomqtt.Client, topic: str, pred: Any = None) -> dict[str, Any] | str:
    """The next message on `topic` (whose payload satisfies `pred`), as JSON or text."""
    async with asyncio.timeout(60):
        async for msg in client.messages:
            if msg.topic.matches(topic):
                payload = bytes(msg.payload).decode()  # type: ignore[arg-type]
                try:
                    value: dict[str, Any] | str = json.loads(payload)
                except ValueError:
                    value = payload
                if pred is None or pred(value):
                    return value
    raise AssertionError("the subscription ended")


async def test_a_panel_through_the_daemon_on_mqtt(tmp_path: Path) -> None:
    prefix = f"ate-test-{uuid.uuid4().hex[:8]}"
    path = write_station(
        tmp_path,
        [("fx1", dict(FAULTY))],
        mqtt={"url": "mqtt://127.0.0.1:1883", "prefix": prefix},
    )
    seen: list[tuple[str, dict[str, Any]]] = []
    async with subscribed(f"{prefix}/#") as sub:
        async with running(path) as station:
            async with asyncio.timeout(60):
                async for msg in sub.messages:
                    doc = json.loads(bytes(msg.payload))  # type: ignore[arg-type]
                    seen.append((str(msg.topic), doc))
                    if str(msg.topic).endswith("/panel/ended"):
                        break
            await wait_status(station, lambda st: st.fixtures["fx1"].panels >= 1)
        # after the stop: the retained status says offline
        status = await until(sub, f"{prefix}/st1/status", lambda v: v == "offline")
        assert status == "offline"
    topics = [t for t, _ in seen]
    base = f"{prefix}/st1/fx1"
    assert f"{base}/panel/started" in topics
    assert f"{base}/1/unit" in topics and f"{base}/2/unit" in topics
    assert f"{base}/1/step" in topics
    ended = {t: d for t, d in seen if t.endswith("/ended")}
    assert ended[f"{base}/1/ended"]["verdict"] == "PASS"
    assert ended[f"{base}/2/ended"]["verdict"] == "FAIL"
    assert "gpio_loopback" in ended[f"{base}/2/ended"]["reason"]
    assert ended[f"{base}/panel/ended"]["verdicts"] == {"1": "PASS", "2": "FAIL"}
    panel = ended[f"{base}/panel/ended"]["panel_id"]
    assert all(d["panel_id"] == panel for t, d in seen if not t.endswith("/status"))
    # events in order: started first, the panel's end last
    assert topics.index(f"{base}/panel/started") < topics.index(f"{base}/1/ended")
    # the retained status of the running station named its fixture
    statuses = [d for t, d in seen if t.endswith("/status")]
    assert statuses and all(d["station"] == "st1" for d in statuses)
    assert any("fx1" in d["fixtures"] for d in statuses)
    # nothing secret: no DUT log lines, no provisioning detail
    text = json.dumps(seen)
    assert "DutLog" not in text and "detail" not in text


async def test_a_late_subscriber_reads_the_retained_status(tmp_path: Path) -> None:
    prefix = f"ate-test-{uuid.uuid4().hex[:8]}"
    path = write_station(
        tmp_path, [("fx1", {"slots": 1})], mqtt={"url": "mqtt://127.0.0.1", "prefix": prefix}
    )
    async with running(path) as station:
        await wait_status(station, lambda st: st.fixtures["fx1"].panels >= 1)
        async with subscribed(f"{prefix}/st1/status") as sub:
            doc = await until(sub, f"{prefix}/st1/status")
        assert isinstance(doc, dict) and doc["state"] == "online"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_a_broker_away_never_stops_testing(tmp_path: Path) -> None:
    port = _closed_port()  # nothing listens there
    path = write_station(
        tmp_path,
        [("fx1", {"slots": 2})],
        mqtt={"url": f"mqtt://127.0.0.1:{port}", "queue": 3},
    )
    async with running(path) as station:
        await wait_status(station, lambda st: st.fixtures["fx1"].panels >= 1)
        mqtt = station.around.mqtt
        assert mqtt is not None
        assert not mqtt.connected
        assert mqtt.published == 0
        # a panel's events are more than three: the oldest were dropped and counted
        assert mqtt.dropped > 0
        dropped = station.around.metrics.events_dropped.labels("mqtt")._value.get()
        assert dropped == mqtt.dropped
        assert station.status.fixtures["fx1"].counts == {"PASS": 2}


async def test_events_wait_for_a_broker_that_comes_back(tmp_path: Path) -> None:
    """No broker at first: the panel runs, its events wait; a private Mosquitto then
    starts on that port and the publisher reconnects (back-off) and delivers them."""
    mosquitto = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = _closed_port()
    prefix = f"ate-test-{uuid.uuid4().hex[:8]}"
    path = write_station(
        tmp_path,
        [("fx1", {"slots": 1})],
        mqtt={"url": f"mqtt://127.0.0.1:{port}", "prefix": prefix},
    )
    async with running(path) as station:
        mqtt = station.around.mqtt
        assert mqtt is not None
        await wait_status(station, lambda st: st.fixtures["fx1"].panels >= 1)
        assert not mqtt.connected and mqtt.published == 0
        waiting = mqtt.waiting
        assert waiting > 0 and mqtt.dropped == 0
        broker = await asyncio.create_subprocess_exec(
            mosquitto, "-p", str(port), stderr=asyncio.subprocess.DEVNULL
        )
        try:
            async with asyncio.timeout(60):
                await mqtt.drained.wait()
            assert mqtt.connected and mqtt.published >= waiting
            # the retained status tells a late subscriber the station is up, with its panel
            async with aiomqtt.Client("127.0.0.1", port) as sub:
                await sub.subscribe(f"{prefix}/st1/status", qos=1)
                doc = await until(sub, f"{prefix}/st1/status")
            assert isinstance(doc, dict) and doc["state"] == "online"
            assert doc["fixtures"]["fx1"]["panels"] >= 1
        finally:
            broker.terminate()
            await broker.wait()
