"""StationView from a real panel's events (simulated fixture, real scheduler) and from
the station's status."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ate.config.loader import load_sequence
from ate.model.events import Event, PanelStarted, SlotEnded, SlotStarted
from ate.model.results import SlotResult, UnitIdentity
from ate.model.verdict import Verdict
from ate.ui.view import StationView
from tests.scheduler.conftest import S3_SEQUENCE, Bench

FAULTS = {
    2: {"faults": {"rail_v": {"3v3": 2.95}}},  # FAIL: rail_3v3 out of limits
    3: {"faults": {"no_ready": True}},  # ERROR: the board never boots
    4: {"empty": True},
}


def tiles(view: StationView) -> dict[int, dict[str, Any]]:
    (fixture,) = view.snapshot()["fixtures"]
    return {t["slot"]: t for t in fixture["tiles"]}


async def test_a_real_panel_lands_in_the_tiles(make_bench: Any) -> None:
    bench: Bench = make_bench(sim_slots=FAULTS)
    steps = len(load_sequence(S3_SEQUENCE).model.steps)
    view = StationView("st1", lot="L42", steps_total=steps)
    seen: list[str] = []

    def watch(event: Event) -> None:
        view.on_event(event)
        if isinstance(event, SlotStarted):
            seen.append(tiles(view)[event.slot]["state"])

    result = await bench.run(subscribers=(watch,))
    t = tiles(view)
    assert seen and set(seen) == {"testing"}
    assert {s: t[s]["state"] for s in t} == {s: r.verdict.value for s, r in result.slots.items()}
    assert [t[s]["state"] for s in (1, 2, 3, 4)] == ["PASS", "FAIL", "ERROR", "EMPTY"]
    fail = t[2]["failing"]
    assert fail["step"] == "rail_3v3" and fail["measurement"] == "rail.3v3"
    assert fail["unit"] == "V" and fail["limits"] == "3.2 .. 3.4 V"
    assert 2.9 < float(fail["value"]) < 3.0
    assert t[3]["failing"] is None and "READY" in t[3]["reason"]
    assert t[1]["mac"] == result.slots[1].unit.mac  # type: ignore[union-attr]
    assert t[1]["progress"] == [steps, steps]
    # rail_3v3 failed part way: the bar stopped where that step ended.
    names = [s.name for s in load_sequence(S3_SEQUENCE).model.steps]
    rail = names.index("rail_3v3")
    assert t[2]["progress"][0] >= rail + 1 and t[2]["progress"][1] == steps
    assert t[1]["elapsed_s"] > 0
    snap = view.snapshot()
    assert snap["counters"]["units"] == 3  # the empty slot is not a unit
    assert snap["counters"]["fpy"] == round(100 / 3, 1)
    assert snap["fixtures"][0]["state"] == "done"
    assert snap["fixtures"][0]["sequence"].startswith("s3-devkit")


def _started(panel: str, slots: tuple[int, ...] = (1,)) -> PanelStarted:
    return PanelStarted(panel, "f1", "st1", "op", {"name": "s", "version": "1"}, slots, "t")


def test_a_retested_unit_is_not_first_pass() -> None:
    view = StationView("st1")
    unit = UnitIdentity(mac="aa:bb:cc:dd:ee:01")
    for panel, verdict in (("p1", Verdict.FAIL), ("p2", Verdict.PASS)):
        view.on_event(_started(panel))
        view.on_event(SlotEnded(panel, SlotResult(1, verdict, unit=unit)))
    assert view.snapshot()["counters"]["units"] == 2
    assert view.snapshot()["counters"]["fpy"] == 0.0


def test_events_of_an_unknown_panel_change_nothing() -> None:
    view = StationView("st1")
    view.on_event(_started("p1"))
    before = view.snapshot()
    view.on_event(SlotEnded("other", SlotResult(1, Verdict.PASS)))
    after = view.snapshot()
    assert before["fixtures"] == after["fixtures"] and before["version"] == after["version"]


@dataclass
class _Fixture:
    fixture: str
    online: bool
    state: str
    refusal: str | None = None


class _Status:
    """Stands in for ate.station.status.StationStatus (its listener interface)."""

    def __init__(self) -> None:
        self.station = "st9"
        self.fixtures = {"f1": _Fixture("f1", True, "waiting")}
        self.listeners: list[Any] = []

    def subscribe(self, listener: Any) -> None:
        self.listeners.append(listener)

    def set(self, **kw: Any) -> None:
        for k, v in kw.items():
            setattr(self.fixtures["f1"], k, v)
        for fn in self.listeners:
            fn(self)


async def test_status_changes_wake_the_page() -> None:
    status = _Status()
    view = StationView("x")
    view.watch(status)
    assert view.snapshot()["station"] == "st9"
    seen = view.version
    status.set(online=False, state="offline")
    assert await view.changed(seen) > seen
    (f,) = view.snapshot()["fixtures"]
    assert (f["online"], f["state"]) == (False, "offline")
    status.set(online=True, state="refused", refusal="disk full")
    assert view.snapshot()["fixtures"][0]["refusal"] == "disk full"


def test_a_coalesced_snapshot_is_as_late_as_its_oldest_change() -> None:
    view = StationView("st1")
    view.on_event(_started("p1", (1, 2)))
    sent = view.version
    view.on_event(SlotStarted("p1", 1))
    first = view.changed_at_ms
    view.on_event(SlotStarted("p1", 2))
    assert view.first_change_ms(sent) == first <= view.changed_at_ms
    assert view.first_change_ms(view.version) == view.changed_at_ms
