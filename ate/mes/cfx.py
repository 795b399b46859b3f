"""The `cfx` MES driver: IPC-CFX (IPC-2591) messages over AMQP 1.0 (RabbitMQ with its
AMQP 1.0 plugin, or any AMQP 1.0 broker).

Check-in is a request/response: CFX.InformationSystem.UnitValidation.ValidateUnitsRequest
to the MES's request address, with a reply-to address of this station's and the request's
id as correlation; the MES answers ValidateUnitsResponse. Only an answer that says
Success and Passed admits the unit: a refusal, or no answer within the timeout (an MES or
broker away), leaves it untested with ERROR and the reason.

As the panel runs, CFX.Production.WorkStarted, CFX.Production.UnitsArrived (a unit
identified in its slot), CFX.Production.TestAndInspection.UnitsTested and
CFX.Production.WorkCompleted are published to the configured address. A broker away
never holds a panel: they wait in a bounded queue (the oldest dropped and counted).

Proton's reactor runs on a thread of its own; the event loop hands it work through a
thread-safe queue and an EventInjector, and it hands answers back with
call_soon_threadsafe. Every message is a CFX envelope (MessageName, Version, TimeStamp,
UniqueID, Source, Target, RequestID, MessageBody) in JSON.

May import ate.mes.gate, ate.model and ate.config.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlsplit

from proton import Message
from proton.handlers import MessagingHandler
from proton.reactor import ApplicationEvent, Container, EventInjector

from ate.config.station import StationMes
from ate.mes.gate import Admission, UnitFacts
from ate.model.events import Event, PanelEnded, PanelStarted, SlotEnded, UnitIdentified
from ate.model.verdict import Verdict

CFX_VERSION = "1.7"
VALIDATE = "CFX.InformationSystem.UnitValidation.ValidateUnitsRequest"
VALIDATED = "CFX.InformationSystem.UnitValidation.ValidateUnitsResponse"
OUTBOX_MAX = 10000  # messages held while the broker is away
_log = logging.getLogger("ate.mes")

_RESULT = {
    Verdict.PASS: "Passed",
    Verdict.FAIL: "Failed",
    Verdict.ERROR: "Failed",  # measured nothing: the MES routes it to retest all the same
    Verdict.ABORTED: "Aborted",
}


def envelope(
    name: str, body: dict[str, Any], *, source: str, target: str | None, request_id: str | None
) -> dict[str, Any]:
    return {
        "MessageName": name,
        "Version": CFX_VERSION,
        "TimeStamp": dt.datetime.now(dt.UTC).isoformat(),
        "UniqueID": str(uuid.uuid4()),
        "Source": source,
        "Target": target,
        "RequestID": request_id,
        "MessageBody": body,
    }


def safe_url(url: str) -> str:
    """The broker URL for a log line: any password replaced by ***."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    return url.replace(f":{parts.password}@", ":***@", 1)


@dataclass
class _Panel:
    fixture: str
    operator: str
    slots: tuple[int, ...]
    transaction: str
    started_at: str
    tested: list[dict[str, Any]] = field(default_factory=list)
    arrived: set[int] = field(default_factory=set)  # slots whose unit was announced


class _Link(MessagingHandler):
    """On proton's thread only: one connection, a sender to the publish address, one to
    the MES's request address, a receiver on this station's reply address."""

    def __init__(self, gate: CfxGate) -> None:
        super().__init__()
        self.gate = gate
        self.injector = EventInjector()
        self.publisher: Any = None
        self.requester: Any = None
        self.container: Any = None

    def on_start(self, event: Any) -> None:
        g = self.gate
        self.container = event.container
        parts = urlsplit(g.url)
        scheme = "amqps" if parts.scheme == "amqps" else "amqp"
        conn = event.container.connect(
            f"{scheme}://{parts.hostname}:{parts.port or 5672}",
            user=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
            allowed_mechs="PLAIN" if parts.username else "ANONYMOUS",
            allow_insecure_mechs=True,
        )
        self.publisher = event.container.create_sender(conn, g.cfg.address)
        self.requester = event.container.create_sender(conn, g.cfg.requests)
        event.container.create_receiver(conn, g.reply_address)
        event.container.selectable(self.injector)

    def on_connection_opened(self, event: Any) -> None:
        self.gate.connected = True

    def on_disconnected(self, event: Any) -> None:
        if self.gate.connected:
            _log.warning("cfx: broker %s lost; reconnecting", safe_url(self.gate.url))
        self.gate.connected = False

    def on_transport_error(self, event: Any) -> None:
        self.gate.connected = False

    def on_sendable(self, event: Any) -> None:
        self.flush()

    def on_flush(self, event: Any) -> None:
        self.flush()

    def flush(self) -> None:
        for sender, box in (
            (self.publisher, self.gate.outbox),
            (self.requester, self.gate.requests),
        ):
            while box and sender is not None and sender.credit > 0:
                sender.send(box.popleft())

    def on_message(self, event: Any) -> None:
        msg = event.message
        cid = str(msg.correlation_id) if msg.correlation_id is not None else None
        try:
            doc = json.loads(msg.body if isinstance(msg.body, str) else bytes(msg.body))
        except (TypeError, ValueError):
            _log.warning("cfx: an answer that is not JSON on %s", self.gate.reply_address)
            return
        if cid is None and isinstance(doc, dict):
            cid = doc.get("RequestID")
        if cid is not None:
            self.gate.answered(cid, doc)

    def on_stop_link(self, event: Any) -> None:
        self.injector.close()
        if self.container is not None:
            self.container.stop()


