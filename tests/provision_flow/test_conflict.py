"""Journal and chip disagree: stop, never redo. When the journal records an eFuse step as
burned and the chip reads it as not burned, the unit stops with a conflict for a person
and nothing more is burned or written on either's word."""

from __future__ import annotations

from typing import Any

from prov_bench import PowerLoss, ProvBench
from prov_helpers import station_state

from ate.model.verdict import Verdict


async def test_journal_says_burned_chip_says_not_stops_with_a_conflict(
    make_prov_bench: Any,
) -> None:
    bench: ProvBench = make_prov_bench(slots=1)
    mac = bench.efuses(1).mac.hex(":")

    async def cut_before_jtag(chip_id: str, point: str) -> None:
        if point == "efuse-intent:fe.dis_jtag":
            bench.cut_power(1)
            raise PowerLoss(point)

    first = await bench.run(checkpoint=cut_before_jtag)
    assert first.slots[1].verdict is not Verdict.PASS
    assert not bench.efuses(1).field("DIS_PAD_JTAG")
    # The journal now claims a burn the chip never saw (a torn record, a swapped chip):
    with station_state(bench.state_dir) as (_store, journal):
        journal.act(
            mac,
            "efuse:sb.en",
            "outcome",
            "done",
            {"detail": "written by the test"},
            panel_id="p",
            station="st",
            operator="op",
        )
        acts_before = len(journal.acts(mac))
    second = await bench.run()
    r = second.slots[1]
    assert r.verdict is Verdict.ERROR, r.reason
    assert "conflict: the journal records eFuse step sb.en as burned on unit" in r.reason
    assert r.reason.endswith("resolve by hand")
    e = bench.efuses(1)
    assert not e.field("DIS_PAD_JTAG") and not e.field("SECURE_BOOT_EN")  # nothing burned
    with station_state(bench.state_dir) as (_store, journal):
        burns = [a for a in journal.acts(mac)[acts_before:] if a.act.startswith("efuse:")]
    assert burns == []
