"""Cloud registration against moto's AWS IoT in server mode on 127.0.0.1, through real
boto3 over HTTP: the cloud is down first (nothing listens on the port), then comes up;
every unit ends registered exactly once, a thing that already existed is recognised, the
event loop keeps turning meanwhile, and no credential lands in the queue or the log."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
from cryptography.hazmat.primitives import serialization
from moto.server import ThreadedMotoServer

from ate.provision.cloud_iot import AwsIotRegistrar
from ate.provision.cloud_queue import (
    CloudAway,
    CloudQueue,
    CloudWorker,
    Registered,
    Registration,
    Unit,
)
from tests.moto_iot import free_port, start_moto
from tests.self_signed import self_signed

REGION, POLICY = "eu-west-1", "ate-device"
SECRET = "life-test-secret-key-never-written"


def device_cert(serial: str) -> str:
    cert, _key = self_signed(serial)
    return cert.public_bytes(serialization.Encoding.PEM).decode()


def units(n: int) -> list[Unit]:
    return [
        Unit(
            f"24:0a:c4:00:00:{i:02x}",
            f"S-{i}",
            f"dev-S-{i}",
            f"sha256:{i:064x}",
            device_cert(f"S-{i}"),
        )
        for i in range(1, n + 1)
    ]


def queue_bytes(folder: Path) -> bytes:
    """The queue database as stored, its WAL too."""
    return b"".join(p.read_bytes() for p in folder.iterdir() if p.name.startswith("cloud.db"))


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIALIFETEST0000")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.fixture
def port() -> Iterator[int]:
    yield free_port()


async def test_down_then_up_each_unit_registered_once(
    aws_env: None, port: int, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="ate")
    url = f"http://127.0.0.1:{port}"
    queue = CloudQueue(tmp_path / "cloud.db")
    worker = CloudWorker(
        queue,
        AwsIotRegistrar(region=REGION, policy=POLICY, endpoint_url=url),
        base_delay=0.05,
        max_delay=0.2,
    )
    batch = units(3)
    assert [queue.enqueue(u) for u in batch] == [True, True, True]  # a local insert
    task = asyncio.create_task(worker.run())

    # A panel's loop keeps turning while the cloud is away: the largest gap between ticks.
    lag = 0.0
    stop = asyncio.Event()

    async def ticker() -> None:
        nonlocal lag
        last = time.monotonic()
        while not stop.is_set():
            await asyncio.sleep(0.01)
            now = time.monotonic()
            lag = max(lag, now - last - 0.01)
            last = now

    ticks = asyncio.create_task(ticker())
    server: ThreadedMotoServer | None = None
    try:
        down = await asyncio.wait_for(
            worker.wait_for(lambda regs: len(regs) == 3 and all(r.attempts >= 2 for r in regs)),
            20,
        )
        assert all(r.status == "pending" and r.last_error for r in down)
        assert "not reachable" in (down[0].last_error or "")
        # Not a speed check: a registration run on the loop instead of the worker's thread
        # stalls it for a whole connection attempt (seconds, retried), far above this.
        assert lag < 2.0, f"the event loop stalled {lag:.3f} s while the cloud was away"

        server = start_moto(port)
        iot = boto3.client("iot", region_name=REGION, endpoint_url=url)
        iot.create_policy(
            policyName=POLICY, policyDocument='{"Version": "2012-10-17", "Statement": []}'
        )
        iot.create_thing(thingName="dev-S-2")  # registered by hand earlier: must be kept
        worker.wake()

        def done(regs: list[Registration]) -> bool:
            return all(r.status == "registered" for r in regs)

        regs = await asyncio.wait_for(worker.wait_for(done), 20)
        assert [r.thing_existed for r in regs] == [False, True, False]
        certs = iot.list_certificates()["certificates"]
        assert len(certs) == 3
        for r in regs:
            principals = iot.list_thing_principals(thingName=r.thing_name)["principals"]
            assert len(principals) == 1 and principals[0].endswith(f"cert/{r.certificate_id}")
            policies = iot.list_attached_policies(target=principals[0])["policies"]
            assert [p["policyName"] for p in policies] == [POLICY]
        assert len(iot.list_things()["things"]) == 3

        # Once registered, a unit is never registered again: queuing it again is refused.
        for u in batch:
            log = queue.attempts(u.chip_id)
            assert [ok for _, ok, _ in log].count(True) == 1 and not log[0][1]
        assert [queue.enqueue(u) for u in batch] == [False, False, False]

        # And the registration itself is idempotent: run again, everything is recognised.
        again = await asyncio.to_thread(worker.registrar.register, batch[0])
        assert again.thing_existed and again.certificate_existed
        assert again.certificate_id == regs[0].certificate_id
        assert len(iot.list_certificates()["certificates"]) == 3
    finally:
        stop.set()
        await ticks
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        queue.close()
        if server is not None:
            server.stop()

    stored = queue_bytes(tmp_path)
    assert SECRET.encode() not in stored and b"AKIALIFETEST" not in stored
    ours = "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("ate"))
    assert "registered as thing dev-S-2" in ours and "failed (attempt 1" in ours
    assert SECRET not in ours and "AKIALIFETEST" not in ours


def test_the_queue_survives_a_restart(tmp_path: Path) -> None:
    [u] = units(1)
    q = CloudQueue(tmp_path / "cloud.db")
    assert q.enqueue(u, now=100.0)
    q.failed(u.chip_id, "AWS IoT not reachable: x", 101.0, 103.0)
    q.close()
    assert (tmp_path / "cloud.db").stat().st_mode & 0o777 == 0o600
    q = CloudQueue(tmp_path / "cloud.db")
    assert q.due(102.0) == []
    assert q.due(103.0) == [(u, 1)]
    assert q.next_try() == 103.0
    q.close()


class StuckRegistrar:
    """A cloud that takes a registration and never answers (until released): the worker's
    call blocks inside it. It gives up by itself after a guard time, so a worker that
    wrongly called it on the event loop ends the test with a failure, not a hang."""

    GUARD_S = 10.0

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.release = threading.Event()
        self.gave_up = False

    def register(self, unit: Unit) -> Registered:
        self.entered.set()
        if not self.release.wait(self.GUARD_S):
            self.gave_up = True
        raise CloudAway("the cloud never answered")


async def test_a_cloud_that_never_answers_leaves_the_panel_loop_free(tmp_path: Path) -> None:
    queue = CloudQueue(tmp_path / "cloud.db")
    stuck = StuckRegistrar()
    worker = CloudWorker(queue, stuck, base_delay=60.0)
    assert queue.enqueue(units(1)[0])
    task = asyncio.create_task(worker.run())
    try:
        # The worker is inside the cloud call now (on its own thread)...
        assert await asyncio.to_thread(stuck.entered.wait, StuckRegistrar.GUARD_S)
        # ...and this coroutine ran while it is still there: the loop was free. Had the
        # call run on the loop, we would only get here after the guard made it give up.
        await asyncio.sleep(0)
        assert not stuck.gave_up
        assert queue.enqueue(units(2)[1])  # a panel queues its next unit meanwhile
    finally:
        stuck.release.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        queue.close()
