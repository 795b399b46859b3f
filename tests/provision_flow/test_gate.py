"""The gate: provisioning runs only for a unit that passed every test in this same panel
run, and never when the sequence, profile or release changed since the tests ran."""

from __future__ import annotations

from pathlib import Path

import pytest
from prov_helpers import station_state, usr_serial

from ate.model.events import Event, ProvisionAct, StepStarted
from ate.model.verdict import Verdict


def untouched(bench, slot: int, mac: str | None) -> None:
    """Nothing of provisioning reached this unit: not in the line store, no serial in its
    eFuses, no device key asked for, no security fuse."""
    with station_state(bench.state_dir) as (store, journal):
        if mac is not None:
            assert store.prov_unit(mac) is None
            assert journal.acts(mac) == []
    acts = [e for e in bench.events if isinstance(e, ProvisionAct) and e.slot == slot]
    assert acts == []
    server = bench.twin.sim.server(slot)
    if server is None or server.rom is None:
        return  # an empty slot: no chip to look at
    assert usr_serial(bench, slot) is None
    assert bench.flash(slot).read(0xF000, 4) == b"\xff" * 4  # prov.key never ran
    assert not bench.efuse(slot, "SECURE_BOOT_EN")
    assert not bench.efuse(slot, "ENABLE_SECURITY_DOWNLOAD")


async def test_only_pass_is_provisioned_fail_error_empty_are_not(make_prov_bench) -> None:
    bench = make_prov_bench(
        sim_slots={
            2: {"faults": {"stuck_gpio": [{"pin": 0, "level": 0}]}},  # FAIL
            3: {"faults": {"no_ready": True}},  # ERROR
            4: {"empty": True},  # EMPTY
        }
    )
    result = await bench.run()
    verdicts = {s: r.verdict for s, r in result.slots.items()}
    assert verdicts == {
        1: Verdict.PASS,
        2: Verdict.FAIL,
        3: Verdict.ERROR,
        4: Verdict.EMPTY,
    }, {s: r.reason for s, r in result.slots.items()}
    assert result.slots[1].extra["provisioning"]["state"] == "locked"
    for slot in (2, 3, 4):
        r = result.slots[slot]
        assert "provisioning" not in r.extra
        untouched(bench, slot, r.unit.mac if r.unit else None)


async def test_aborted_panel_provisions_nothing(make_prov_bench) -> None:
    bench = make_prov_bench(slots=2)

    def open_clamp(event: Event) -> None:
        if isinstance(event, StepStarted) and event.slot == 1 and event.index == 0:
            bench.twin.set_clamp(False)

    result = await bench.run(subscribers=(open_clamp,))
    assert {r.verdict for r in result.slots.values()} == {Verdict.ABORTED}
    for slot, r in result.slots.items():
        untouched(bench, slot, r.unit.mac if r.unit else None)


@pytest.mark.parametrize("which", ["profile", "sequence"])
async def test_changed_since_the_tests_ran_refuses(make_prov_bench, which: str) -> None:
    bench = make_prov_bench(slots=1)
    profile = bench.kit.directory / f"profile-gate-{which}.yaml"
    profile.write_text(bench.kit.profile.read_text())
    station = bench.open_station(profile=profile)
    target: Path = profile if which == "profile" else bench.sequence.path

    def edit(event: Event) -> None:
        if isinstance(event, StepStarted) and event.index == 0:
            target.write_text(target.read_text() + "\n# edited while testing\n")

    try:
        result = await bench.run(subscribers=(edit,), station=station)
    finally:
        station.close()
    r = result.slots[1]
    assert r.verdict is Verdict.ERROR
    assert "changed since the tests ran" in r.reason and target.name in r.reason
    assert all(s.verdict is Verdict.PASS for s in r.steps)  # the tests themselves passed
    untouched(bench, 1, r.unit.mac if r.unit else None)
