"""Panel behaviour: resource arbitration, clamp abort, EMPTY slots, failure policy,
retries, a wrong chip, and several fixtures in one process."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from ate.config.loader import load_sequence
from ate.model.events import Event, SlotEnded, StepEnded, StepStarted
from ate.model.verdict import Verdict
from tests.scheduler.conftest import Bench, write_sequence


def _dmm_only(doc: dict[str, Any]) -> None:
    """Every slot needs the one DMM twice, with DUT-only work in between."""
    keep = {"rail_3v3", "rail_1v8", "gpio_loopback", "imu_whoami", "adc_vref"}
    doc["steps"] = [s for s in doc["steps"] if s["name"] in keep]


async def test_dmm_is_held_by_one_slot_at_a_time_while_others_work(
    make_bench: Any, tmp_path: Any
) -> None:
    bench: Bench = make_bench()
    seq = load_sequence(write_sequence(tmp_path, _dmm_only))
    assert {s.name for s in seq.model.steps} >= {"rail_3v3", "rail_1v8"}
    spans: dict[tuple[int, str], list[float]] = {}

    def timeline(event: Event) -> None:
        now = time.monotonic()
        if isinstance(event, StepStarted):
            spans[(event.slot, event.name)] = [now]
        elif isinstance(event, StepEnded):
            spans[(event.slot, event.result.name)].append(now)

    result = await bench.run(seq, subscribers=(timeline,))
    assert all(r.verdict is Verdict.PASS for r in result.slots.values())
    dmm = sorted(v for (slot, name), v in spans.items() if name.startswith("rail_"))
    assert len(dmm) == 8
    for (_, end), (start, _) in itertools.pairwise(dmm):
        assert start >= end, "two slots held the DMM at once"
    # Someone waited for the DMM, and while one slot held it another slot ran a step.
    waits = [s.resource_wait_s for r in result.slots.values() for s in r.steps if s.uses]
    assert max(waits) > 0
    others = [v for (slot, name), v in spans.items() if not name.startswith("rail_")]
    assert any(
        o_start < d_end and o_end > d_start for d_start, d_end in dmm for o_start, o_end in others
    )
    assert result.resource_busy_s["dmm"] > 0


async def test_capacity_two_lets_two_slots_share(make_bench: Any, tmp_path: Any) -> None:
    bench: Bench = make_bench(
        resources={"dmm": {"kind": "dmm", "capacity": 2}, "golden": {"kind": "golden_board"}}
    )
    seq = load_sequence(write_sequence(tmp_path, _dmm_only))
    holders = 0
    peak = 0

    def count(event: Event) -> None:
        nonlocal holders, peak
        if isinstance(event, StepStarted) and event.name.startswith("rail_"):
            holders += 1
            peak = max(peak, holders)
        elif isinstance(event, StepEnded) and event.result.name.startswith("rail_"):
            holders -= 1

    result = await bench.run(seq, subscribers=(count,))
    assert all(r.verdict is Verdict.PASS for r in result.slots.values())
    assert peak == 2


async def test_clamp_release_aborts_and_powers_everything_off(make_bench: Any) -> None:
    bench: Bench = make_bench()
    opened = asyncio.Event()

    def open_clamp_after_first_step(event: Event) -> None:
        if isinstance(event, StepEnded) and not opened.is_set():
            opened.set()
            bench.twin.set_clamp(False)  # the operator lifts the clamp mid-test

    result = await bench.run(subscribers=(open_clamp_after_first_step,))
    assert result.aborted
    assert {r.verdict for r in result.slots.values()} == {Verdict.ABORTED}
    assert all("clamp opened" in r.reason for r in result.slots.values())
    for slot in (1, 2, 3, 4):
        board = bench.twin.board(slot)
        assert board is not None and not board.powered
        assert bench.twin.led(slot) == "error"
    # Every unit still gets a SlotEnded (and so a record), with the steps it finished.
    ended = [e for e in bench.events if isinstance(e, SlotEnded)]
    assert sorted(e.result.slot for e in ended) == [1, 2, 3, 4]
    assert any(s.verdict is Verdict.PASS for e in ended for s in e.result.steps)


async def test_panel_refuses_to_start_with_the_clamp_open(make_bench: Any) -> None:
    from ate.scheduler.panel import PanelRefused

    bench: Bench = make_bench()
    bench.twin.set_clamp(False)
    try:
        await bench.run()
    except PanelRefused as exc:
        assert "clamp is open" in str(exc)
    else:
        raise AssertionError("a panel started with the clamp open")
    assert all(not bench.twin.board(s).powered for s in (1, 2, 3, 4))  # type: ignore[union-attr]


async def test_empty_slot_is_empty_not_fail(make_bench: Any) -> None:
    bench: Bench = make_bench(sim_slots={2: {"empty": True}})
    result = await bench.run()
    assert result.slots[2].verdict is Verdict.EMPTY
    assert result.slots[2].unit is None
    assert all(result.slots[s].verdict is Verdict.PASS for s in (1, 3, 4))
    assert result.all_passed


async def test_stop_policy_skips_the_rest(make_bench: Any, tmp_path: Any) -> None:
    bench: Bench = make_bench(sim_slots={1: {"faults": {"stuck_gpio": [{"pin": 5, "level": 0}]}}})

    def stop(doc: dict[str, Any]) -> None:
        doc["on_failure"] = "stop"
        doc["schedule"] = "in_order"

    result = await bench.run(write_sequence(tmp_path, stop))
    steps = result.slots[1].steps
    assert steps[0].verdict is Verdict.FAIL
    assert {s.verdict for s in steps[1:]} == {Verdict.SKIPPED}
    assert len(steps) == len(result.slots[2].steps)  # the record lists the whole sequence
    assert result.slots[2].verdict is Verdict.PASS


async def test_continue_policy_runs_all_and_keeps_the_first_reason(
    make_bench: Any, tmp_path: Any
) -> None:
    bench: Bench = make_bench(
        sim_slots={1: {"faults": {"stuck_gpio": [{"pin": 5, "level": 0}], "jedec_id": 1}}}
    )
    result = await bench.run()
    r = result.slots[1]
    assert r.reason.startswith("gpio_loopback:")
    failed = [s.name for s in r.steps if s.verdict is Verdict.FAIL]
    assert failed == ["gpio_loopback", "flash_jedec", "flash_rdid_raw"]
    assert Verdict.SKIPPED not in {s.verdict for s in r.steps}


async def test_retries_are_counted(make_bench: Any, tmp_path: Any) -> None:
    bench: Bench = make_bench(sim_slots={1: {"faults": {"jedec_id": 0x1}}})

    def three_retries(doc: dict[str, Any]) -> None:
        for step in doc["steps"]:
            if step["name"] == "flash_jedec":
                step["retries"] = 3

    result = await bench.run(write_sequence(tmp_path, three_retries))
    flash = {s.name: s for s in result.slots[1].steps}["flash_jedec"]
    assert flash.verdict is Verdict.FAIL and flash.retries == 3
    starts = [
        e
        for e in bench.events
        if isinstance(e, StepStarted) and e.slot == 1 and e.name == "flash_jedec"
    ]
    assert [e.attempt for e in starts] == [0, 1, 2, 3]
    assert {s.name: s for s in result.slots[2].steps}["flash_jedec"].retries == 0


async def test_step_timeout_is_that_slots_error_only(make_bench: Any, tmp_path: Any) -> None:
    bench: Bench = make_bench(sim_slots={4: {"faults": {"hang_after": 20}}})

    def short(doc: dict[str, Any]) -> None:
        # The hang comes within gpio_loopback's ~21 requests; its step deadline (0.3 s) is
        # shorter than the client's resends (3 x 0.15 s), so the step timeout fires.
        doc["steps"][0]["timeout"] = "300ms"
        doc["steps"][0]["retries"] = 0
        doc["on_failure"] = "stop"

    started = time.monotonic()
    result = await bench.run(write_sequence(tmp_path, short))
    assert result.slots[4].verdict is Verdict.ERROR
    assert result.slots[4].reason == "gpio_loopback: timed out after 0.3 s"
    assert all(result.slots[s].verdict is Verdict.PASS for s in (1, 2, 3))
    assert time.monotonic() - started < 30


async def test_wrong_chip_is_refused_by_the_rom_loader(make_bench: Any) -> None:
    """esptool identifies an ESP32-C3 in an ESP32-S3 panel: nothing is flashed into it."""
    bench: Bench = make_bench(sim_slots={3: {"board": "sim/board-c3-devkit.yaml"}})
    result = await bench.run()
    assert result.slots[3].verdict is Verdict.ERROR
    assert result.slots[3].reason.startswith("flash: wrong chip: found esp32c3")
    rom = bench.twin.sim.server(3).rom  # type: ignore[union-attr]
    assert rom is not None and rom.loader.flash.written_sectors == 0
    assert all(s.verdict is Verdict.SKIPPED for s in result.slots[3].steps)
    assert result.slots[1].verdict is Verdict.PASS


async def test_several_fixtures_in_one_process(make_bench: Any) -> None:
    a: Bench = make_bench(name="fa", seed=1)
    b: Bench = make_bench(name="fb", seed=2, sim_slots={1: {"faults": {"jedec_id": 5}}})
    ra, rb = await asyncio.gather(a.run(), b.run())
    assert all(r.verdict is Verdict.PASS for r in ra.slots.values())
    assert rb.slots[1].verdict is Verdict.FAIL
    assert all(rb.slots[s].verdict is Verdict.PASS for s in (2, 3, 4))
    macs = {r.unit.mac for res in (ra, rb) for r in res.slots.values() if r.unit}
    assert len(macs) == 8


def _started_order(events: list[Event], slot: int) -> list[str]:
    return [
        e.name for e in events if isinstance(e, StepStarted) and e.slot == slot and e.attempt == 0
    ]


async def test_in_order_schedule_runs_steps_as_written(make_bench: Any, tmp_path: Any) -> None:
    bench: Bench = make_bench()

    def in_order(doc: dict[str, Any]) -> None:
        doc["schedule"] = "in_order"

    seq = load_sequence(write_sequence(tmp_path, in_order))
    await bench.run(seq)
    written = [s.name for s in seq.model.steps]
    for slot in (1, 2, 3, 4):
        assert _started_order(bench.events, slot) == written


async def test_resource_aware_schedule_pulls_shared_steps_forward(
    make_bench: Any, tmp_path: Any
) -> None:
    """The golden-board step is written last; resource-aware, slots take the golden board
    while it is free instead of all queueing for it at the end. Records stay in file
    order, and the board is still held by one slot at a time."""
    bench: Bench = make_bench()
    seq = load_sequence(S3 := write_sequence(tmp_path, lambda d: None))
    assert seq.model.schedule == "resource_aware", S3
    holding: set[int] = set()
    overlaps = []

    def golden(event: Event) -> None:
        if isinstance(event, StepStarted) and event.name == "rf_golden":
            overlaps.append(len(holding))
            holding.add(event.slot)
        elif isinstance(event, StepEnded) and event.result.name == "rf_golden":
            holding.discard(event.slot)

    result = await bench.run(seq, subscribers=(golden,))
    assert all(r.verdict is Verdict.PASS for r in result.slots.values())
    assert overlaps == [0, 0, 0, 0]
    written = [s.name for s in seq.model.steps]
    orders = [_started_order(bench.events, slot) for slot in (1, 2, 3, 4)]
    assert any(order.index("rf_golden") < len(written) - 1 for order in orders)
    for order in orders:
        assert sorted(order) == sorted(written)  # every step ran exactly once
        non_shared = [n for n in order if n not in ("rf_golden", "rail_3v3", "rail_1v8")]
        assert non_shared == [n for n in written if n in non_shared]
    for r in result.slots.values():
        assert [s.index for s in r.steps] == list(range(len(written)))


async def test_plugin_step_runs_against_the_board(make_bench: Any, tmp_path: Any) -> None:
    """The example entry-point plugin reads the DUT's uptime; its value meets limits."""

    def with_plugin(doc: dict[str, Any]) -> None:
        doc["steps"] = [
            {
                "name": "uptime_ok",
                "type": "plugin",
                "plugin": "ate.example.uptime",
                "limits": {"low": 0.0, "high": 60.0},
            },
            {
                "name": "uptime_too_young",
                "type": "plugin",
                "plugin": "ate.example.uptime",
                "limits": {"low": 3600.0},
            },
        ]

    bench: Bench = make_bench(slots=2)
    result = await bench.run(write_sequence(tmp_path, with_plugin))
    for r in result.slots.values():
        ok, young = r.steps
        assert ok.verdict is Verdict.PASS and 0 < float(ok.measurements[0].value) < 60
        assert young.verdict is Verdict.FAIL
        assert r.reason.startswith("uptime_too_young: uptime_too_young = ")


async def test_a_slot_whose_port_is_gone_errors_alone(tmp_path: Any) -> None:
    """An unplugged adapter is that slot's ERROR with the reason; the others test on."""
    import yaml

    from ate.config.loader import load_fixture
    from ate.sim.fixture_twin import SimFixtureThread
    from tests.scheduler.conftest import write_fixture

    path = write_fixture(tmp_path)
    doc = yaml.safe_load(path.read_text())
    doc["slots"][1]["port"] = "/dev/serial/by-path/pci-0000:00:14.0-usb-0:9.9:1.0-port0"
    path.write_text(yaml.safe_dump(doc))
    fixture = load_fixture(path)
    with SimFixtureThread(fixture.model, fixture.base_dir) as twin:
        bench = Bench(fixture, twin)
        result = await bench.run()
    assert result.slots[2].verdict is Verdict.ERROR
    assert "usb-0:9.9:1.0-port0 does not exist" in result.slots[2].reason
    assert result.slots[2].reason.startswith("flash: ")  # the first phase to use the port
    assert all(result.slots[s].verdict is Verdict.PASS for s in (1, 3, 4))
