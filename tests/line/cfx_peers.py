"""Real AMQP 1.0 peers on the real RabbitMQ (127.0.0.1:5672, AMQP 1.0 plugin) for the
CFX tests: a test MES answering check-ins, and a listener on the CFX address. Both are
proton BlockingConnections on threads of their own."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from typing import Any

from proton import Message, Timeout
from proton.utils import BlockingConnection

BROKER = "amqp://127.0.0.1:5672"
USER, PASSWORD = "guest", "guest"
URL = f"amqp://{USER}:{PASSWORD}@127.0.0.1:5672"
RESPONSE = "CFX.InformationSystem.UnitValidation.ValidateUnitsResponse"

# A decision on one request: ("allow", message) | ("refuse", reason) | ("silent", "")
Policy = Callable[[dict[str, Any]], tuple[str, str]]


def _connect() -> BlockingConnection:
    return BlockingConnection(
        BROKER, user=USER, password=PASSWORD, allowed_mechs="PLAIN", allow_insecure_mechs=True
    )


def unique(name: str) -> str:
    return f"{name}.{uuid.uuid4().hex[:8]}"


class MesPeer:
    """Answers ValidateUnitsRequest on `address` as `policy` says; records each request."""

    def __init__(self, address: str, policy: Policy) -> None:
        self.address = address
        self.policy = policy
        self.requests: list[tuple[Message, dict[str, Any]]] = []
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="test-mes", daemon=True)

    def __enter__(self) -> MesPeer:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the test MES did not attach to the broker")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _serve(self) -> None:
        conn = _connect()
        try:
            receiver = conn.create_receiver(self.address)
            senders: dict[str, Any] = {}
            self._ready.set()
            while not self._stop.is_set():
                try:
                    msg = receiver.receive(timeout=0.2)
                except Timeout:
                    continue
                receiver.accept()
                doc = json.loads(msg.body)
                self.requests.append((msg, doc))
                decision, text = self.policy(doc)
                if decision == "silent":
                    continue
                passed = decision == "allow"
                body = {
                    "Result": {"Result": "Success", "ResultCode": 0, "Message": None},
                    "PrimaryResult": {
                        "UniqueIdentifier": doc["MessageBody"]["PrimaryIdentifier"],
                        "PositionNumber": 0,
                        "Result": "Passed" if passed else "Failed",
                        "FailureCode": 0 if passed else 1,
                        "Message": text,
                    },
                    "Results": [],
                }
                reply = {
                    "MessageName": RESPONSE,
                    "Version": "1.7",
                    "UniqueID": str(uuid.uuid4()),
                    "Source": "test.mes",
                    "Target": doc["Source"],
                    "RequestID": doc["RequestID"],
                    "MessageBody": body,
                }
                # one sender per reply address, kept: RabbitMQ 3's AMQP 1.0 plugin does not
                # answer a sender's detach, so a BlockingSender.close() would hang
                if msg.reply_to not in senders:
                    senders[msg.reply_to] = conn.create_sender(msg.reply_to)
                out = Message(body=json.dumps(reply), correlation_id=msg.correlation_id)
                senders[msg.reply_to].send(out)
        finally:
            conn.close()


class CfxListener:
    """Collects every CFX message published to `address` (a RabbitMQ exchange address:
    the listener's own queue is bound before the station starts)."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.messages: list[tuple[Message, dict[str, Any]]] = []
        self.arrived = threading.Condition()
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._listen, name="cfx-listener", daemon=True)

    def __enter__(self) -> CfxListener:
        self._thread.start()
        if not self._ready.wait(30):
            raise RuntimeError("the CFX listener did not attach to the broker")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)

    def _listen(self) -> None:
        conn = _connect()
        try:
            receiver = conn.create_receiver(self.address)
            self._ready.set()
            while not self._stop.is_set():
                try:
                    msg = receiver.receive(timeout=0.2)
                except Timeout:
                    continue
                receiver.accept()
                with self.arrived:
                    self.messages.append((msg, json.loads(msg.body)))
                    self.arrived.notify_all()
        finally:
            conn.close()

    def wait_for(self, name: str, count: int = 1, timeout: float = 60.0) -> list[dict[str, Any]]:
        """Blocking (call it in a thread): the first `count` messages named `name`."""

        def found() -> list[dict[str, Any]]:
            return [d for _, d in self.messages if d["MessageName"] == name]

        with self.arrived:
            if not self.arrived.wait_for(lambda: len(found()) >= count, timeout):
                raise AssertionError(f"{count} x {name} not published: {self.names()}")
            return found()[:count]

    def names(self) -> list[str]:
        return [d["MessageName"] for _, d in self.messages]
