"""A hostile DUT in a 4-slot panel on real transports: exactly the hostile slot is ERROR
with its reason, the other three PASS, and nothing it sends makes the host's memory grow
without bound. The modes are in ate/sim/hostile.py."""

from __future__ import annotations

import re
import tracemalloc
from typing import Any

import pytest

from ate.model.verdict import Verdict
from tests.scheduler.conftest import Bench

HOSTILE: list[tuple[str, Verdict, str]] = [
    ("wrong_id", Verdict.ERROR, r"EPROTO a reply to request id \d+, which was never sent"),
    ("unsolicited", Verdict.ERROR, r"EPROTO a reply to request id \d+, which was never sent"),
    ("endless_line", Verdict.ERROR, r"no reply to \S+ after 3 attempts"),
    ("nan", Verdict.ERROR, r"rf_golden: rf.golden: EPROTO reply has unusable rssi=nan"),
    (
        "impossible",
        Verdict.ERROR,
        r"rf_golden: measurement chain broken: rf.ch6.per: 130 % is outside the physical "
        r"range of a percentage \(0 .. 100 %\)",
    ),
    ("reboot", Verdict.ERROR, r"rebooted \((an unexpected READY|boot banner .*)\) during step \w+"),
    # A firmware that floods its log but answers truly is not a bad unit; whether its
    # answers get through the flood within the request timeout depends on the link, so
    # either it PASSes or its requests time out: never a FAIL, never another slot.
    ("log_flood", Verdict.PASS, r"^$|no reply to \S+ after 3 attempts"),
]

MEMORY_BOUND = 96 * 2**20  # the endless line alone sends 1 MiB per request


@pytest.mark.parametrize(("mode", "verdict", "reason"), HOSTILE, ids=[h[0] for h in HOSTILE])
async def test_hostile_slot_alone_gets_its_verdict(
    make_bench: Any, mode: str, verdict: Verdict, reason: str
) -> None:
    bench: Bench = make_bench(sim_slots={3: {"faults": {"hostile": {"mode": mode}}}})
    tracemalloc.start()
    try:
        result = await bench.run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    hostile = result.slots[3]
    if mode == "log_flood" and hostile.verdict is Verdict.ERROR:
        verdict = Verdict.ERROR
    assert hostile.verdict is verdict, hostile.reason
    assert re.search(reason, hostile.reason), hostile.reason
    if verdict is Verdict.ERROR:
        assert "provisioning" not in hostile.extra
    for slot in (1, 2, 4):
        assert result.slots[slot].verdict is Verdict.PASS, result.slots[slot].reason
    assert peak < MEMORY_BOUND, f"peak traced memory {peak / 2**20:.1f} MiB"


async def test_no_step_after_a_reboot_runs_on_top_of_it(make_bench: Any) -> None:
    bench: Bench = make_bench(sim_slots={2: {"faults": {"hostile": {"mode": "reboot"}}}})
    result = await bench.run()
    slot = result.slots[2]
    assert slot.verdict is Verdict.ERROR
    ran = [s for s in slot.steps if s.verdict is not Verdict.SKIPPED]
    (errored,) = [s for s in ran if s.verdict is Verdict.ERROR]
    assert f"during step {errored.name}" in slot.reason
    # the step it rebooted in was the last to start: nothing ran on top of it
    assert max(s.started_s for s in ran) == errored.started_s
    assert len(ran) < len(slot.steps)


async def test_a_cloned_mac_makes_both_slots_error(make_bench: Any) -> None:
    # The same fixture twice (same name and seed, so the same simulated units): the
    # first only tells which MAC slot 1's unit has.
    honest: Bench = make_bench()
    victim = honest.twin.sim.board(1)
    assert victim is not None
    clone = {"hostile": {"mode": "clone_mac", "mac": victim.mac}}
    bench: Bench = make_bench(sim_slots={4: {"faults": clone}})
    result = await bench.run()
    victim_result, cloner = result.slots[1], result.slots[4]
    assert victim_result.verdict is Verdict.ERROR, victim_result.reason
    assert victim_result.reason == (
        f"identity clash: MAC {victim.mac} is also reported by slot 4 of panel {result.panel_id}"
    )
    # The cloner is caught twice over: its ROM loader read another MAC than its firmware
    # reports (the more telling reason wins), and it clashes with slot 1.
    assert cloner.verdict is Verdict.ERROR
    assert cloner.reason.startswith(f"identify: the test firmware reports MAC {victim.mac}")
    for slot in (2, 3):
        assert result.slots[slot].verdict is Verdict.PASS, result.slots[slot].reason
