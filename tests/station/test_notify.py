"""The systemd notify protocol, seen by a datagram socket standing in for systemd: READY=1
with a STATUS line once the loops run, STATUS on changes, WATCHDOG=1 pings, STOPPING=1;
a path socket and an abstract ('@') one. And the unit file shipped with the package."""

from __future__ import annotations

import asyncio
import os
import secrets
import socket
from pathlib import Path

import pytest

from ate.cli.station_cmd import unit_text
from ate.station.daemon import Station
from ate.station.sd_notify import Notifier
from tests.station.conftest import FAST, WAIT_S, wait_status, write_station


def _datagrams(sock: socket.socket) -> list[dict[str, str]]:
    out = []
    while True:
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return out
        out.append(dict(line.split("=", 1) for line in data.decode().splitlines()))


@pytest.mark.parametrize("abstract", [False, True])
def test_notifier_datagrams(tmp_path: Path, abstract: bool) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    if abstract:
        name = f"ate-test-{secrets.token_hex(6)}"
        sock.bind(b"\0" + name.encode())
        env = {"NOTIFY_SOCKET": "@" + name, "WATCHDOG_USEC": "2000000"}
    else:
        path = tmp_path / "notify"
        sock.bind(str(path))
        env = {"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "2000000"}
    sock.setblocking(False)
    n = Notifier(env)
    assert n.enabled and n.watchdog_interval == 1.0
    assert n.ready("st1: fx waiting")
    assert n.status("st1: fx testing")
    assert n.status("st1: fx testing")  # unchanged: not sent again
    assert n.status("two\nlines")
    assert n.watchdog()
    assert n.stopping("st1: stopping")
    got = _datagrams(sock)
    assert got == [
        {"READY": "1", "STATUS": "st1: fx waiting"},
        {"STATUS": "st1: fx testing"},
        {"STATUS": "two lines"},
        {"WATCHDOG": "1"},
        {"STOPPING": "1", "STATUS": "st1: stopping"},
    ]
    n.close()
    sock.close()


def test_notifier_outside_systemd_is_a_no_op() -> None:
    n = Notifier({})
    assert not n.enabled and n.watchdog_interval is None
    assert not n.ready("x") and not n.watchdog()
    other = Notifier({"NOTIFY_SOCKET": "/x", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"})
    assert other.watchdog_interval is None  # the pings are for another process


async def test_station_speaks_the_notify_protocol(tmp_path: Path) -> None:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(tmp_path / "notify"))
    sock.setblocking(False)
    got: list[dict[str, str]] = []
    arrived = asyncio.Event()
    loop = asyncio.get_running_loop()

    def readable() -> None:
        got.extend(_datagrams(sock))
        arrived.set()

    loop.add_reader(sock.fileno(), readable)
    env = {
        "NOTIFY_SOCKET": str(tmp_path / "notify"),
        "WATCHDOG_USEC": "100000",
        "WATCHDOG_PID": str(os.getpid()),
    }
    station = Station(
        write_station(tmp_path, [("fx1", {"slots": 1})]),
        transport="socket",
        notifier=Notifier(env),
        options=FAST,
    )
    task = asyncio.create_task(station.run())

    async def until(pred: object) -> None:
        async with asyncio.timeout(WAIT_S):
            while not pred(got):  # type: ignore[operator]
                arrived.clear()
                await arrived.wait()

    await until(lambda g: any(d.get("READY") == "1" for d in g))
    await wait_status(station, lambda st: st.fixtures["fx1"].state == "done")
    await until(lambda g: any("fx1 done" in d.get("STATUS", "") for d in g))
    await until(lambda g: sum(d.get("WATCHDOG") == "1" for d in g) >= 2)
    station.request_stop()
    assert await asyncio.wait_for(task, WAIT_S) == 0
    readable()
    loop.remove_reader(sock.fileno())
    sock.close()
    ready = next(d for d in got if d.get("READY") == "1")
    assert ready["STATUS"].startswith("st1: fx1")
    statuses = [d["STATUS"] for d in got if "STATUS" in d]
    assert any("fx1 testing" in s for s in statuses)
    assert got[-1].get("STOPPING") == "1"


def test_unit_file() -> None:
    text = unit_text()
    for line in (
        "Type=notify",
        "WatchdogSec=",
        "Restart=on-failure",
        "User=ate",
        "SupplementaryGroups=dialout gpio",
        "ExecStart=/usr/bin/env ate station --config /etc/ate/station.yaml",
    ):
        assert line in text
