"""SIGHUP reloads the station file between panels: a file that does not validate is
refused (its one line kept in the status) and the old configuration keeps running; a good
one takes over after the running panel has finished, without aborting it."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import yaml

from ate.model.events import Event, SlotPhase
from ate.model.verdict import Verdict
from tests.scheduler.conftest import write_fixture
from tests.station.conftest import running, wait_status, write_station


async def test_sighup_bad_then_good_file(tmp_path: Path) -> None:
    path = write_station(tmp_path, [("fx1", {"slots": 1})])
    good = path.read_text()
    async with running(path) as station:
        twin = station.twins["fx1"]
        await wait_status(station, lambda st: st.fixtures["fx1"].state == "done")

        path.write_text(good.replace("debounce: 20ms", "debounce: 10s"))
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_status(station, lambda st: st.config_error is not None)
        error = station.status.config_error or ""
        assert error.startswith(f"{path}:") and "debounce" in error
        line, col = error.split(":")[1:3]
        assert line.isdigit() and col.isdigit()
        assert station.status.reloads == 0
        # The old configuration runs on: another clamp cycle, another panel.
        twin.set_clamp(False)
        await wait_status(station, lambda st: st.fixtures["fx1"].state == "waiting")
        twin.set_clamp(True)
        await wait_status(station, lambda st: st.fixtures["fx1"].panels == 2)

        # A good file, changed: a second fixture and another operator. SIGHUP mid-panel.
        seq = yaml.safe_load(good)["sequence"]
        image = yaml.safe_load((tmp_path / seq).read_text())["test_firmware"]["path"]
        write_fixture(tmp_path, name="fx2", slots=1, preflash=image, seed=8)  # its own units
        doc = yaml.safe_load(good)
        doc["fixtures"].append({"file": "fx2.yaml", "trigger": "clamp"})
        doc["operator"] = "op2"
        await wait_status(station, lambda st: st.fixtures["fx1"].state == "done")
        testing = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_event(e: Event) -> None:
            if isinstance(e, SlotPhase) and e.phase == "test":
                loop.call_soon(testing.set)

        station.bus.subscribe(on_event)
        twin.set_clamp(False)
        await wait_status(station, lambda st: st.fixtures["fx1"].state == "waiting")
        twin.set_clamp(True)
        await asyncio.wait_for(testing.wait(), 60)
        path.write_text(yaml.safe_dump(doc, sort_keys=False))
        os.kill(os.getpid(), signal.SIGHUP)
        await wait_status(station, lambda st: st.reloads == 1)
        assert station.status.config_error is None
        fx1 = station.status.fixtures["fx1"]
        assert fx1.panels == 3 and fx1.last_verdicts == {1: Verdict.PASS}  # not aborted
        await wait_status(
            station, lambda st: "fx2" in st.fixtures and st.fixtures["fx2"].panels == 1
        )
        assert station.loaded.model.operator == "op2"
        assert station.status.fixtures["fx1"].panels == 3  # its clamp has not opened since
        twin.set_clamp(False)
        await wait_status(station, lambda st: st.fixtures["fx1"].state == "waiting")
        twin.set_clamp(True)
        await wait_status(station, lambda st: st.fixtures["fx1"].panels == 4)
