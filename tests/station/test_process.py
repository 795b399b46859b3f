"""`ate station` as a real process: the fixture is a simulated twin in this test process,
reached over real sockets (the station file names a `line` controller at socket://, as
for hardware). SIGTERM between panels and mid-panel (exit 0, the panel ABORTED and
recorded), a bad station file (exit 2, one line with file:line:col)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from ate.config.loader import load_fixture
from ate.sim.fixture_twin import SimFixtureThread
from tests.scheduler.conftest import write_fixture, write_sequence
from tests.station.conftest import quick

REPO = Path(__file__).resolve().parents[2]
LINE_WAIT_S = 60.0  # hang guard per line of the station's log, not a timing check


@pytest.fixture
def twin(tmp_path: Path) -> Iterator[SimFixtureThread]:
    seq = write_sequence(tmp_path, quick)
    image = str(yaml.safe_load(seq.read_text())["test_firmware"]["path"])
    fix = load_fixture(write_fixture(tmp_path, name="twin", slots=2, preflash=image))
    with SimFixtureThread(fix.model, fix.base_dir, transport="socket") as t:
        yield t


def station_file(tmp: Path, twin: SimFixtureThread, mutate: Any = None) -> Path:
    """A `line` fixture at the twin's sockets, and a station file running it."""
    doc = yaml.safe_load((tmp / "twin.yaml").read_text())
    doc["fixture"] = "hw1"
    doc.pop("simulation")
    doc["controller"] = {"driver": "line", "port": twin.controller_endpoint}
    for s in doc["slots"]:
        s["port"] = twin.endpoints[s["slot"]]
    (tmp / "hw1.yaml").write_text(yaml.safe_dump(doc))

    def seq_mutate(d: dict[str, Any]) -> None:
        quick(d)
        if mutate is not None:
            mutate(d)

    seq = write_sequence(tmp, seq_mutate)
    st = {
        "station": "proc1",
        "fixtures": [{"file": "hw1.yaml"}],
        "sequence": seq.name,
        "state": "state",
        "outputs": "out",
        "debounce": 0,
        "min_free": 0,
    }
    path = tmp / "station.yaml"
    path.write_text(yaml.safe_dump(st))
    return path


async def _start(path: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("NOTIFY_SOCKET", None)
    return await asyncio.create_subprocess_exec(
        *[sys.executable, "-m", "ate.cli.main", "station", "--config", str(path)],
        cwd=path.parent,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def _until(proc: asyncio.subprocess.Process, text: str, seen: list[str]) -> str:
    assert proc.stderr is not None
    while line := await asyncio.wait_for(proc.stderr.readline(), LINE_WAIT_S):
        seen.append(line.decode().rstrip())
        if text in seen[-1]:
            return seen[-1]
    raise AssertionError(f"the station ended before {text!r}: {seen}")


async def _exit(proc: asyncio.subprocess.Process, seen: list[str]) -> int:
    assert proc.stderr is not None
    rest = await asyncio.wait_for(proc.stderr.read(), LINE_WAIT_S)
    seen.extend(rest.decode().splitlines())
    return await asyncio.wait_for(proc.wait(), LINE_WAIT_S)


async def test_sigterm_between_panels_exits_0(tmp_path: Path, twin: SimFixtureThread) -> None:
    proc = await _start(station_file(tmp_path, twin))
    seen: list[str] = []
    line = await _until(proc, ": panel ", seen)  # started
    line = await _until(proc, "1=PASS, 2=PASS", seen)
    proc.send_signal(signal.SIGTERM)
    assert await _exit(proc, seen) == 0, seen
    assert not any("Traceback" in s for s in seen), seen
    records = list((tmp_path / "out" / "records").glob("*.json"))
    assert len(records) == 2
    assert line


async def test_sigterm_mid_panel_aborts_it_and_exits_0(
    tmp_path: Path, twin: SimFixtureThread
) -> None:
    def slow(doc: dict[str, Any]) -> None:
        # The loopback step waits a minute between drive and read: SIGTERM lands in it.
        for s in doc["steps"]:
            if s["name"] == "gpio_loopback":
                s["settle"] = 60
                s["timeout"] = 600
                s["retries"] = 0

    proc = await _start(station_file(tmp_path, twin, slow))
    seen: list[str] = []
    await _until(proc, "started", seen)
    proc.send_signal(signal.SIGTERM)
    assert await _exit(proc, seen) == 0, seen
    records = sorted((tmp_path / "out" / "records").glob("*.json"))
    assert len(records) == 2, seen
    for r in records:
        rec = json.loads(r.read_text())
        assert rec["verdict"] == "ABORTED"
        assert "stopping" in rec["reason"]
    assert twin.led(1) == "error" and twin.led(2) == "error"
    assert not any(s.switched_on for s in twin.sim._slots.values())


def test_bad_station_file_exits_2_with_one_line(tmp_path: Path) -> None:
    import subprocess

    path = tmp_path / "station.yaml"
    path.write_text("station: s1\nfixtures:\n  - {file: f.yaml, trigger: pedal}\nsequence: x\n")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "ate.cli.main", "station", "--config", str(path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith(f"ate: {path}:3:")
    assert "clamp" in lines[0] and "button" in lines[0] and "manual" in lines[0]
    assert "Traceback" not in proc.stderr
