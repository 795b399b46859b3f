"""SIGTERM to a real `ate station` process while an eFuse burn is in progress: the burn
completes and its outcome is in the journal, no further burn starts, the panel ends as
ABORTED (recorded), and the process exits 0. The station provisions with a development
profile (ate.sim.devkit) against a simulated unit in this test process, over sockets;
the failpoint seam (ATE_FAILPOINT=pause:...) holds the unit inside the burn's critical
section, after its intent, until the test has sent SIGTERM, seen the station wait for the
act, and sent SIGUSR1."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path

import pytest

from ate.provision.journal import Journal
from ate.sim.devkit import DevKit, make_dev_profile
from ate.sim.fixture_twin import SimFixtureThread
from ate.store.spool import default_spool_path
from tests.scheduler.conftest import REPO
from tests.station.prov_station import station_files, twin_fixture

LINE_WAIT_S = 120.0  # hang guard per line of the station's log, not a timing check
STEP = "fe.key"  # the eFuse plan's first burn


@pytest.fixture(scope="module")
def kit(tmp_path_factory: pytest.TempPathFactory) -> DevKit:
    return make_dev_profile(tmp_path_factory.mktemp("kit") / "devkit")


async def test_sigterm_during_an_efuse_burn(tmp_path: Path, kit: DevKit) -> None:
    fix = twin_fixture(tmp_path)
    with SimFixtureThread(fix.model, fix.base_dir, transport="socket") as twin:
        path = station_files(tmp_path, twin, kit)
        env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "ATE_FAILPOINT": f"pause:efuse-intent:{STEP}",
        }
        env.pop("NOTIFY_SOCKET", None)
        proc = await asyncio.create_subprocess_exec(
            *[sys.executable, "-m", "ate.cli.main", "station", "--config", str(path)],
            cwd=tmp_path,
            env=env,
            stderr=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.DEVNULL,
        )
        assert proc.stderr is not None
        seen: list[str] = []

        async def until(text: str) -> str:
            assert proc.stderr is not None
            while line := await asyncio.wait_for(proc.stderr.readline(), LINE_WAIT_S):
                seen.append(line.decode().rstrip())
                if text in seen[-1]:
                    return seen[-1]
            raise AssertionError(f"the station ended before {text!r}: {seen}")

        await until(f"failpoint efuse-intent:{STEP} reached")
        proc.send_signal(signal.SIGTERM)
        waiting = await until("stopping after")
        assert f"efuse:{STEP}" in waiting
        proc.send_signal(signal.SIGUSR1)  # the burn goes on now, the station stopping
        rest = await asyncio.wait_for(proc.stderr.read(), LINE_WAIT_S)
        seen.extend(rest.decode().splitlines())
        assert await asyncio.wait_for(proc.wait(), LINE_WAIT_S) == 0, seen
        assert not any("Traceback" in s for s in seen), seen

    records = list((tmp_path / "out" / "records").glob("*.json"))
    assert len(records) == 1
    rec = json.loads(records[0].read_text())
    assert rec["verdict"] == "ABORTED" and "stopping" in rec["reason"]
    mac = rec["unit"]["mac"]
    journal = Journal(default_spool_path(tmp_path / "state"))
    try:
        efuse_acts = [(a.act, a.kind, a.status) for a in journal.acts(mac) if "efuse" in a.act]
    finally:
        journal.close()
    # The burn in progress (the lock-down's batch, fe.key first) completed and every step
    # in it was recorded; no later burn (the download fuse, alone) began.
    intents = [act for act, kind, _ in efuse_acts if kind == "intent"]
    outcomes = [(act, status) for act, kind, status in efuse_acts if kind == "outcome"]
    assert intents[0] == f"efuse:{STEP}" and len(intents) > 1
    assert outcomes == [(act, "done") for act in intents]
    assert efuse_acts == [(a, "intent", "planned") for a in intents] + [
        (a, "outcome", "done") for a in intents
    ]
    assert "efuse:dl.secure" not in intents
