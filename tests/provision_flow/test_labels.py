"""The label check with labels scanned per panel (the operator page's scans): a unit whose
label reads its serial is provisioned and locked; a label with another (well-formed)
serial FAILs at the proof, before any eFuse; with `label_scan: required`, a unit with no
scan is not provisioned at all (ERROR, nothing claimed or burned)."""

from __future__ import annotations

from typing import Any

from prov_bench import FAST
from prov_helpers import usr_serial
from test_bad_input import nothing_burned

from ate.model.verdict import Verdict
from ate.scheduler.bus import EventBus
from ate.station.provisioning import open_provisioning
from ate.station.runner import run_one_panel


async def test_scanned_labels_are_checked_against_each_units_serial(
    make_prov_bench: Any,
) -> None:
    bench = make_prov_bench(slots=3)
    station = open_provisioning(
        bench.kit.profile,
        bench.sequence,
        state_dir=bench.state_dir,
        out_dir=bench.out_dir(),
        station="st1",
        operator="op1",
        lot="lot-1",
        require_label=True,
    )
    derive = station.provisioner.derive
    right = derive(bench.efuses(1).mac.hex(":"), None)
    other = derive("aa:bb:cc:00:00:09", None)  # a real serial, of no unit here
    try:
        result = await run_one_panel(
            bench.fixture,
            bench.sequence,
            EventBus(),
            sim=bench.endpoints,
            station="st1",
            operator="op1",
            options=FAST,
            provisioner=station.provisioner,
            labels={1: right.lower(), 2: other},  # scanned in lower case: read as upper
        )
    finally:
        station.close()
    one, two, three = (result.slots[s] for s in (1, 2, 3))
    assert one.verdict is Verdict.PASS, one.reason
    assert usr_serial(bench, 1) == right and bench.efuse(1, "ENABLE_SECURITY_DOWNLOAD")
    assert two.verdict is Verdict.FAIL
    assert f"the label reads {other}, the unit's serial is " in two.reason
    assert not bench.efuse(2, "ENABLE_SECURITY_DOWNLOAD")
    assert three.verdict is Verdict.ERROR
    assert "no label was scanned for this slot" in three.reason
    nothing_burned(bench, 3)