class CfxGate:
    name = "cfx"

    def __init__(
        self,
        cfg: StationMes,
        station: str,
        *,
        on_drop: Callable[[], None] | None = None,
    ) -> None:
        assert cfg.url is not None
        self.cfg = cfg
        self.url = cfg.url
        self.station = station
        self.handle = cfg.handle or f"ate.{station}"
        self.reply_address = f"/queue/{self.handle}.replies"
        self.connected = False
        self.dropped = 0
        self.on_drop = on_drop
        # deques: appended on the loop, popped on proton's thread (both ends are atomic)
        self.outbox: deque[Message] = deque()
        self.requests: deque[Message] = deque()
        self._pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self._loop = asyncio.get_running_loop()
        self._panels: dict[str, _Panel] = {}
        self._link = _Link(self)
        self._container = Container(self._link)
        self._thread = threading.Thread(
            target=self._container.run, name=f"cfx-{station}", daemon=True
        )
        self._thread.start()
        _log.info("cfx: %s on %s, as %s", cfg.address, safe_url(cfg.url), self.handle)

    # ---- check-in ---------------------------------------------------------------------

    async def check_in(self, unit: UnitFacts) -> Admission:
        request_id = str(uuid.uuid4())
        body = {
            "Validations": ["UnitRouteValidation", "UnitStatusValidation"],
            "PrimaryIdentifier": unit.chip_id,
            "Units": [{"UnitIdentifier": unit.chip_id, "PositionNumber": 1}],
        }
        doc = envelope(
            VALIDATE, body, source=self.handle, target=self.cfg.target, request_id=request_id
        )
        answer: asyncio.Future[dict[str, Any]] = self._loop.create_future()
        self._pending[request_id] = answer
        msg = Message(
            body=json.dumps(doc),
            content_type="application/json",
            subject=VALIDATE,
            id=doc["UniqueID"],
            reply_to=self.reply_address,
            correlation_id=request_id,
        )
        self.requests.append(msg)
        self._wake()
        try:
            async with asyncio.timeout(self.cfg.timeout):
                reply = await answer
        except TimeoutError:
            where = "" if self.connected else f" (broker {safe_url(self.url)} not connected)"
            return Admission(
                False,
                f"MES did not answer the check-in within {self.cfg.timeout:g} s{where}; not tested",
            )
        finally:
            self._pending.pop(request_id, None)
        return _admission(reply)

    def answered(self, request_id: str, doc: dict[str, Any]) -> None:
        """Proton's thread: an answer arrived; resolve its waiter on the loop."""

        def resolve() -> None:
            fut = self._pending.get(request_id)
            if fut is not None and not fut.done():
                fut.set_result(doc)

        self._loop.call_soon_threadsafe(resolve)

    # ---- what the panel does ----------------------------------------------------------

    def observe(self, event: Event) -> None:
        if isinstance(event, PanelStarted):
            started = _Panel(
                event.fixture,
                event.operator,
                event.slots,
                str(uuid.uuid5(uuid.NAMESPACE_URL, f"ate:{event.panel_id}")),
                event.started_at,
            )
            self._panels[event.panel_id] = started
            self._publish(
                "CFX.Production.WorkStarted",
                {
                    "TransactionID": started.transaction,
                    "PrimaryIdentifier": event.panel_id,
                    "UnitCount": len(event.slots),
                    "Units": [_position(started, s) for s in event.slots],
                },
            )
        elif isinstance(event, UnitIdentified):
            # a unit is identified twice (ROM loader, then test firmware): announced once
            p = self._panels.get(event.panel_id)
            if p is None or event.slot in p.arrived:
                return
            p.arrived.add(event.slot)
            self._publish(
                "CFX.Production.UnitsArrived",
                {"Units": [_position(p, event.slot, event.unit.mac)]},
            )
        elif isinstance(event, SlotEnded):
            p = self._panels.get(event.panel_id)
            r = event.result
            if p is None or r.verdict not in _RESULT:
                return
            p.tested.append(
                {
                    "UnitIdentifier": r.unit.mac if r.unit else None,
                    "UnitPositionNumber": r.slot,
                    "UnitPositionName": f"{p.fixture}/slot{r.slot}",
                    "OverallResult": _RESULT[r.verdict],
                    "Tests": [
                        {"TestName": s.name, "Result": _RESULT.get(s.verdict, "Skipped")}
                        for s in r.steps
                    ],
                    "Comments": r.reason or None,
                }
            )
        elif isinstance(event, PanelEnded):
            p = self._panels.pop(event.panel_id, None)
            if p is None:
                return
            self._publish(
                "CFX.Production.TestAndInspection.UnitsTested",
                {
                    "TransactionID": p.transaction,
                    "TestMethod": "Functional",
                    "Tester": {"OperatorIdentifier": p.operator, "ActorType": "Human"},
                    "TestStartTime": p.started_at,
                    "TestEndTime": dt.datetime.now(dt.UTC).isoformat(),
                    "TestedUnits": p.tested,
                },
            )
            passed = all(v == Verdict.PASS for v in event.verdicts.values() if v in _RESULT)
            self._publish(
                "CFX.Production.WorkCompleted",
                {
                    "TransactionID": p.transaction,
                    "PrimaryIdentifier": event.panel_id,
                    "Result": "Aborted" if event.aborted else "Completed" if passed else "Failed",
                    "UnitCount": len(p.tested),
                    "Units": [
                        _position(p, u["UnitPositionNumber"], u["UnitIdentifier"]) for u in p.tested
                    ],
                },
            )

    def _publish(self, name: str, body: dict[str, Any]) -> None:
        doc = envelope(name, body, source=self.handle, target=self.cfg.target, request_id=None)
        if len(self.outbox) >= OUTBOX_MAX:
            self.outbox.popleft()
            self.dropped += 1
            if self.on_drop is not None:
                self.on_drop()
        self.outbox.append(
            Message(
                body=json.dumps(doc),
                content_type="application/json",
                subject=name,
                id=doc["UniqueID"],
            )
        )
        self._wake()

    def _wake(self) -> None:
        self._link.injector.trigger(ApplicationEvent("flush"))

    async def aclose(self) -> None:
        """Send what is queued (briefly), then stop proton's thread."""
        for _ in range(100):
            if not (self.outbox or self.requests) or not self.connected:
                break
            await asyncio.sleep(0.02)
        self._link.injector.trigger(ApplicationEvent("stop_link"))
        await asyncio.to_thread(self._thread.join, 5.0)
        if self.outbox:
            _log.warning("cfx: %d messages not published at stop", len(self.outbox))


def _position(p: _Panel, slot: int, unit: str | None = None) -> dict[str, Any]:
    return {
        "UnitIdentifier": unit,
        "PositionNumber": slot,
        "PositionName": f"{p.fixture}/slot{slot}",
    }


def _admission(reply: object) -> Admission:
    """Only a ValidateUnitsResponse whose Result is Success and whose PrimaryResult is
    Passed admits the unit; any other shape (a list, a number, a field of the wrong type)
    is a refusal, never an exception and never a test."""

    def part(doc: object, key: str) -> dict[str, Any]:
        value = doc.get(key) if isinstance(doc, dict) else None
        return value if isinstance(value, dict) else {}

    name = reply.get("MessageName") if isinstance(reply, dict) else None
    if name != VALIDATED:
        return Admission(False, f"MES answered {name!r}; not tested")
    body = part(reply, "MessageBody")
    result, primary = part(body, "Result"), part(body, "PrimaryResult")
    if result.get("Result") == "Success" and primary.get("Result") == "Passed":
        return Admission.admit(str(primary.get("Message") or ""))
    why = primary.get("Message") or result.get("Message") or primary.get("Result") or "refused"
    return Admission(False, f"MES refused the unit: {why}")
