"""The small parts on their own: critical sections (what a stopping station waits for),
the free-space check, the station status's one line."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ate.model.verdict import Verdict
from ate.provision.critical import CriticalSections
from ate.station.fixture_loop import disk_refusal
from ate.station.status import StationStatus


async def test_critical_sections_finish_and_block_new_ones() -> None:
    crit = CriticalSections()
    inside = asyncio.Event()
    release = asyncio.Event()
    order: list[str] = []

    async def act(name: str) -> None:
        async with crit.section(name):
            order.append(f"in {name}")
            inside.set()
            await release.wait()
            order.append(f"out {name}")

    first = asyncio.create_task(act("burn-1"))
    await inside.wait()
    crit.close()
    assert crit.active == ["burn-1"]
    second = asyncio.create_task(act("burn-2"))  # must not begin: the gate is closed
    idle = asyncio.create_task(crit.wait_idle())
    await asyncio.sleep(0)
    assert not idle.done()
    release.set()
    await asyncio.wait_for(idle, 10)
    await first
    assert order == ["in burn-1", "out burn-1"]
    assert not second.done()
    second.cancel()  # the panel's abort
    with pytest.raises(asyncio.CancelledError):
        await second
    assert crit.active == [] and order == ["in burn-1", "out burn-1"]


def test_disk_refusal(tmp_path: Path) -> None:
    assert disk_refusal((tmp_path,), 0) is None
    assert disk_refusal((tmp_path / "not" / "yet",), 0) is None  # checked on its parent
    why = disk_refusal((tmp_path,), 10**18)
    assert why is not None and why.startswith(f"disk nearly full: {tmp_path} has ")


def test_status_summary_and_counts() -> None:
    st = StationStatus("st1")
    st.add("fx1", "clamp")
    st.add("fx2", "button")
    st.update("fx1", online=True, state="testing")
    st.update("fx2", online=False, last_error="fixture controller lost: port closed")
    st.panel_ended("fx1", {1: Verdict.PASS, 2: Verdict.FAIL}, {1: "", 2: "gpio"})
    assert st.fixtures["fx1"].counts == {"PASS": 1, "FAIL": 1}
    assert st.summary() == (
        "st1: fx1 testing (1 panels); fx2 offline (fixture controller lost: port closed)"
    )
    with pytest.raises(AttributeError):
        st.update("fx1", colour="red")
